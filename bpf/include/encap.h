/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * One helper per encapsulation. Each returns a TC verdict (>= 0) or a drop
 * reason negated (< 0), so the entry program counts every drop in one place.
 *
 *   encap_vxlan     metadata for the collect_md vxlan device (the kernel encapsulates),
 *                   or with WEFT_CFG_F_VXLAN_PUSH the headers pushed here and sent out
 *                   of the underlay
 *   encap_ipip      outer IPv4, protocol 4, pushed here, sent out of the underlay
 *   encap_udp       outer IPv4 + UDP (flannel's udp wire format), pushed here
 *   forward_direct  host-gw / DirectRouting: the unmodified packet to the peer as next hop
 *   decap_ip        ingress: a udp packet to the kernel's vxlan receive path (handoff.h),
 *                   or an ipip / udp outer header stripped and the inner packet
 *                   delivered on the overlay device
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
#include "parse.h"
#include "csum.h"
#include "handoff.h"
#include "forward.h"

#ifndef AF_INET
#define AF_INET 2
#endif

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
 * Sends a packet whose Ethernet payload is ready out of the underlay towards
 * next_hop. With check_onlink, a next hop the FIB would reach through a
 * gateway is refused: host-gw only works between hosts on one L2 segment.
 */
static __always_inline int redirect_underlay(struct __sk_buff *skb, const struct weft_config *cfg,
					     __be32 next_hop, int check_onlink)
{
	struct bpf_fib_lookup fib = {};
	struct bpf_redir_neigh nh = {};
	__u8 macs[2 * ETH_ALEN];
	long rc;

	fib.family = AF_INET;
	fib.ipv4_dst = next_hop;
	fib.ifindex = cfg->underlay_ifindex;
	/* OUTPUT: route as a packet sent from this host out of the chosen underlay. */
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
	if (check_onlink && (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH) &&
	    fib.ipv4_dst != next_hop)
		return -WEFT_DROP_FIB_FAILED;
	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		__builtin_memcpy(macs, fib.dmac, ETH_ALEN);
		__builtin_memcpy(macs + ETH_ALEN, fib.smac, ETH_ALEN);
		if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0))
			return -WEFT_DROP_ENCAP_FAILED;
		return bpf_redirect(fib.ifindex, 0);
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		/*
		 * The kernel resolves the neighbour and queues the packet meanwhile.
		 * A queued packet is sent again through the neighbour of the skb's
		 * route, which is still the overlay route when a next hop is given
		 * here: it would leave with the overlay device's MACs. Without a next
		 * hop the kernel routes the outer destination and replaces that route,
		 * so tunnels (whose outer destination is the peer) give none. A direct
		 * peer needs the next hop; its first packets are lost until the
		 * neighbour resolves, which is why the loader keeps managed neighbour
		 * entries for direct peers.
		 */
		if (check_onlink) {
			nh.nh_family = AF_INET;
			nh.ipv4_nh = fib.ipv4_dst;
			rc = bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
		} else {
			rc = bpf_redirect_neigh(fib.ifindex, 0, 0, 0);
		}
		return rc == TC_ACT_REDIRECT ? TC_ACT_REDIRECT : -WEFT_DROP_FIB_FAILED;
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		return -WEFT_DROP_TOO_BIG;
	default:
		return -WEFT_DROP_FIB_FAILED;
	}
}

struct vxlan_outer {
	struct iphdr ip;
	struct udphdr udp;
	struct vxlan_eth vx;
} __attribute__((packed)); /* 50 bytes */

/*
 * The source port range of the kernel's vxlan (the local port range's
 * default), and its spreading of the flow hash over it (udp_flow_src_port):
 * peers and the underlay's ECMP see the same entropy either way.
 */
#define WEFT_VXLAN_SPORT_MIN 32768
#define WEFT_VXLAN_SPORT_MAX 60999

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
	return WEFT_DROP_NONE;
}

static __always_inline int encap_vxlan(struct __sk_buff *skb, const struct weft_config *cfg,
				       const struct weft_peer *peer, const struct ipv4_pkt *p)
{
	struct bpf_tunnel_key key = {};
	__be32 dst = peer->public_ip;
	__u8 macs[2 * ETH_ALEN];
	int err;

	if (cfg->flags & WEFT_CFG_F_VXLAN_PUSH) {
		err = push_vxlan(skb, cfg, peer, p);
		return err ? err : redirect_underlay(skb, cfg, dst, 0);
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
	return WEFT_DROP_NONE;
}

static __always_inline int encap_ipip(struct __sk_buff *skb, const struct weft_config *cfg,
				      const struct weft_peer *peer, const struct ipv4_pkt *p)
{
	__be32 dst = peer->public_ip;
	int err = push_outer(skb, cfg, peer, p, 0);

	return err ? err : redirect_underlay(skb, cfg, dst, 0);
}

static __always_inline int encap_udp(struct __sk_buff *skb, const struct weft_config *cfg,
				     const struct weft_peer *peer, const struct ipv4_pkt *p)
{
	__be32 dst = peer->public_ip;
	int err = push_outer(skb, cfg, peer, p, 1);

	return err ? err : redirect_underlay(skb, cfg, dst, 0);
}

static __always_inline int forward_direct(struct __sk_buff *skb, const struct weft_config *cfg,
					  const struct weft_peer *peer)
{
	return redirect_underlay(skb, cfg, peer->public_ip, 1);
}

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
 * Returns WEFT_DROP_NONE or the reason.
 */
static __always_inline int admit_tunnel(const struct weft_config *cfg, __be32 outer_src, __be32 inner_src)
{
	const struct weft_peer *peer;

	if ((cfg->flags & WEFT_CFG_F_ANY_SENDER) || !in_prefix(inner_src, cfg->network, cfg->network_len))
		return WEFT_DROP_NONE;
	peer = peer_for(inner_src);
	if (!peer || (peer->flags & WEFT_PEER_F_LOCAL) || peer->public_ip != outer_src)
		return WEFT_DROP_UNKNOWN_PEER;
	return WEFT_DROP_NONE;
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

/*
 * Takes an ipip or udp packet addressed to us. With WEFT_CFG_F_KERNEL_DECAP
 * the kernel's vxlan receive path decapsulates a udp packet (handoff.h).
 * Otherwise olen bytes of outer headers after the Ethernet header are
 * stripped here, and the inner packet goes straight to its pod's port when
 * forward.h can take it (the port, a veth, takes an aggregate still marked
 * encapsulated whole), or to the overlay device's ingress, as if a tunnel
 * device had received it: rp_filter, tcpdump and routing see it there.
 */
static __always_inline int decap_ip(struct __sk_buff *skb, const struct weft_config *cfg,
				    const struct ipv4_pkt *p, __u32 olen, int with_udp)
{
	__be32 outer_src = p->ip->saddr;
	struct pod_hop hop;
	__be32 inner_src;
	__u8 inner_ver;
	int direct;
	int ret;

	if (bpf_skb_load_bytes(skb, ETH_HLEN + olen, &inner_ver, 1))
		return -WEFT_DROP_BAD_HEADER;
	if ((inner_ver >> 4) != 4)
		return -WEFT_DROP_UNSUPPORTED;
	if (skb->len < ETH_HLEN + olen + sizeof(struct iphdr))
		return -WEFT_DROP_BAD_HEADER;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + olen + offsetof(struct iphdr, saddr), &inner_src, sizeof(inner_src)))
		return -WEFT_DROP_BAD_HEADER;
	ret = admit_tunnel(cfg, outer_src, inner_src);
	if (ret)
		return -ret;
	if ((cfg->flags & WEFT_CFG_F_KERNEL_DECAP) && with_udp) {
		ret = handoff_to_vxlan(skb, cfg, p);
		if (ret != WEFT_HANDOFF_DECLINED)
			return ret;
	}
	/* Asked before stripping: the answer must not depend on a packet already changed. */
	direct = pod_hop(skb, cfg, ETH_HLEN + olen, cfg->overlay_ifindex, &hop);
	if (pop_outer(skb, olen, with_udp ? WEFT_ADJ_ROOM_DECAP_L4_UDP : WEFT_ADJ_ROOM_DECAP_IPXIP4))
		return -WEFT_DROP_ENCAP_FAILED;
	if (direct)
		return to_pod(skb, &hop);
	if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), cfg->overlay_mac, ETH_ALEN, 0))
		return -WEFT_DROP_ENCAP_FAILED;
	return bpf_redirect(cfg->overlay_ifindex, BPF_F_INGRESS);
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
#pragma unroll
	for (int i = 0; i < ETH_ALEN; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
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
	    admit_tunnel(cfg, outer_src, inner_src))
		return TC_ACT_OK;
	if (!pod_hop(skb, cfg, ETH_HLEN + olen, cfg->overlay_ifindex, &hop))
		return TC_ACT_OK;
	/* Untouched when it fails: the vxlan device takes it as it came. */
	if (pop_outer(skb, olen, WEFT_ADJ_ROOM_DECAP_L4_UDP))
		return TC_ACT_OK;
	return to_pod(skb, &hop);
}

#endif /* WEFT_ENCAP_H */
