/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Encapsulation towards a peer, one helper per backend, chosen by the peer's
 * entry (to_peer). Each returns a TC verdict (>= 0) or a drop reason negated
 * (< 0), so the entry program counts every drop in one place.
 *
 *   encap_vxlan     metadata for the collect_md vxlan device (the kernel encapsulates),
 *                   or with WEFT_CFG_F_VXLAN_PUSH the headers pushed here and sent out
 *                   of the underlay
 *   encap_ipip      outer IPv4, protocol 4, pushed here, sent out of the underlay
 *   encap_udp       outer IPv4 + UDP (flannel's udp wire format), pushed here
 *   forward_direct  host-gw / DirectRouting: the unmodified packet to the peer as next hop
 */
#ifndef WEFT_ENCAP_H
#define WEFT_ENCAP_H

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
#include "csum.h"
#include "vxlan.h"
#include "fib.h"

#define WEFT_TTL 64
#define INET_ECN_MASK 3
#define INET_ECN_CE   3
#define INET_ECN_ECT0 2

/* RFC 6040 normal mode, like the kernel's INET_ECN_encapsulate: CE is not copied out. */
static __always_inline __u8 outer_tos(__u8 inner_tos)
{
	__u8 ecn = inner_tos & INET_ECN_MASK;

	return ecn == INET_ECN_CE ? INET_ECN_ECT0 : ecn;
}

/*
 * What the collect_md vxlan device would put on the wire, pushed here: outer
 * IPv4 (DF clear, TTL 64, ECN as RFC 6040), UDP from a flow-hashed port with
 * checksum 0, VXLAN with the peer's VNI, inner Ethernet between the VTEPs.
 * Sent straight out of the underlay, it skips the device's transmit path (a
 * route lookup per packet, since BPF tunnel metadata is never cached, and
 * the output hooks). ENCAP_L2_ETH sets the inner MAC header, so an aggregate
 * is segmented as a UDP tunnel packet wherever it must be.
 */
static __always_inline int push_vxlan(struct __sk_buff *skb, const struct weft_config *cfg,
				      const struct weft_peer *peer, const struct ipv4_pkt *p)
{
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP |
		      BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN);
	__u32 hash = bpf_get_hash_recalc(skb);
	struct vxlan_outer h = {};
	struct iphdr ip = {};
	__u8 inner_tos = p->ip->tos;
	__u32 tot_len;

	if (!skb->gso_size && skb->len - ETH_HLEN + sizeof(h) > cfg->mtu)
		return -WEFT_DROP_TOO_BIG;
	if (bpf_skb_adjust_room(skb, sizeof(h), BPF_ADJ_ROOM_MAC, flags))
		return -WEFT_DROP_ENCAP_FAILED;

	tot_len = skb->len - ETH_HLEN;
	if (tot_len > 0xffff)
		tot_len = 0;
	ip.version = 4;
	ip.ihl = 5;
	ip.tos = outer_tos(inner_tos);
	ip.tot_len = bpf_htons(tot_len);
	/* DF clear, as flannel's device sends it: an id, so that fragments can be told apart. */
	ip.id = (__be16)bpf_get_prandom_u32();
	ip.ttl = WEFT_TTL;
	ip.protocol = IPPROTO_UDP;
	ip.saddr = cfg->public_ip;
	ip.daddr = peer->public_ip;
	ip.check = ipv4_csum(&ip);
	__builtin_memcpy(&h.ip, &ip, sizeof(ip));
	hash ^= hash << 16;
	h.udp.source = bpf_htons((__u16)((((__u64)hash * (WEFT_VXLAN_SPORT_MAX - WEFT_VXLAN_SPORT_MIN)) >> 32) +
					 WEFT_VXLAN_SPORT_MIN));
	h.udp.dest = bpf_htons(cfg->port);
	h.udp.len = bpf_htons(tot_len ? tot_len - sizeof(struct iphdr) : 0);
	h.vx.vx_flags = bpf_htonl(WEFT_VXLAN_F_VNI);
	h.vx.vx_vni = bpf_htonl(peer->vni << 8);
	__builtin_memcpy(h.vx.dst, peer->vtep_mac, ETH_ALEN);
	__builtin_memcpy(h.vx.src, cfg->vtep_mac, ETH_ALEN);
	h.vx.proto = bpf_htons(ETH_P_IP);
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &h, sizeof(h), 0))
		return -WEFT_DROP_ENCAP_FAILED;
	return TC_ACT_OK;
}

static __always_inline int encap_vxlan(struct __sk_buff *skb, const struct weft_config *cfg,
				       const struct weft_peer *peer, const struct ipv4_pkt *p)
{
	struct bpf_tunnel_key key = {};
	__be32 dst = peer->public_ip;
	__u8 macs[2 * ETH_ALEN];
	int ret;

	if (cfg->flags & WEFT_CFG_F_VXLAN_PUSH) {
		ret = push_vxlan(skb, cfg, peer, p);
		return IS_DROP(ret) ? ret : redirect_underlay(skb, cfg, dst, 0);
	}

	key.remote_ipv4 = bpf_ntohl(peer->public_ip);
	key.tunnel_id = peer->vni;
	key.tunnel_ttl = WEFT_TTL;
	/*
	 * The outer source is left to the kernel's route lookup (like flannel's
	 * `local` it is the underlay address, also behind NAT). A zero UDP
	 * checksum is what flannel's kernel vxlan sends over IPv4.
	 */
	if (bpf_skb_set_tunnel_key(skb, &key, offsetof(struct bpf_tunnel_key, local_ipv4),
				   BPF_F_ZERO_CSUM_TX))
		return -WEFT_DROP_ENCAP_FAILED;
	__builtin_memcpy(macs, peer->vtep_mac, ETH_ALEN);
	__builtin_memcpy(macs + ETH_ALEN, cfg->vtep_mac, ETH_ALEN);
	if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0))
		return -WEFT_DROP_ENCAP_FAILED;
	return TC_ACT_OK;
}

struct outer_hdr {
	struct iphdr ip;
	struct udphdr udp;
};

/*
 * Pushes an outer IPv4 header (and UDP header when with_udp) between the
 * Ethernet header and the inner IPv4 packet. FIXED_GSO keeps gso_size: the
 * pods' MTU already leaves room for the outer headers, so every segment fits
 * the underlay; the ENCAP flags set the inner offsets and the tunnel GSO type
 * so that the kernel segments and checksums a TCP aggregate correctly.
 */
static __always_inline int push_outer(struct __sk_buff *skb, const struct weft_config *cfg,
				      const struct weft_peer *peer, const struct ipv4_pkt *p, int with_udp)
{
	__u32 olen = with_udp ? sizeof(struct iphdr) + sizeof(struct udphdr) : sizeof(struct iphdr);
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4;
	struct outer_hdr h = {};
	__u8 inner_tos = p->ip->tos;
	__be16 inner_df = p->ip->frag_off & bpf_htons(IP_DF);
	__u32 tot_len;

	if (with_udp)
		flags |= BPF_F_ADJ_ROOM_ENCAP_L4_UDP;
	if (!skb->gso_size && skb->len - ETH_HLEN + olen > cfg->mtu)
		return -WEFT_DROP_TOO_BIG;
	if (bpf_skb_adjust_room(skb, olen, BPF_ADJ_ROOM_MAC, flags))
		return -WEFT_DROP_ENCAP_FAILED;

	tot_len = skb->len - ETH_HLEN;
	/* Only a GSO TCP aggregate can exceed 64 KiB; its segments get their own lengths. */
	if (tot_len > 0xffff)
		tot_len = 0;
	h.ip.version = 4;
	h.ip.ihl = 5;
	h.ip.tos = outer_tos(inner_tos);
	h.ip.tot_len = bpf_htons(tot_len);
	/* A DF packet is atomic (RFC 6864): id 0. Otherwise an id that fragments can be told apart by. */
	h.ip.id = inner_df ? 0 : (__be16)bpf_get_prandom_u32();
	h.ip.frag_off = inner_df;
	h.ip.ttl = WEFT_TTL;
	h.ip.protocol = with_udp ? IPPROTO_UDP : IPPROTO_IPIP;
	h.ip.saddr = cfg->public_ip;
	h.ip.daddr = peer->public_ip;
	h.ip.check = ipv4_csum(&h.ip);
	if (with_udp) {
		/* flannel's proxy sends from the socket bound to Port; checksum 0 like it does. */
		h.udp.source = bpf_htons(cfg->port);
		h.udp.dest = bpf_htons(cfg->port);
		h.udp.len = bpf_htons(tot_len ? tot_len - sizeof(struct iphdr) : 0);
		h.udp.check = 0;
	}
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &h, olen, 0))
		return -WEFT_DROP_ENCAP_FAILED;
	return TC_ACT_OK;
}

static __always_inline int encap_ipip(struct __sk_buff *skb, const struct weft_config *cfg,
				      const struct weft_peer *peer, const struct ipv4_pkt *p)
{
	__be32 dst = peer->public_ip;
	int ret = push_outer(skb, cfg, peer, p, 0);

	return IS_DROP(ret) ? ret : redirect_underlay(skb, cfg, dst, 0);
}

static __always_inline int encap_udp(struct __sk_buff *skb, const struct weft_config *cfg,
				     const struct weft_peer *peer, const struct ipv4_pkt *p)
{
	__be32 dst = peer->public_ip;
	int ret = push_outer(skb, cfg, peer, p, 1);

	return IS_DROP(ret) ? ret : redirect_underlay(skb, cfg, dst, 0);
}

static __always_inline int forward_direct(struct __sk_buff *skb, const struct weft_config *cfg,
					  const struct weft_peer *peer)
{
	return redirect_underlay(skb, cfg, peer->public_ip, 1);
}

/* What a peer needs, by its entry: a TC verdict, or a drop reason negated. */
static __always_inline int to_peer(struct __sk_buff *skb, const struct weft_config *cfg, const struct weft_peer *peer,
				   const struct ipv4_pkt *p)
{
	switch (peer->encap) {
	case WEFT_ENCAP_VXLAN:
		return encap_vxlan(skb, cfg, peer, p);
	case WEFT_ENCAP_IPIP:
		return encap_ipip(skb, cfg, peer, p);
	case WEFT_ENCAP_UDP:
		return encap_udp(skb, cfg, peer, p);
	case WEFT_ENCAP_DIRECT:
		return forward_direct(skb, cfg, peer);
	default:
		return -WEFT_DROP_NO_PEER;
	}
}

#endif /* WEFT_ENCAP_H */
