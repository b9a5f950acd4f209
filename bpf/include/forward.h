/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Peer traffic for our own pods, handed straight to the pod's port on its
 * bridge. After decapsulation (or straight off the underlay, for direct
 * peers) the kernel would route the packet, run netfilter's FORWARD and
 * POSTROUTING hooks, transmit it on the bridge (bridge-nf, a forwarding
 * database lookup) and then on the port. Here a FIB lookup finds the bridge
 * and the pod's MAC, weft_ports (the bridge's FDB, kept by the agent) the
 * port, and the packet leaves on that port as `ip_forward` would send it:
 * TTL decremented, MTU checked, MACs from the neighbour table.
 *
 * It also delivers what the bridge could not take whole: a TCP aggregate that
 * bpf_skb_adjust_room() decapsulated (ipip) is still marked encapsulated, and
 * the bridge, with no hw_enc_features, would segment it in software; a veth
 * port accepts it as it is.
 *
 * The kernel keeps everything else: ICMP and other protocols, fragments,
 * expiring TTLs and oversized packets (it answers with ICMP), pods whose
 * neighbour entry or FDB entry is not there yet (it resolves and floods; the
 * bridge learns, the agent follows), host addresses, and every flow conntrack
 * follows but for established ones it tracks liberally (conntrack.h). A MAC that
 * moved to a new port is found through the FDB; an address that moved to a
 * new MAC misses the map (the old MAC left the FDB with its port) and takes
 * the kernel's path, which corrects the neighbour entry. What this skips is
 * stateless filtering in FORWARD and bridge-nf, and the bridge's own port
 * features (VLAN filtering); the agent turns it off with
 * WEFT_EBPF_POD_FORWARD=0 for hosts whose policy lives there.
 */
#ifndef WEFT_FORWARD_H
#define WEFT_FORWARD_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "weft_maps.h"
#include "verdict.h"
#include "maps.h"
#include "parse.h"
#include "conntrack.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/* Where a packet for a local pod goes: the bridge port, and the MACs the bridge would have sent it with. */
struct pod_hop {
	__u32 port;
	__u32 port_flags;
	__u8  macs[2 * ETH_ALEN]; /* destination (the pod), source (the bridge) */
};

/* A TCP or UDP packet the programs may forward in the kernel's place, as read at some offset. */
struct plain_flow {
	struct iphdr ip;
	__be16 ports[2];
	__u32 ihl;
	__u8  doff; /* TCP: the data offset byte */
	__u8  tcp_flags;
};

/* The length of what leaves: one segment of an aggregate, or the packet itself. */
static __always_inline __u32 wire_len(const struct __sk_buff *skb, const struct plain_flow *f)
{
	if (!skb->gso_size)
		return bpf_ntohs(f->ip.tot_len);
	return f->ihl + (f->ip.protocol == IPPROTO_TCP ? (f->doff >> 4) * 4 : sizeof(struct udphdr)) + skb->gso_size;
}

/*
 * Whether the IPv4 packet at ip_off is one the kernel's forward path would
 * only forward: TCP or UDP, not a fragment, a TTL to spare, and a flow
 * conntrack lets pass (conntrack.h: one it does not follow on a host where
 * it follows nothing, or an established one it tracks liberally). A TCP SYN
 * always goes the kernel's way, so that on a host where conntrack follows pod
 * traffic every connection starts followed. Fills f; the packet is untouched.
 */
static __always_inline int plain_flow(struct __sk_buff *skb, const struct weft_config *cfg, __u32 ip_off, struct plain_flow *f)
{
	__u8 tcp[2];

	if (skb->protocol != bpf_htons(ETH_P_IP) || bpf_skb_load_bytes(skb, ip_off, &f->ip, sizeof(f->ip)))
		return 0;
	if (f->ip.version != 4 || f->ip.ihl < 5 || f->ip.ttl <= 1 || is_fragment(&f->ip))
		return 0;
	if (f->ip.protocol != IPPROTO_TCP && f->ip.protocol != IPPROTO_UDP)
		return 0;
	f->ihl = f->ip.ihl * 4;
	f->doff = 0;
	f->tcp_flags = 0;
	if (bpf_skb_load_bytes(skb, ip_off + f->ihl, f->ports, sizeof(f->ports)))
		return 0;
	if (f->ip.protocol == IPPROTO_TCP) {
		if (bpf_skb_load_bytes(skb, ip_off + f->ihl + 12, tcp, sizeof(tcp)))
			return 0;
		f->doff = tcp[0];
		f->tcp_flags = tcp[1];
		if ((f->tcp_flags & (WEFT_TCP_SYN | WEFT_TCP_ACK)) == WEFT_TCP_SYN)
			return 0;
	}
	return ct_may_skip(skb, cfg, &f->ip, f->ports[0], f->ports[1], f->tcp_flags);
}

/*
 * Whether the IPv4 packet at ip_off (the inner one of a tunnel packet not
 * yet decapsulated) can go straight to a local pod, as if received on iif.
 * Only looks: the packet is untouched either way.
 */
static __always_inline int pod_hop(struct __sk_buff *skb, const struct weft_config *cfg, __u32 ip_off, __u32 iif,
				   struct pod_hop *hop)
{
	struct bpf_fib_lookup fib = {};
	struct weft_port_key key = {};
	const struct weft_port *port;
	struct plain_flow f;

	if (!(cfg->flags & WEFT_CFG_F_POD_FORWARD) || !plain_flow(skb, cfg, ip_off, &f))
		return 0;
	if (!in_prefix(f.ip.daddr, cfg->subnet, cfg->subnet_len))
		return 0;
	fib.family = AF_INET;
	fib.tos = f.ip.tos;
	fib.l4_protocol = f.ip.protocol;
	fib.sport = f.ports[0];
	fib.dport = f.ports[1];
	fib.tot_len = wire_len(skb, &f);
	fib.ipv4_src = f.ip.saddr;
	fib.ipv4_dst = f.ip.daddr;
	fib.ifindex = iif;
	/* An input lookup as the stack does it for iif: forwarding enabled, routes, MTU, a valid neighbour. */
	if (bpf_fib_lookup(skb, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return 0;
	key.bridge_ifindex = fib.ifindex;
	__builtin_memcpy(key.mac, fib.dmac, ETH_ALEN);
	port = bpf_map_lookup_elem(&weft_ports, &key);
	/* Back out of where it came in would be a loop; the agent never learns those, but a map is not a proof. */
	if (!port || port->ifindex == iif || port->ifindex == cfg->underlay_ifindex || port->ifindex == cfg->overlay_ifindex)
		return 0;
	hop->port = port->ifindex;
	hop->port_flags = port->flags;
	__builtin_memcpy(hop->macs, fib.dmac, ETH_ALEN);
	__builtin_memcpy(hop->macs + ETH_ALEN, fib.smac, ETH_ALEN);
	return 1;
}

/* ip_decrease_ttl() on the IPv4 header after the Ethernet header: the TTL and protocol share a checksummed word. */
static __always_inline int decrease_ttl(struct __sk_buff *skb)
{
	__u16 oldw, neww;
	__u8 ttl;

	if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct iphdr, ttl), &oldw, sizeof(oldw)))
		return -WEFT_DROP_BAD_HEADER;
	neww = oldw;
	ttl = ((__u8 *)&neww)[0] - 1;
	((__u8 *)&neww)[0] = ttl;
	if (bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), oldw, neww, sizeof(neww)) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct iphdr, ttl), &ttl, 1, 0))
		return -WEFT_DROP_ENCAP_FAILED;
	return TC_ACT_OK;
}

/*
 * Sends a packet pod_hop() accepted (the IPv4 header now right after the
 * Ethernet header) out of the pod's port: TC_ACT_REDIRECT, or a drop reason
 * negated when the packet could not be rewritten. Every caller runs at a TC
 * ingress hook, so a veth port whose other end is in the pod's namespace
 * takes bpf_redirect_peer(): the packet enters the pod's interface directly,
 * without the veth transmit and its trip through the per-CPU backlog (one
 * softirq round less on every packet a pod receives; Cilium's host routing
 * does the same). Any other port gets a plain redirect to its egress.
 */
static __always_inline int to_pod(struct __sk_buff *skb, const struct pod_hop *hop)
{
	int ret = decrease_ttl(skb);

	if (IS_DROP(ret))
		return ret;
	if (bpf_skb_store_bytes(skb, 0, hop->macs, sizeof(hop->macs), 0))
		return -WEFT_DROP_ENCAP_FAILED;
	if (hop->port_flags & WEFT_PORT_F_PEER)
		return bpf_redirect_peer(hop->port, 0);
	return bpf_redirect(hop->port, 0);
}

/* The whole step for a packet whose IPv4 header follows the Ethernet header: TC_ACT_OK when the kernel must take it. */
static __always_inline int forward_to_pod(struct __sk_buff *skb, const struct weft_config *cfg, __u32 iif)
{
	struct pod_hop hop;

	if (!pod_hop(skb, cfg, ETH_HLEN, iif, &hop))
		return TC_ACT_OK;
	return to_pod(skb, &hop);
}

#endif /* WEFT_FORWARD_H */
