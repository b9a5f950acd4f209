/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Decapsulation at the underlay's ingress, one helper per kind of tunnel
 * packet addressed to us. Each returns a TC verdict (>= 0) or a drop reason
 * negated (< 0).
 *
 *   decap_ip      ipip and udp: the outer headers are stripped here and the inner
 *                 packet goes to its pod (forward.h); else the kernel's vxlan
 *                 receive path takes a udp packet (handoff.h), or the stripped
 *                 packet goes to the overlay device
 *   vxlan_to_pod  plain vxlan for a local pod: stripped and sent to the pod's port;
 *                 everything else is left to the vxlan device
 */
#ifndef WEFT_DECAP_H
#define WEFT_DECAP_H

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
#include "parse.h"
#include "vxlan.h"
#include "admit.h"
#include "handoff.h"
#include "forward.h"

/*
 * Decapsulation flags newer than bookworm's 6.1 uapi header. DECAP_L3_* came
 * with 6.3. DECAP_L4_UDP and DECAP_IPXIP4 also clear skb->encapsulation and
 * the tunnel GSO bits of a decapsulated aggregate; 6.18 does not have them
 * (its BTF stops at DECAP_L3_IPV6) and rejects them with -EINVAL, so pop_outer()
 * falls back. Without them a GSO aggregate stays marked as encapsulated, and
 * a Linux bridge (no hw_enc_features) segments it in software on its way to
 * the pod: ipip and udp receive at a third of vxlan's single-stream rate.
 * That is why the agent gives the udp backend a vxlan overlay device and
 * decap_ip hands packets to it (handoff.h); for ipip no such road exists on
 * 6.18 (handoff.h says why) and stripping here is all there is.
 */
#define WEFT_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#define WEFT_ADJ_ROOM_DECAP_L4_UDP  (1ULL << 10)
#define WEFT_ADJ_ROOM_DECAP_IPXIP4  (1ULL << 11)

/*
 * Removes olen bytes of outer headers after the Ethernet header, asking for
 * the newest decapsulation flags first (l4: DECAP_L4_UDP or DECAP_IPXIP4);
 * each older kernel rejects what it does not know with -EINVAL, and a failed
 * attempt leaves the packet as it was. Returns 0, or non-zero when every
 * attempt failed.
 */
static __always_inline int pop_outer(struct __sk_buff *skb, __u32 olen, __u64 l4)
{
	__u64 base = BPF_F_ADJ_ROOM_FIXED_GSO;

	return bpf_skb_adjust_room(skb, -(__s32)olen, BPF_ADJ_ROOM_MAC, base | WEFT_ADJ_ROOM_DECAP_L3_IPV4 | l4) &&
	       bpf_skb_adjust_room(skb, -(__s32)olen, BPF_ADJ_ROOM_MAC, base | WEFT_ADJ_ROOM_DECAP_L3_IPV4) &&
	       bpf_skb_adjust_room(skb, -(__s32)olen, BPF_ADJ_ROOM_MAC, base);
}

/* The outer headers of an ipip or udp packet after its Ethernet header. */
static __always_inline __u32 ip_tunnel_olen(const struct ipv4_pkt *p, int with_udp)
{
	return p->ip_len + (with_udp ? sizeof(struct udphdr) : 0);
}

/*
 * Takes an ipip or udp packet addressed to us. When forward.h can take the
 * inner packet, the outer headers after the Ethernet header are stripped here
 * and it goes straight to its pod's port (the port, a veth, takes an
 * aggregate still marked encapsulated whole). Otherwise, with
 * WEFT_CFG_F_KERNEL_DECAP, the kernel's vxlan receive path decapsulates a udp
 * packet (handoff.h); anything else is stripped here and goes to the overlay
 * device's ingress, as if a tunnel device had received it: rp_filter, tcpdump
 * and routing see it there.
 */
static __always_inline int decap_ip(struct __sk_buff *skb, const struct weft_config *cfg,
				    const struct ipv4_pkt *p, int with_udp)
{
	__u32 olen = ip_tunnel_olen(p, with_udp);
	__be32 outer_src = p->ip->saddr;
	struct handoff hh;
	struct pod_hop hop;
	__be32 inner_src;
	__u8 inner_ver;
	int direct;
	int ret;

	/* An outer fragment cannot be decapsulated in place; senders set DF, so this is rare. */
	if (is_fragment(p->ip))
		return -WEFT_DROP_UNSUPPORTED;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + olen, &inner_ver, 1))
		return -WEFT_DROP_BAD_HEADER;
	if ((inner_ver >> 4) != 4)
		return -WEFT_DROP_UNSUPPORTED;
	if (skb->len < ETH_HLEN + olen + sizeof(struct iphdr))
		return -WEFT_DROP_BAD_HEADER;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + olen + offsetof(struct iphdr, saddr), &inner_src, sizeof(inner_src)))
		return -WEFT_DROP_BAD_HEADER;
	ret = admit_tunnel(cfg, outer_src, inner_src);
	if (IS_DROP(ret))
		return ret;
	/* Asked before stripping: the answer must not depend on a packet already changed. */
	direct = pod_hop(skb, cfg, ETH_HLEN + olen, cfg->overlay_ifindex, &hop);
	/*
	 * A udp packet for a pod's port is stripped here like ipip's: the port
	 * takes the aggregate whole, and the vxlan device's receive (its UDP
	 * socket lookup and GRO cell, a NAPI round of its own) is skipped. What
	 * would reach the bridge goes to that receive path, which clears the
	 * tunnel marks the bridge would otherwise segment on.
	 */
	if (!direct && (cfg->flags & WEFT_CFG_F_KERNEL_DECAP) && with_udp && !handoff_room(skb, p, &hh))
		return handoff_to_vxlan(skb, cfg, &hh);
	if (pop_outer(skb, olen, with_udp ? WEFT_ADJ_ROOM_DECAP_L4_UDP : WEFT_ADJ_ROOM_DECAP_IPXIP4))
		return -WEFT_DROP_ENCAP_FAILED;
	if (direct)
		return to_pod(skb, &hop);
	if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), cfg->overlay_mac, ETH_ALEN, 0))
		return -WEFT_DROP_ENCAP_FAILED;
	return bpf_redirect(cfg->overlay_ifindex, BPF_F_INGRESS);
}

/*
 * A vxlan packet for one of our pods, taken at the underlay's ingress: all
 * outer headers and the inner Ethernet header stripped, and the inner packet
 * handed to the pod's port (forward.h), skipping the host's IP and UDP
 * receive, the vxlan device and its GRO cell (a NAPI round of its own). Only
 * the plain case is taken here: the network's VNI without GBP, for our
 * VtepMAC, from the lease holder of the inner source (admit_tunnel), a flow
 * pod_hop() accepts. Everything else, held to the same rules or not, goes
 * to the kernel's vxlan device untouched, whose overlay_ingress counts and
 * drops what it must. Returns a TC verdict, or a drop reason negated.
 */
static __always_inline int vxlan_to_pod(struct __sk_buff *skb, const struct weft_config *cfg, const struct ipv4_pkt *p)
{
	__u32 olen = p->ip_len + sizeof(struct udphdr) + sizeof(struct vxlan_eth);
	__be32 outer_src = p->ip->saddr;
	struct vxlan_eth vx;
	struct pod_hop hop;
	__be32 inner_src;

	if (!(cfg->flags & WEFT_CFG_F_POD_FORWARD) || is_fragment(p->ip))
		return TC_ACT_OK;
	if (udp_dport(skb, p) != cfg->port)
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + p->ip_len + sizeof(struct udphdr), &vx, sizeof(vx)))
		return TC_ACT_OK;
	if ((vx.vx_flags & bpf_htonl(WEFT_VXLAN_F_VNI | WEFT_VXLAN_F_GBP)) != bpf_htonl(WEFT_VXLAN_F_VNI) ||
	    bpf_ntohl(vx.vx_vni) >> 8 != cfg->vni || vx.proto != bpf_htons(ETH_P_IP) || !mac_eq(vx.dst, cfg->vtep_mac))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + olen + offsetof(struct iphdr, saddr), &inner_src, sizeof(inner_src)) ||
	    IS_DROP(admit_tunnel(cfg, outer_src, inner_src)))
		return TC_ACT_OK;
	if (!pod_hop(skb, cfg, ETH_HLEN + olen, cfg->overlay_ifindex, &hop))
		return TC_ACT_OK;
	/* Untouched when it fails: the vxlan device takes it as it came. */
	if (pop_outer(skb, olen, WEFT_ADJ_ROOM_DECAP_L4_UDP))
		return TC_ACT_OK;
	return to_pod(skb, &hop);
}

#endif /* WEFT_DECAP_H */
