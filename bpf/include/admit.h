/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Admission: whether a tunnel packet we received comes from the host that
 * may speak for its inner source. underlay_decap asks before it decapsulates
 * ipip and udp (decap.h), overlay_ingress after the kernel's vxlan device has.
 */
#ifndef WEFT_ADMIT_H
#define WEFT_ADMIT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "weft_maps.h"
#include "verdict.h"
#include "maps.h"
#include "parse.h"

/*
 * The rule for a tunnel packet we received (outer source outer_src, inner
 * source inner_src): an inner source in the Network must belong to a peer's
 * subnet, and that peer's lease must name outer_src as its PublicIP.
 * Otherwise someone who is not that peer speaks for its pods (or for ours),
 * and the packet is dropped as WEFT_DROP_UNKNOWN_PEER; a peer whose lease
 * has not reached us yet is dropped too, as its replies would be (no_peer).
 * An inner source outside the Network passes: a peer host may forward
 * traffic it did not translate, and flannel's devices accept it as well.
 * WEFT_CFG_F_ANY_SENDER turns the rule off, for peers whose packets leave
 * from another address than their lease's PublicIP (flanneld with a
 * --public-ip that its interface does not hold, and no NAT in between).
 * Returns TC_ACT_OK or a drop reason negated.
 */
static __always_inline int admit_tunnel(const struct weft_config *cfg, __be32 outer_src, __be32 inner_src)
{
	const struct weft_peer *peer;

	if ((cfg->flags & WEFT_CFG_F_ANY_SENDER) || !in_prefix(inner_src, cfg->network, cfg->network_len))
		return TC_ACT_OK;
	peer = peer_for(inner_src);
	if (!peer || (peer->flags & WEFT_PEER_F_LOCAL) || peer->public_ip != outer_src)
		return -WEFT_DROP_UNKNOWN_PEER;
	return TC_ACT_OK;
}

/*
 * The collect_md vxlan device takes every VNI from every sender; flannel's
 * flannel.<VNI> takes only its own VNI. What the kernel decapsulated is held
 * to the network's VNI and to admit_tunnel()'s rule about its sender, read
 * from the tunnel metadata vxlan_rcv() left on the packet. A packet without
 * that metadata did not come through the tunnel (only BPF_PROG_TEST_RUN
 * makes one) and has nothing to check. Returns TC_ACT_OK or a drop reason
 * negated.
 */
static __always_inline int admit_vxlan(struct __sk_buff *skb, const struct weft_config *cfg)
{
	struct bpf_tunnel_key key = {};
	struct ipv4_pkt p;

	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0))
		return TC_ACT_OK;
	if (key.tunnel_id != cfg->vni)
		return -WEFT_DROP_WRONG_VNI;
	/* Not IPv4 inside: nothing weft routes, and nothing to hold to the rule. */
	if (IS_DROP(parse_ipv4(skb, &p)))
		return TC_ACT_OK;
	return admit_tunnel(cfg, bpf_htonl(key.remote_ipv4), p.ip->saddr);
}

#endif /* WEFT_ADMIT_H */
