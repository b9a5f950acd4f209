/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * udp-backend packets handed to the kernel's vxlan receive path instead of
 * being decapsulated here. The overlay device of the udp backend is a
 * collect_md vxlan device listening on cfg->decap_port (the backend's own
 * port); VXLAN + Ethernet headers are inserted after the outer UDP header,
 * the lengths fixed, and the stack delivers the packet to vxlan_rcv().
 *
 * Why not bpf_skb_adjust_room()'s decap: on 6.18 it has no DECAP_L4_UDP or
 * DECAP_IPXIP4 flag, so a decapsulated TCP aggregate keeps
 * skb->encapsulation and its tunnel GSO bits. Forwarded to the pods' Linux
 * bridge (hw_enc_features empty) it is then segmented and checksummed in
 * software, and a single stream falls to a third of vxlan's rate. vxlan_rcv()
 * clears both in iptunnel_pull_offloads(), so the aggregate reaches the
 * bridge whole. A packet forward.h can send straight to a pod's port (a veth,
 * which takes it marked) never comes here: decap_ip() strips it itself.
 *
 * ipip cannot take this road: its aggregates carry SKB_GSO_IPXIP4 and no
 * SKB_GSO_UDP_TUNNEL, which 6.18's udp_unexpected_gso() refuses on an
 * encapsulation socket (it drops them), and no BPF helper can add the bit
 * to a packet already marked encapsulated (adjust_room's ENCAP flags answer
 * -EALREADY). udp aggregates from weft carry SKB_GSO_UDP_TUNNEL (push_outer
 * sets ENCAP_L4_UDP); flannel's proxy sends no aggregates.
 *
 * The inner Ethernet header carries the overlay device's MAC as destination
 * (the device accepts only frames for itself) and the outer source MAC as
 * source (a frame from its own MAC would be taken for a loop).
 */
#ifndef WEFT_HANDOFF_H
#define WEFT_HANDOFF_H

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
#include "vxlan.h"

struct handoff_hdr {
	struct udphdr udp;
	struct vxlan_eth vx;
} __attribute__((packed)); /* 30 bytes: the UDP header rewritten, VXLAN + Ethernet inserted after it */

#define WEFT_HANDOFF_GROW (sizeof(struct handoff_hdr) - sizeof(struct udphdr))

/* What handoff_room() keeps of the packet for handoff_to_vxlan(). */
struct handoff {
	struct iphdr ip;       /* the outer IPv4 header as it arrived */
	struct handoff_hdr h;  /* what replaces the outer UDP header */
};

/*
 * Makes room for VXLAN + Ethernet after the outer UDP header of a
 * udp-backend packet (outer IPv4 + UDP, raw inner IPv4), keeping in hh what
 * the rewrite needs. Returns 0, or non-zero with the packet untouched when
 * it cannot be rewritten (outer options, a BIG TCP length, a packet the
 * kernel does not grow): the caller then decapsulates it itself.
 */
static __always_inline int handoff_room(struct __sk_buff *skb, const struct ipv4_pkt *p, struct handoff *hh)
{
	__u32 tot;

	/*
	 * BPF_ADJ_ROOM_NET inserts right after a 20-byte IPv4 header (with
	 * options the new bytes would land inside them). The new bytes and the
	 * old UDP header after them are then overwritten: UDP, VXLAN, Ethernet.
	 */
	if (p->ip_len != sizeof(struct iphdr))
		return 1;
	tot = bpf_ntohs(p->ip->tot_len);
	if (tot == 0 || tot + WEFT_HANDOFF_GROW > 0xffff)
		return 1;
	__builtin_memset(&hh->h, 0, sizeof(hh->h));
	__builtin_memcpy(&hh->ip, p->ip, sizeof(hh->ip));
	__builtin_memcpy(hh->h.vx.src, p->eth->h_source, ETH_ALEN);
	/* FIXED_GSO: an aggregate's segments are the inner ones, whatever the outer headers become. */
	return bpf_skb_adjust_room(skb, WEFT_HANDOFF_GROW, BPF_ADJ_ROOM_NET, BPF_F_ADJ_ROOM_FIXED_GSO) ? 1 : 0;
}

/*
 * After handoff_room(): writes the headers. Returns TC_ACT_OK (the stack
 * takes the rewritten packet to the overlay device's vxlan receive path) or
 * a drop reason negated.
 */
static __always_inline int handoff_to_vxlan(struct __sk_buff *skb, const struct weft_config *cfg, struct handoff *hh)
{
	struct handoff_hdr *h = &hh->h;
	struct iphdr *ip = &hh->ip;
	__u32 tot = bpf_ntohs(ip->tot_len) + WEFT_HANDOFF_GROW;

	h->udp.source = bpf_htons(cfg->decap_port);
	h->udp.dest = bpf_htons(cfg->decap_port);
	h->udp.len = bpf_htons(tot - sizeof(*ip));
	/* Checksum 0: the inner packet keeps its own; the sender's, if any, covered other bytes. */
	h->udp.check = 0;
	h->vx.vx_flags = bpf_htonl(WEFT_VXLAN_F_VNI);
	__builtin_memcpy(h->vx.dst, cfg->overlay_mac, ETH_ALEN);
	h->vx.proto = bpf_htons(ETH_P_IP);
	ip->tot_len = bpf_htons(tot);
	ip->check = 0;
	ip->check = ipv4_csum(ip);
	/* RECOMPUTE_CSUM keeps a CHECKSUM_COMPLETE skb's sum true to the new bytes. */
	if (bpf_skb_store_bytes(skb, ETH_HLEN, ip, sizeof(*ip), BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(*ip), h, sizeof(*h), BPF_F_RECOMPUTE_CSUM))
		return -WEFT_DROP_ENCAP_FAILED;
	return TC_ACT_OK;
}

#endif /* WEFT_HANDOFF_H */
