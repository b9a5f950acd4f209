// SPDX-License-Identifier: GPL-2.0
/*
 * TC programs on the overlay device, the device the kernel routes the whole
 * cluster Network to: the collect_md vxlan device (vxlan), or weft0, one end
 * of a veth pair (host-gw, ipip, udp).
 *
 * overlay_egress   a packet for the Network: find the peer that holds its
 *                  subnet and hand the packet to that peer's encapsulation.
 * overlay_ingress  vxlan only: counts what the kernel decapsulated for us.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "weft_maps.h"
#include "maps.h"
#include "parse.h"
#include "counters.h"
#include "encap.h"

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
	switch (encap) {
	case WEFT_ENCAP_VXLAN:
		ret = encap_vxlan(skb, cfg, peer);
		break;
	case WEFT_ENCAP_IPIP:
		ret = encap_ipip(skb, cfg, peer, &p);
		break;
	case WEFT_ENCAP_UDP:
		ret = encap_udp(skb, cfg, peer, &p);
		break;
	case WEFT_ENCAP_DIRECT:
		ret = forward_direct(skb, cfg, peer);
		break;
	default:
		ret = -WEFT_DROP_NO_PEER;
	}
	if (ret < 0)
		return drop(-ret, len);
	count_traffic(WEFT_DIR_EGRESS, encap, len);
	return ret;
}

SEC("tc")
int overlay_ingress(struct __sk_buff *skb)
{
	const struct weft_config *cfg = config_ready();

	/* On weft0 the underlay program has counted the decapsulation already. */
	if (cfg && cfg->backend == WEFT_ENCAP_VXLAN)
		count_traffic(WEFT_DIR_INGRESS, WEFT_ENCAP_VXLAN, skb->len);
	return TC_ACT_OK;
}
