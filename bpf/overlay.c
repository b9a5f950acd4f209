// SPDX-License-Identifier: GPL-2.0
/*
 * TC programs on the overlay device, the device the kernel routes the whole
 * cluster Network to: the collect_md vxlan device (vxlan), or weft0, one end
 * of a veth pair (host-gw, ipip, udp).
 *
 * overlay_egress   a packet for the Network: find the peer that holds its
 *                  subnet and hand the packet to that peer's encapsulation.
 * overlay_ingress  what the kernel's vxlan receive path decapsulated for us
 *                  (vxlan, and ipip / udp handed to it by underlay_decap):
 *                  counted (vxlan), and forwarded to a local pod's device.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "weft_maps.h"
#include "maps.h"
#include "parse.h"
#include "counters.h"
#include "encap.h"
#include "admit.h"
#include "forward.h"

char LICENSE[] SEC("license") = "GPL";

/* A packet routed to the Network: to the peer that holds its destination, as that peer's entry says. */
static __always_inline int to_network(struct __sk_buff *skb, const struct weft_config *cfg, __u32 len)
{
	const struct weft_peer *peer;
	struct ipv4_pkt p;
	__be32 dst;
	__u8 encap;
	int ret;

	/* Nothing routed here can be delivered before the agent has written the config. */
	if (!cfg)
		return -WEFT_DROP_NOT_READY;
	ret = parse_ipv4(skb, &p);
	if (IS_DROP(ret))
		return ret;
	peer = peer_for(p.ip->daddr);
	/* A departed peer's traffic stops here; it is never sent to a stale address. */
	if (!peer || (peer->flags & WEFT_PEER_F_LOCAL))
		return -WEFT_DROP_NO_PEER;

	encap = peer->encap;
	dst = peer->public_ip;
	ret = to_peer(skb, cfg, peer, &p);
	if (!IS_DROP(ret)) {
		count_traffic(WEFT_DIR_EGRESS, encap, len);
		emit_trace(skb, cfg, sent_action(cfg, encap), len, WEFT_PROG_OVERLAY_EGRESS, WEFT_DIR_EGRESS, dst, encap);
	}
	return ret;
}

SEC("tc")
int overlay_egress(struct __sk_buff *skb)
{
	const struct weft_config *cfg = config_ready();
	__u32 len = skb->len;

	return verdict(skb, cfg, to_network(skb, cfg, len), len, WEFT_PROG_OVERLAY_EGRESS, WEFT_DIR_EGRESS);
}

/*
 * What the kernel's vxlan receive path decapsulated for us. On weft0 (ipip,
 * udp) the underlay program has counted (and admitted) the decapsulation
 * already; the vxlan device's packets are admitted and counted here.
 */
static __always_inline int from_overlay(struct __sk_buff *skb, const struct weft_config *cfg, __u32 len)
{
	int ret;

	if (!cfg)
		return TC_ACT_OK;
	if (cfg->backend == WEFT_ENCAP_VXLAN) {
		ret = admit_vxlan(skb, cfg);
		if (IS_DROP(ret))
			return ret;
		count_traffic(WEFT_DIR_INGRESS, WEFT_ENCAP_VXLAN, len);
	}
	ret = forward_to_pod(skb, cfg, cfg->overlay_ifindex);
	if (!IS_DROP(ret))
		emit_trace(skb, cfg, ret == TC_ACT_REDIRECT ? WEFT_TRACE_TO_POD : WEFT_TRACE_TO_KERNEL, len,
			   WEFT_PROG_OVERLAY_INGRESS, WEFT_DIR_INGRESS, 0, cfg->backend);
	return ret;
}

SEC("tc")
int overlay_ingress(struct __sk_buff *skb)
{
	const struct weft_config *cfg = config_ready();
	__u32 len = skb->len;

	return verdict(skb, cfg, from_overlay(skb, cfg, len), len, WEFT_PROG_OVERLAY_INGRESS, WEFT_DIR_INGRESS);
}
