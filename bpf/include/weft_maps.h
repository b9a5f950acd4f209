/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The map schema: the one contract between the BPF programs, the native addon
 * and the TypeScript codecs (src/dataplane/ebpf/maps.ts). Every struct is
 * packed by hand with explicit padding so that its layout is the same for
 * clang -target bpf and for the codecs; test/bpf/schema.test.ts loads the
 * objects and asserts key and value sizes against the codecs.
 *
 * Addresses are IPv4 in network byte order (__be32); everything else is in
 * host byte order unless its name says otherwise.
 *
 * Every constant the agent shares with the programs is an enum member here,
 * never a #define: bpf/gen-contract.mjs writes them into
 * src/dataplane/ebpf/contract.ts (with each member's comment), and
 * struct weft_contract brings every enum into the objects' BTF, where
 * test/bpf/schema.test.ts compares them with that file by name.
 */
#ifndef WEFT_MAPS_H
#define WEFT_MAPS_H

#include <linux/types.h>

/* How a packet reaches a peer (and the index of the counters by backend). */
enum weft_encap {
	WEFT_ENCAP_NONE   = 0, /* local subnet: hand to the stack */
	WEFT_ENCAP_VXLAN  = 1, /* via the collect_md vxlan device */
	WEFT_ENCAP_IPIP   = 2, /* outer IPv4, protocol 4, pushed by the program */
	WEFT_ENCAP_UDP    = 3, /* outer IPv4 + UDP (flannel's udp backend wire format) */
	WEFT_ENCAP_DIRECT = 4, /* host-gw / DirectRouting: next hop = PublicIP on the underlay */
	WEFT_ENCAP_MAX    = 5,
};

/* weft_peers: LPM trie, remote subnet -> how to reach its host. */
struct weft_lpm_key {
	__u32  prefixlen;      /* IPv4 prefix length in bits, 0..32 */
	__be32 addr;           /* subnet address, network byte order */
};                             /* 8 bytes */

/* weft_peer.flags */
enum weft_peer_flag {
	WEFT_PEER_F_LOCAL          = 1 << 0, /* our own subnet */
	WEFT_PEER_F_DIRECT_ROUTING = 1 << 1, /* tunnel backend, but the peer shares our L2 segment */
};

struct weft_peer {
	__be32 public_ip;      /* outer destination (tunnels) or next hop (direct) */
	__u32  vni;            /* vxlan: VNI from the peer's BackendData */
	__u8   vtep_mac[6];    /* vxlan: inner destination MAC (the peer's VtepMAC) */
	__u8   encap;          /* enum weft_encap */
	__u8   flags;          /* enum weft_peer_flag */
};                             /* 16 bytes */

/* weft_config.flags */
enum weft_cfg_flag {
	/* The agent has written the config: the programs act on it. */
	WEFT_CFG_F_READY        = 1 << 0,
	/* Packets from peers for our pods go straight to the device that holds the pod (forward.h). */
	WEFT_CFG_F_POD_FORWARD  = 1 << 1,
	/* udp: the overlay device is a collect_md vxlan device on decap_port that decapsulates for us (handoff.h). */
	WEFT_CFG_F_KERNEL_DECAP = 1 << 2,
	/* vxlan: the program pushes the VXLAN headers and sends to the underlay itself (encap.h push_vxlan). */
	WEFT_CFG_F_VXLAN_PUSH   = 1 << 3,
	/* Tunnel packets are not held to the lease holder of their inner source (admit.h admit_tunnel); the VNI still is. */
	WEFT_CFG_F_ANY_SENDER   = 1 << 4,
	/* Conntrack follows flows on this host: a packet of a flow it has no entry for is the host's to judge (conntrack.h). */
	WEFT_CFG_F_CT_FOLLOWS   = 1 << 5,
};

/* weft_config: array of one, written by the agent before traffic flows. */
struct weft_config {
	__be32 public_ip;        /* our underlay address: outer source */
	__be32 subnet;           /* our lease */
	__be32 network;          /* the cluster Network */
	__u8   subnet_len;
	__u8   network_len;
	__u8   backend;          /* enum weft_encap of the configured backend */
	__u8   flags;            /* enum weft_cfg_flag */
	__u32  vni;              /* vxlan */
	__u16  port;             /* vxlan / udp destination port, host byte order */
	__u16  mtu;              /* underlay MTU */
	__u32  underlay_ifindex;
	__u32  overlay_ifindex;  /* the device the Network route points at */
	__u8   vtep_mac[6];      /* our VtepMAC (vxlan inner source) */
	__u8   overlay_mac[6];   /* MAC of the overlay device (ingress redirects) */
	__u8   underlay_mac[6];
	__u16  decap_port;       /* WEFT_CFG_F_KERNEL_DECAP: the overlay device's UDP port, host byte order */
	__u32  ct_timeout_ms;    /* conntrack's established TCP timeout here; 0: tracked flows never take the fast path (conntrack.h) */
};                               /* 56 bytes */

/* weft_stats: per-CPU array indexed by weft_stats_index(dir, encap). */
enum weft_dir {
	WEFT_DIR_EGRESS  = 0, /* towards a peer: encapsulated or forwarded */
	WEFT_DIR_INGRESS = 1, /* from a peer: decapsulated or received */
	WEFT_DIR_MAX     = 2,
};

struct weft_counter {
	__u64 packets;
	__u64 bytes;
};                             /* 16 bytes */

static inline __u32 weft_stats_index(__u32 dir, __u32 encap)
{
	return dir * WEFT_ENCAP_MAX + encap;
}

/* weft_drops: per-CPU array indexed by reason; `weft bpf drops` prints the names. */
enum weft_drop_reason {
	WEFT_DROP_NONE         = 0, /* not a drop (unknown reasons are counted here) */
	WEFT_DROP_NO_PEER      = 1, /* destination in the Network but no lease for it */
	WEFT_DROP_BAD_HEADER   = 2, /* truncated or malformed packet */
	WEFT_DROP_TOO_BIG      = 3, /* encapsulated packet would exceed the underlay MTU */
	WEFT_DROP_NOT_READY    = 4, /* config map not written yet */
	WEFT_DROP_ENCAP_FAILED = 5, /* bpf_skb_adjust_room / store failed */
	WEFT_DROP_FIB_FAILED   = 6, /* no route / neighbour to the next hop */
	WEFT_DROP_UNSUPPORTED  = 7, /* not IPv4, or an option we do not handle */
	WEFT_DROP_WRONG_VNI    = 8, /* vxlan packet with a VNI other than the network's */
	WEFT_DROP_UNKNOWN_PEER = 9, /* tunnel packet from a cluster address whose lease names another PublicIP, or none */
	WEFT_DROP_MAX          = 10,
};

/*
 * weft_ports: hash, (bridge, MAC) -> the bridge port that holds the MAC: the
 * bridge's forwarding database for the bridges that hold our subnet, kept by
 * the agent (src/dataplane/ebpf/ports.ts). Rebuilt by every agent at start,
 * so not kept pinned: pinning by name only lets both objects share it.
 */
struct weft_port_key {
	__u32  bridge_ifindex;
	__u8   mac[6];
	__u8   _pad[2];
};                             /* 12 bytes */

/* weft_port.flags */
enum weft_port_flag {
	/* The port is a veth whose other end is in another network namespace (a pod's): bpf_redirect_peer() takes it there. */
	WEFT_PORT_F_PEER = 1 << 0,
};

struct weft_port {
	__u32  ifindex;        /* the port the MAC was learned on */
	__u32  flags;          /* enum weft_port_flag */
};                             /* 8 bytes */

/*
 * weft_pod_ports: hash, the ifindex of a port of the pods' gateway bridge ->
 * that bridge, for from_pod (bpf/gateway.c), which the agent attaches to
 * every such port and records here (src/dataplane/ebpf/podports.ts). Only a
 * frame a pod addressed to the bridge's own MAC is one the bridge would
 * route; the others it switches. Filled by the agent, not pinned.
 */
struct weft_pod_port {
	__u32  bridge_ifindex;
	__u8   bridge_mac[6];
	__u8   _pad[2];
};                             /* 12 bytes */

/*
 * weft_ct_wanted: LRU hash of struct weft_tuple (below), established TCP flows the
 * fast path would take once conntrack tracks their windows liberally (conntrack.h),
 * as the packet that found them saw them; the agent marks them in conntrack and
 * deletes them (src/dataplane/ebpf/fastpath.ts). Filled by the programs, not pinned.
 *
 * weft_ct_wake: ring buffer of struct weft_tuple, one record for each flow the
 * programs add to weft_ct_wanted, so that the agent marks it when it is found
 * rather than at its next look at the map. A record the ring has no room for is
 * lost: the flow waits in weft_ct_wanted for the agent's sweep (once a second).
 */

/* A flow's addresses and ports as on the wire (network order): weft_ct_wanted's key, weft_event's outer and inner. */
struct weft_tuple {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;          /* TCP / UDP; 0 for other protocols and later fragments */
	__be16 dport;
	__u8   proto;          /* IP protocol; 0: no IPv4 header */
	__u8   _pad[3];
};                             /* 16 bytes */

/*
 * Events for `weft monitor`, through weft_events (a ring buffer pinned beside
 * the other maps, so a monitor reads it with the agent stopped). Nothing is
 * emitted unless a monitor holds a deadline in weft_monitor (events.h).
 */
enum weft_event_kind {
	WEFT_EVENT_DROP  = 0, /* a packet dropped, with its reason */
	WEFT_EVENT_TRACE = 1, /* a forwarding decision, sampled */
	WEFT_EVENT_MAX   = 2,
};

/* weft_event.code of a trace event: what the program did with the packet. */
enum weft_trace_action {
	WEFT_TRACE_ENCAP      = 0, /* encapsulated here and sent out of the underlay to the peer */
	WEFT_TRACE_TUNNEL_KEY = 1, /* tunnel metadata set: the vxlan device encapsulates it for the peer */
	WEFT_TRACE_DIRECT     = 2, /* sent unencapsulated to the peer as next hop (host-gw, DirectRouting) */
	WEFT_TRACE_TO_POD     = 3, /* sent straight to the pod's bridge port (the shortcut past the host's forward path) */
	WEFT_TRACE_TO_OVERLAY = 4, /* decapsulated here and handed to the overlay device */
	WEFT_TRACE_HANDOFF    = 5, /* rewritten for the kernel's vxlan receive path (udp backend) */
	WEFT_TRACE_TO_KERNEL  = 6, /* left to the kernel: the vxlan device, or the host's forward path */
	WEFT_TRACE_MAX        = 7,
};

/* weft_event.prog: the entry program that emitted the event (PROGRAMS in loader.ts names the same four). */
enum weft_prog {
	WEFT_PROG_OVERLAY_EGRESS  = 0, /* overlay.o, the overlay device's egress */
	WEFT_PROG_OVERLAY_INGRESS = 1, /* overlay.o, the overlay device's ingress */
	WEFT_PROG_UNDERLAY_DECAP  = 2, /* underlay.o, the underlay interface's ingress */
	WEFT_PROG_GATEWAY_INGRESS = 3, /* gateway.o, the pods' gateway device's ingress */
	WEFT_PROG_FROM_POD        = 4, /* gateway.o, the ingress of a pod's port on that device */
	WEFT_PROG_MAX             = 5,
};

/* weft_event.flags: which parts of the event are filled. */
enum weft_event_flag {
	WEFT_EVENT_F_OUTER    = 1 << 0, /* outer: the tunnel packet's headers */
	WEFT_EVENT_F_INNER    = 1 << 1, /* inner: the pod packet's headers (the packet itself when it is not tunnelled) */
	WEFT_EVENT_F_VNI      = 1 << 2, /* vni is the packet's (vxlan) */
	WEFT_EVENT_F_TUNINFO  = 1 << 3, /* outer comes from the kernel's tunnel metadata: no ports (the vxlan device keeps none for programs) */
};

/* One record in weft_events. */
struct weft_event {
	__u64  ts_ns;            /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u8   kind;             /* enum weft_event_kind */
	__u8   code;             /* drop: enum weft_drop_reason; trace: enum weft_trace_action */
	__u8   prog;             /* enum weft_prog */
	__u8   dir;              /* enum weft_dir */
	__u8   flags;            /* enum weft_event_flag */
	__u8   encap;            /* enum weft_encap: the peer's (egress) or the tunnel's it came through (ingress) */
	__u16  _pad;
	__u32  ifindex;          /* the device the program runs on */
	__u32  len;              /* skb->len when the program started */
	__u32  vni;              /* with WEFT_EVENT_F_VNI */
	__be32 peer;             /* the peer host's PublicIP, when known; 0 otherwise */
	struct weft_tuple outer; /* with WEFT_EVENT_F_OUTER */
	struct weft_tuple inner; /* with WEFT_EVENT_F_INNER */
};                               /* 64 bytes */

/*
 * weft_monitor: array of __u64 written by `weft monitor`, indexed by slot.
 * Deadlines rather than a count of listeners, so that a monitor killed
 * outright costs nothing a few seconds later: it renews its deadline every
 * second and the programs stop emitting when it lapses.
 */
enum weft_monitor_slot {
	WEFT_MON_DROPS_UNTIL  = 0, /* drop events are emitted while bpf_ktime_get_ns() is below this; 0: nobody listens */
	WEFT_MON_TRACE_UNTIL  = 1, /* trace events, the same way */
	WEFT_MON_TRACE_SAMPLE = 2, /* trace one forwarding decision in this many (0 or 1: every one) */
	WEFT_MON_OWNER        = 3, /* pid of the monitor holding the deadlines (the programs never read it) */
	WEFT_MON_LOST         = 4, /* events weft_events had no room for, counted by the programs */
	WEFT_MON_MAX          = 5,
};

/* max_entries of the maps (maps.h) whose size is not 1. */
enum weft_map_size {
	WEFT_PEERS_MAX     = 65536, /* weft_peers: leases in one Network */
	WEFT_STATS_ENTRIES = WEFT_DIR_MAX * WEFT_ENCAP_MAX, /* weft_stats: one counter per direction and encapsulation */
	WEFT_PORTS_MAX     = 4096, /* weft_ports: MACs on the bridges that hold our subnet; weft_pod_ports: its ports */
	WEFT_CT_WANTED_MAX = 1024, /* weft_ct_wanted: flows waiting for the agent */
	WEFT_EVENTS_BYTES  = 1 << 18, /* weft_events: 256 KiB of ring buffer, about 3,600 events */
	WEFT_EVENTS_WAKE_BYTES = 1 << 15, /* weft_events: an eighth of it, what waits before the programs wake the monitor (events.h) */
	WEFT_CT_WAKE_BYTES = 1 << 12, /* weft_ct_wake: one page, 170 flows (24 bytes each with the ring's header) */
};

/*
 * Never used by a program: its one instance (maps.h) names every enum above,
 * which is what brings them into the objects' BTF (clang emits the types of
 * variables, not of constants). gen-contract.mjs refuses an enum missing here.
 */
struct weft_contract {
	enum weft_encap        encap;
	enum weft_peer_flag    peer_flag;
	enum weft_cfg_flag     cfg_flag;
	enum weft_dir          dir;
	enum weft_drop_reason  drop_reason;
	enum weft_port_flag    port_flag;
	enum weft_map_size     map_size;
	enum weft_event_kind   event_kind;
	enum weft_trace_action trace_action;
	enum weft_prog         prog;
	enum weft_event_flag   event_flag;
	enum weft_monitor_slot monitor_slot;
	/* The event layout, in every object's BTF even where no program emits (WEFT_NO_EVENTS). */
	struct weft_event      event;
};

#endif /* WEFT_MAPS_H */
