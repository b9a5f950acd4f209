/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Whether a packet may skip the host's forward path as far as conntrack is
 * concerned, asked through the nf_conntrack kfuncs (a kernel without them
 * has no conntrack for BPF: the weak references make every answer "not
 * followed" there, and the object still loads).
 *
 * A flow conntrack does not follow skips it freely, unless conntrack follows
 * flows on this host (WEFT_CFG_F_CT_FOLLOWS): then a packet it has no entry
 * for is a mid-stream pickup or INVALID, and only conntrack may say which.
 *
 * A flow conntrack follows must go on being followed: both directions seen,
 * translations undone, INVALID packets (kube-proxy drops them) found,
 * timeouts kept, FIN and RST closing it. The kfuncs let a program look an
 * entry up, read it and move its timeout; nothing lets it move conntrack's
 * TCP window (td_end, td_maxend: no kfunc writes ct->proto, the verifier
 * lets programs write only ct->mark), so a packet that skips conntrack leaves
 * the window behind it, and the next packet conntrack does see (a FIN) falls
 * outside and is INVALID. The one established flow that may skip it is one
 * whose windows conntrack tracks liberally in both directions, as the kernel's
 * own flowtable marks the flows it offloads (IP_CT_TCP_FLAG_BE_LIBERAL:
 * nf_conntrack_tcp_be_liberal=1, or the agent through ctnetlink):
 *
 *   TCP, ESTABLISHED, confirmed, assured, a reply seen; no NAT (translations
 *   are conntrack's to undo), no helper or expectation, no fixed timeout;
 *   the packet a plain ACK (no SYN, FIN, RST or URG: conntrack must see those,
 *   and its flag checks stay with it). Its timeout is refreshed here to
 *   conntrack's own established timeout, as conntrack would on every packet.
 *
 * Such a flow that is not liberal yet is written to weft_ct_wanted for the
 * agent (and a record to weft_ct_wake wakes it), and goes the host's way
 * meanwhile. Everything else goes the host's way always.
 */
#ifndef WEFT_CONNTRACK_H
#define WEFT_CONNTRACK_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include "weft_maps.h"
#include "maps.h"

/*
 * The parts of the kernel's nf_conn the fast path reads, relocated by CO-RE
 * against the kernel's BTF. A declaration alone would not do: libbpf matches
 * the kfuncs' prototypes against the kernel's BTF and takes a forward
 * declaration for a different type than the kernel's struct.
 */
struct ip_ct_tcp_state {
	__u8 flags;
} __attribute__((preserve_access_index));

struct ip_ct_tcp {
	struct ip_ct_tcp_state seen[2];
	__u8 state;
} __attribute__((preserve_access_index));

union nf_conntrack_proto {
	struct ip_ct_tcp tcp;
} __attribute__((preserve_access_index));

struct nf_conn {
	__u32 timeout;
	unsigned long status;
	union nf_conntrack_proto proto;
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

/* include/uapi/linux/netfilter/nf_conntrack_common.h, nf_conntrack_tcp.h */
#define WEFT_IPS_EXPECTED      (1 << 0)
#define WEFT_IPS_SEEN_REPLY    (1 << 1)
#define WEFT_IPS_ASSURED       (1 << 2)
#define WEFT_IPS_CONFIRMED     (1 << 3)
#define WEFT_IPS_SRC_NAT       (1 << 4)
#define WEFT_IPS_DST_NAT       (1 << 5)
#define WEFT_IPS_DYING         (1 << 9)
#define WEFT_IPS_FIXED_TIMEOUT (1 << 10)
#define WEFT_IPS_HELPER        (1 << 13)
#define WEFT_IPS_OFFLOAD       (1 << 14)
#define WEFT_CT_TCP_ESTABLISHED 3
#define WEFT_CT_TCP_FLAG_BE_LIBERAL 0x08

#define WEFT_TCP_FIN 0x01
#define WEFT_TCP_SYN 0x02
#define WEFT_TCP_RST 0x04
#define WEFT_TCP_ACK 0x10
#define WEFT_TCP_URG 0x20

extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb, struct bpf_sock_tuple *tuple, __u32 tuple__sz,
					 struct bpf_ct_opts *opts, __u32 opts__sz) __ksym __weak;
extern void bpf_ct_release(struct nf_conn *ct) __ksym __weak;
extern int bpf_ct_change_timeout(struct nf_conn *ct, __u32 timeout) __ksym __weak;
extern int CONFIG_HZ __kconfig __weak;

/* Conntrack's answer for one flow. */
enum ct_verdict {
	CT_UNTRACKED, /* no entry */
	CT_FAST,      /* followed, and may skip the host: its timeout was refreshed */
	CT_WANTED,    /* followed, would be CT_FAST once its windows are tracked liberally */
	CT_HOST,      /* followed: the host's path only */
};

/* Moves the entry's timeout to conntrack's established timeout when a second or more of it has passed. */
static __always_inline void ct_refresh(struct nf_conn *ct, __u32 timeout_ms)
{
	__u64 hz = CONFIG_HZ > 0 ? CONFIG_HZ : 1000;
	__s32 left = (__s32)(ct->timeout - (__u32)bpf_jiffies64());

	if ((__s64)left * 1000 < ((__s64)timeout_ms - 1000) * (__s64)hz)
		bpf_ct_change_timeout(ct, timeout_ms);
}

/* The rules above, for a flow conntrack follows; tcp_flags is the packet's flags byte. */
static __always_inline enum ct_verdict ct_judge(struct nf_conn *ct, __u8 proto, __u8 tcp_flags, __u32 timeout_ms)
{
	const unsigned long need = WEFT_IPS_CONFIRMED | WEFT_IPS_ASSURED | WEFT_IPS_SEEN_REPLY;
	const unsigned long refuse = WEFT_IPS_SRC_NAT | WEFT_IPS_DST_NAT | WEFT_IPS_EXPECTED | WEFT_IPS_HELPER |
				     WEFT_IPS_DYING | WEFT_IPS_FIXED_TIMEOUT | WEFT_IPS_OFFLOAD;
	unsigned long status = ct->status;

	if (!timeout_ms || proto != IPPROTO_TCP || !bpf_ct_change_timeout)
		return CT_HOST;
	if ((tcp_flags & (WEFT_TCP_SYN | WEFT_TCP_FIN | WEFT_TCP_RST | WEFT_TCP_URG | WEFT_TCP_ACK)) != WEFT_TCP_ACK)
		return CT_HOST;
	if ((status & need) != need || (status & refuse) || ct->proto.tcp.state != WEFT_CT_TCP_ESTABLISHED)
		return CT_HOST;
	if (!(ct->proto.tcp.seen[0].flags & ct->proto.tcp.seen[1].flags & WEFT_CT_TCP_FLAG_BE_LIBERAL))
		return CT_WANTED;
	ct_refresh(ct, timeout_ms);
	return CT_FAST;
}

/*
 * Leaves a flow for the agent to mark liberal (weft_ct_wanted), once: a flow
 * already there is not rewritten. A flow newly left there wakes the agent
 * (weft_ct_wake); the ring's default wake-up is the kernel's irq_work, sent
 * only when the agent has read everything before it.
 */
static __always_inline void ct_want(const struct iphdr *ip, __be16 sport, __be16 dport)
{
	struct weft_tuple t = {};
	__u32 one = 1;

	t.saddr = ip->saddr;
	t.daddr = ip->daddr;
	t.sport = sport;
	t.dport = dport;
	t.proto = ip->protocol;
	if (bpf_map_update_elem(&weft_ct_wanted, &t, &one, BPF_NOEXIST) == 0)
		bpf_ringbuf_output(&weft_ct_wake, &t, sizeof(t), 0);
}

/*
 * Whether a TCP or UDP packet (ports in network order, tcp_flags its flags
 * byte, 0 for UDP) may skip the host's forward path as far as conntrack is
 * concerned; see the top of this file.
 */
static __always_inline int ct_may_skip(struct __sk_buff *skb, const struct weft_config *cfg, const struct iphdr *ip,
				       __be16 sport, __be16 dport, __u8 tcp_flags)
{
	struct bpf_sock_tuple t = {};
	struct bpf_ct_opts opts = {};
	enum ct_verdict v;
	struct nf_conn *ct;

	if (!bpf_skb_ct_lookup || !bpf_ct_release)
		return 1;
	t.ipv4.saddr = ip->saddr;
	t.ipv4.daddr = ip->daddr;
	t.ipv4.sport = sport;
	t.ipv4.dport = dport;
	opts.netns_id = BPF_F_CURRENT_NETNS;
	opts.l4proto = ip->protocol;
	ct = bpf_skb_ct_lookup(skb, &t, sizeof(t.ipv4), &opts, WEFT_CT_OPTS_SZ);
	if (!ct) {
		/* Only "no such flow" is an answer; a lookup that failed otherwise cannot vouch for the flow. */
		if (opts.error != -WEFT_ENOENT)
			return 0;
		return !(cfg->flags & WEFT_CFG_F_CT_FOLLOWS);
	}
	v = ct_judge(ct, ip->protocol, tcp_flags, cfg->ct_timeout_ms);
	bpf_ct_release(ct);
	if (v == CT_WANTED)
		ct_want(ip, sport, dport);
	return v == CT_FAST;
}

#endif /* WEFT_CONNTRACK_H */
