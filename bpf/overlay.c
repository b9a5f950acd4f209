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

SEC("tc")
int overlay_egress(struct __sk_buff *skb)
{
	const struct weft_config *cfg = config_ready();
	const struct weft_peer *peer;
	struct ipv4_pkt p;
	__u32 len = skb->len;
	__u8 encap;
	int ret;

	/* Nothing routed here can be delivered before the agent has written the config. */
	if (!cfg)
		return drop(WEFT_DROP_NOT_READY, len);
	ret = parse_ipv4(skb, &p);
	if (ret)
		return drop(ret, len);
	peer = peer_for(p.ip->daddr);
	/* A departed peer's traffic stops here; it is never sent to a stale address. */
	if (!peer || (peer->flags & WEFT_PEER_F_LOCAL))
		return drop(WEFT_DROP_NO_PEER, len);

	encap = peer->encap;
	ret = to_peer(skb, cfg, peer, &p);
	if (ret < 0)
		return drop(-ret, len);
	count_traffic(WEFT_DIR_EGRESS, encap, len);
	return ret;
}

SEC("tc")
int overlay_ingress(struct __sk_buff *skb)
{
	const struct weft_config *cfg = config_ready();
	__u32 len = skb->len;
	int ret;

	if (!cfg)
		return TC_ACT_OK;
	/* On weft0 the underlay program has counted (and admitted) the decapsulation already. */
	if (cfg->backend == WEFT_ENCAP_VXLAN) {
		ret = admit_vxlan(skb, cfg);
		if (ret)
			return drop(ret, len);
		count_traffic(WEFT_DIR_INGRESS, WEFT_ENCAP_VXLAN, len);
	}
	ret = forward_to_pod(skb, cfg, cfg->overlay_ifindex);
	return ret < 0 ? drop(-ret, len) : ret;
}
