// SPDX-License-Identifier: GPL-2.0
/*
 * Where pods' packets enter the host, two programs with one body
 * (from_pods): a pod's packet for another host's pod is sent to that peer
 * from here, as overlay_egress would send it after the host's forward path:
 * TTL decremented, checked against the tunnel's MTU, and the host's routing,
 * netfilter and the overlay device's transmit skipped.
 *
 *   from_pod         the TC ingress of each port of the pods' gateway bridge
 *                    (each pod's host-side veth; Cilium's from-container hook),
 *                    attached by the agent to every port (podports.ts). It runs
 *                    before the bridge's rx_handler, so before bridge-nf: for a
 *                    flow conntrack follows it asks conntrack (conntrack.h), and
 *                    an established liberal flow's plain ACKs skip bridge-nf too.
 *   gateway_ingress  the TC ingress of the bridge itself, with
 *                    WEFT_EBPF_GATEWAY=1: after bridge-nf, which has attached
 *                    conntrack to every packet on hosts that load it, so it
 *                    only ever takes flows on hosts without bridge-nf.
 *
 * Everything the kernel must see passes on untouched and takes the usual
 * road (through the overlay device, where overlay_egress counts what it
 * drops): ICMP and other protocols, fragments, expiring TTLs, packets larger
 * than the tunnel carries (the kernel answers with ICMP), packets conntrack
 * already holds and flows it follows, and destinations without a peer.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "weft_maps.h"
#include "maps.h"
#include "parse.h"
#include "counters.h"
#include "encap.h"
#include "forward.h"

char LICENSE[] SEC("license") = "GPL";

/* Only the field we read; CO-RE finds it in the running kernel's sk_buff. */
struct sk_buff___weft {
	unsigned long _nfct;
} __attribute__((preserve_access_index));

extern void *bpf_cast_to_kern_ctx(void *ctx) __ksym __weak;

/*
 * Whether conntrack already holds this packet. On a bridge with bridge-nf
 * (br_netfilter, bridge-nf-call-iptables=1, as Kubernetes hosts run), the
 * bridge has run the IPv4 PREROUTING hooks before this program: a service's
 * DNAT is done, and its conntrack entry waits to be confirmed at POSTROUTING.
 * Skipping the stack would lose the entry and the replies' translation. A
 * kernel that cannot tell is answered "yes".
 */
static __always_inline int conntrack_attached(struct __sk_buff *skb)
{
	struct sk_buff___weft *kskb;

	if (!bpf_cast_to_kern_ctx)
		return 1;
	kskb = bpf_cast_to_kern_ctx(skb);
	return kskb->_nfct != 0;
}

/* Bytes a peer's encapsulation adds in front of the inner IPv4 packet. */
static __always_inline __u32 encap_overhead(__u8 encap)
{
	switch (encap) {
	case WEFT_ENCAP_VXLAN:
		return sizeof(struct vxlan_outer);
	case WEFT_ENCAP_IPIP:
		return sizeof(struct iphdr);
	case WEFT_ENCAP_UDP:
		return sizeof(struct iphdr) + sizeof(struct udphdr);
	default:
		return 0;
	}
}

/* A pod's packet at the gateway device or a port of it: sent to its peer from here, or left to the kernel's forward path. */
static __always_inline int from_pods(struct __sk_buff *skb, const struct weft_config *cfg, __u32 len, __u8 prog)
{
	const struct weft_peer *peer;
	struct plain_flow f;
	struct ipv4_pkt p;
	int ret;

	if (!cfg || IS_DROP(parse_ipv4(skb, &p)))
		return TC_ACT_OK;
	if (!in_prefix(p.ip->daddr, cfg->network, cfg->network_len) || in_prefix(p.ip->daddr, cfg->subnet, cfg->subnet_len))
		return TC_ACT_OK;
	/* Only our pods' own addresses: anything else is the host's to judge (reverse-path filter, masquerade). */
	if (!in_prefix(p.ip->saddr, cfg->subnet, cfg->subnet_len))
		return TC_ACT_OK;
	peer = peer_for(p.ip->daddr);
	if (!peer || (peer->flags & WEFT_PEER_F_LOCAL))
		return TC_ACT_OK;
	/* vxlan through the device's own transmit gains nothing from starting here. */
	if (peer->encap == WEFT_ENCAP_VXLAN && !(cfg->flags & WEFT_CFG_F_VXLAN_PUSH))
		return TC_ACT_OK;
	if (conntrack_attached(skb) || !plain_flow(skb, cfg, ETH_HLEN, &f) || wire_len(skb, &f) + encap_overhead(peer->encap) > cfg->mtu)
		return TC_ACT_OK;

	ret = decrease_ttl(skb);
	if (IS_DROP(ret))
		return ret;
	/* The TTL store moved the packet out from under the parsed pointers. */
	if (IS_DROP(parse_ipv4(skb, &p)))
		return -WEFT_DROP_BAD_HEADER;
	ret = to_peer(skb, cfg, peer, &p);
	if (!IS_DROP(ret)) {
		count_traffic(WEFT_DIR_EGRESS, peer->encap, len);
		emit_trace(skb, cfg, sent_action(cfg, peer->encap), len, prog, WEFT_DIR_EGRESS, peer->public_ip, peer->encap);
	}
	return ret;
}

SEC("tc")
int gateway_ingress(struct __sk_buff *skb)
{
	const struct weft_config *cfg = config_ready();
	__u32 len = skb->len;

	return verdict(skb, cfg, from_pods(skb, cfg, len, WEFT_PROG_GATEWAY_INGRESS), len, WEFT_PROG_GATEWAY_INGRESS,
		       WEFT_DIR_EGRESS);
}

/*
 * Whether a frame on a port is one the bridge would route: sent to the
 * bridge's own MAC, on a port the agent put this program on. A frame for
 * another MAC is switched by the bridge (to a pod, or to a pod that routes
 * for others), and is not ours to route.
 */
static __always_inline int to_bridge(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	const struct weft_pod_port *port = bpf_map_lookup_elem(&weft_pod_ports, &ifindex);
	__u8 dst[ETH_ALEN];

	if (!port || bpf_skb_load_bytes(skb, offsetof(struct ethhdr, h_dest), dst, ETH_ALEN))
		return 0;
	return mac_eq(dst, port->bridge_mac);
}

SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	const struct weft_config *cfg = config_ready();
	__u32 len = skb->len;
	int ret = TC_ACT_OK;

	if (cfg && to_bridge(skb))
		ret = from_pods(skb, cfg, len, WEFT_PROG_FROM_POD);
	return verdict(skb, cfg, ret, len, WEFT_PROG_FROM_POD, WEFT_DIR_EGRESS);
}
