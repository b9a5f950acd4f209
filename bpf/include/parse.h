/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Bounds-checked parsing of the headers weft looks at: Ethernet, IPv4 and,
 * for the udp backend, the UDP ports. Each parser returns TC_ACT_OK or the
 * reason the packet cannot be handled, negated (verdict.h); the entry
 * program decides whether that reason is a drop (overlay: the packet was
 * routed to us) or a pass (underlay: the stack owns everything that is not
 * our tunnel).
 */
#ifndef WEFT_PARSE_H
#define WEFT_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "weft_maps.h"
#include "verdict.h"

#define IP_DF     0x4000
#define IP_MF     0x2000
#define IP_OFFSET 0x1fff

struct ipv4_pkt {
	struct ethhdr *eth;
	struct iphdr *ip;
	__u32 ip_len; /* IPv4 header length in bytes (ihl * 4) */
};

/* Makes the first len bytes linear, so that direct packet access sees them. */
static __always_inline int pull_linear(struct __sk_buff *skb, __u32 len)
{
	if (skb->len < len)
		return -WEFT_DROP_BAD_HEADER;
	if ((void *)(long)skb->data + len > (void *)(long)skb->data_end &&
	    bpf_skb_pull_data(skb, len))
		return -WEFT_DROP_BAD_HEADER;
	return TC_ACT_OK;
}

/*
 * Ethernet carrying IPv4 whose header is whole and whose total length fits
 * in the packet. tot_len 0 is accepted only for GSO packets (BIG TCP says
 * so when the aggregate exceeds 64 KiB).
 */
static __always_inline int parse_ipv4(struct __sk_buff *skb, struct ipv4_pkt *p)
{
	void *data, *data_end;
	__u32 tot_len;

	if (skb->len < ETH_HLEN)
		return -WEFT_DROP_BAD_HEADER;
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return -WEFT_DROP_UNSUPPORTED;
	if (IS_DROP(pull_linear(skb, ETH_HLEN + sizeof(struct iphdr))))
		return -WEFT_DROP_BAD_HEADER;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	p->eth = data;
	if ((void *)(p->eth + 1) > data_end)
		return -WEFT_DROP_BAD_HEADER;
	if (p->eth->h_proto != bpf_htons(ETH_P_IP))
		return -WEFT_DROP_UNSUPPORTED;
	p->ip = (void *)(p->eth + 1);
	if ((void *)(p->ip + 1) > data_end)
		return -WEFT_DROP_BAD_HEADER;
	if (p->ip->version != 4 || p->ip->ihl < 5)
		return -WEFT_DROP_BAD_HEADER;
	p->ip_len = p->ip->ihl * 4;
	tot_len = bpf_ntohs(p->ip->tot_len);
	if (tot_len == 0 && skb->gso_size)
		return TC_ACT_OK;
	if (tot_len < p->ip_len || tot_len > skb->len - ETH_HLEN)
		return -WEFT_DROP_BAD_HEADER;
	return TC_ACT_OK;
}

static __always_inline int is_fragment(const struct iphdr *ip)
{
	return ip->frag_off & bpf_htons(IP_MF | IP_OFFSET);
}

/* The UDP destination port (host order) of a parsed IPv4 packet, or 0 when the header is short. */
static __always_inline __u16 udp_dport(struct __sk_buff *skb, const struct ipv4_pkt *p)
{
	__u32 off = ETH_HLEN + p->ip_len;
	__be16 port;

	if (bpf_skb_load_bytes(skb, off + __builtin_offsetof(struct udphdr, dest), &port, sizeof(port)))
		return 0;
	return bpf_ntohs(port);
}

/* Whether addr (network order) lies in prefix/len (prefix in network order). */
static __always_inline int in_prefix(__be32 addr, __be32 prefix, __u8 len)
{
	__u32 mask;

	if (len == 0)
		return 1;
	if (len > 32)
		return 0;
	mask = ~0u << (32 - len);
	return (bpf_ntohl(addr) & mask) == (bpf_ntohl(prefix) & mask);
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
#pragma unroll
	for (int i = 0; i < ETH_ALEN; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

#endif /* WEFT_PARSE_H */
