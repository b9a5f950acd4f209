/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Whether conntrack follows a flow. A program that forwards packets past the
 * stack must leave every packet of such a flow to it: conntrack has to see
 * both directions, or it undoes no translation (kube-proxy's DNAT on the
 * replies) and calls the next packet it does see INVALID (which kube-proxy's
 * FORWARD rules drop). Asked through the nf_conntrack kfuncs; a kernel
 * without them has no conntrack for BPF, and the weak references make the
 * answer "not followed" there (the object still loads).
 */
#ifndef WEFT_CONNTRACK_H
#define WEFT_CONNTRACK_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

/*
 * Only its presence matters here, but a declaration alone would not do:
 * libbpf matches the kfuncs' prototypes against the kernel's BTF and takes
 * a forward declaration for a different type than the kernel's struct.
 */
struct nf_conn {
	unsigned long status;
} __attribute__((preserve_access_index));

/* As in net/netfilter/nf_conntrack_bpf.c; the kernel reads the first opts__sz bytes. */
struct bpf_ct_opts {
	__s32 netns_id;
	__s32 error;
	__u8  l4proto;
	__u8  dir;
	__u16 ct_zone_id;
	__u8  ct_zone_dir;
	__u8  reserved[3];
};

/* 12 is the original size, which every kernel with these kfuncs accepts. */
#define WEFT_CT_OPTS_SZ 12
#define WEFT_ENOENT 2

extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb, struct bpf_sock_tuple *tuple, __u32 tuple__sz,
					 struct bpf_ct_opts *opts, __u32 opts__sz) __ksym __weak;
extern void bpf_ct_release(struct nf_conn *ct) __ksym __weak;

/* A TCP or UDP flow (ports in network order) that conntrack has an entry for, in either direction. */
static __always_inline int ct_tracked(struct __sk_buff *skb, const struct iphdr *ip, __be16 sport, __be16 dport)
{
	struct bpf_sock_tuple t = {};
	struct bpf_ct_opts opts = {};
	struct nf_conn *ct;

	if (!bpf_skb_ct_lookup || !bpf_ct_release)
		return 0;
	t.ipv4.saddr = ip->saddr;
	t.ipv4.daddr = ip->daddr;
	t.ipv4.sport = sport;
	t.ipv4.dport = dport;
	opts.netns_id = BPF_F_CURRENT_NETNS;
	opts.l4proto = ip->protocol;
	ct = bpf_skb_ct_lookup(skb, &t, sizeof(t.ipv4), &opts, WEFT_CT_OPTS_SZ);
	/* Only "no such flow" is an answer; a lookup that failed otherwise cannot vouch for the flow. */
	if (!ct)
		return opts.error != -WEFT_ENOENT;
	bpf_ct_release(ct);
	return 1;
}

#endif /* WEFT_CONNTRACK_H */
