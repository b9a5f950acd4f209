/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Events for `weft monitor`: every drop with its reason, and (sampled)
 * forwarding decisions, as struct weft_event records in the weft_events ring
 * buffer. Nobody listening must cost nothing measurable, so every emission
 * starts with one question, listening(): a lookup in the weft_monitor array
 * (which the verifier turns into an address computation) and a load. Only a
 * deadline there that a monitor renews makes the programs read the clock,
 * parse headers and reserve ring buffer space; a monitor that dies stops the
 * events within seconds without anyone cleaning up, and the first packet
 * after its deadline clears it.
 *
 * Records are filled in the ring buffer itself (no copy on the stack, whose
 * 512 bytes the forwarding helpers already share), from the packet as it is
 * when the event is emitted: before encapsulation only the inner headers
 * exist, after it both; packets the kernel's vxlan device decapsulated carry
 * the outer addresses in their tunnel metadata only, without ports.
 *
 * Built with -DWEFT_NO_EVENTS, every function here is empty: the baseline
 * `make bench` compares the programs with (bench/cases.ts).
 */
#ifndef WEFT_EVENTS_H
#define WEFT_EVENTS_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "weft_maps.h"
#include "maps.h"
#include "parse.h"
#include "verdict.h"
#include "vxlan.h"

/* What sending a packet to a peer with this encapsulation was: the action of its trace event. */
static __always_inline __u8 sent_action(const struct weft_config *cfg, __u8 encap)
{
	if (encap == WEFT_ENCAP_DIRECT)
		return WEFT_TRACE_DIRECT;
	if (encap == WEFT_ENCAP_VXLAN && !(cfg->flags & WEFT_CFG_F_VXLAN_PUSH))
		return WEFT_TRACE_TUNNEL_KEY;
	return WEFT_TRACE_ENCAP;
}

#ifndef WEFT_NO_EVENTS

/*
 * Whether a monitor's deadline lies ahead. One that has passed is cleared
 * (unless a monitor renewed it meanwhile), so that after a monitor dies the
 * packets do not even read the clock.
 */
static __always_inline int before(__u64 *until)
{
	__u64 seen = *until;

	if (!seen)
		return 0;
	if (bpf_ktime_get_ns() < seen)
		return 1;
	__sync_val_compare_and_swap(until, seen, 0);
	return 0;
}

/* Whether a monitor listens for the events of this slot (WEFT_MON_DROPS_UNTIL or _TRACE_UNTIL). */
static __always_inline int listening(__u32 slot)
{
	__u64 *until = bpf_map_lookup_elem(&weft_monitor, &slot);

	return until && before(until);
}

static __always_inline void count_lost(void)
{
	__u32 slot = WEFT_MON_LOST;
	__u64 *lost = bpf_map_lookup_elem(&weft_monitor, &slot);

	if (lost)
		__sync_fetch_and_add(lost, 1);
}

/*
 * A trace event for this decision: a monitor asks for them, and the sample
 * (one in WEFT_MON_TRACE_SAMPLE) picks it. The sample is drawn before the
 * clock is read: with one in 100 the other 99 packets never read it.
 */
static __always_inline int trace_wanted(void)
{
	__u32 until_slot = WEFT_MON_TRACE_UNTIL, sample_slot = WEFT_MON_TRACE_SAMPLE;
	__u64 *until = bpf_map_lookup_elem(&weft_monitor, &until_slot);
	__u64 *every;

	if (!until || !*until)
		return 0;
	every = bpf_map_lookup_elem(&weft_monitor, &sample_slot);
	if (every && *every > 1 && bpf_get_prandom_u32() % (__u32)*every)
		return 0;
	return before(until);
}

/* The IPv4 header at off as a tuple (ports for TCP and UDP first fragments); its header length, or 0 when there is none. */
static __always_inline __u32 read_tuple(struct __sk_buff *skb, __u32 off, struct weft_tuple *t, struct iphdr *ip)
{
	__u32 ihl;

	if (bpf_skb_load_bytes(skb, off, ip, sizeof(*ip)) || ip->version != 4 || ip->ihl < 5)
		return 0;
	ihl = ip->ihl * 4;
	t->saddr = ip->saddr;
	t->daddr = ip->daddr;
	t->proto = ip->protocol;
	if ((ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) && !(ip->frag_off & bpf_htons(IP_OFFSET)))
		bpf_skb_load_bytes(skb, off + ihl, &t->sport, 2 * sizeof(__be16));
	return ihl;
}

/*
 * Fills the event's tuples from the packet as it is now. A tunnel packet
 * (ours: ipip, or UDP to the vxlan or udp port, addressed outside the
 * Network) gives outer and inner; anything else is the inner packet alone,
 * and the kernel's tunnel metadata, when the packet carries some, gives the
 * outer addresses.
 */
static __always_inline void describe(struct __sk_buff *skb, const struct weft_config *cfg, struct weft_event *ev)
{
	struct bpf_tunnel_key key = {};
	struct vxlan_eth vx;
	struct weft_tuple t = {};
	struct iphdr ip;
	__u32 ihl, inner = 0;
	__be16 proto;

	if (bpf_skb_load_bytes(skb, offsetof(struct ethhdr, h_proto), &proto, sizeof(proto)) || proto != bpf_htons(ETH_P_IP))
		return;
	ihl = read_tuple(skb, ETH_HLEN, &t, &ip);
	if (!ihl)
		return;
	if (cfg && !is_fragment(&ip) && !in_prefix(ip.daddr, cfg->network, cfg->network_len)) {
		__u16 dport = bpf_ntohs(t.dport);

		if (ip.protocol == IPPROTO_IPIP) {
			inner = ETH_HLEN + ihl;
			ev->encap = WEFT_ENCAP_IPIP;
		} else if (ip.protocol == IPPROTO_UDP && cfg->backend == WEFT_ENCAP_UDP && dport == cfg->port) {
			inner = ETH_HLEN + ihl + sizeof(struct udphdr);
			ev->encap = WEFT_ENCAP_UDP;
		} else if (ip.protocol == IPPROTO_UDP &&
			   ((cfg->backend == WEFT_ENCAP_VXLAN && dport == cfg->port) ||
			    ((cfg->flags & WEFT_CFG_F_KERNEL_DECAP) && dport == cfg->decap_port)) &&
			   !bpf_skb_load_bytes(skb, ETH_HLEN + ihl + sizeof(struct udphdr), &vx, sizeof(vx))) {
			inner = ETH_HLEN + ihl + sizeof(struct udphdr) + sizeof(vx);
			ev->encap = cfg->backend == WEFT_ENCAP_VXLAN ? WEFT_ENCAP_VXLAN : WEFT_ENCAP_UDP;
			ev->vni = bpf_ntohl(vx.vx_vni) >> 8;
			ev->flags |= WEFT_EVENT_F_VNI;
		}
	}
	if (inner) {
		__builtin_memcpy(&ev->outer, &t, sizeof(t));
		ev->flags |= WEFT_EVENT_F_OUTER;
		__builtin_memset(&t, 0, sizeof(t));
		if (!read_tuple(skb, inner, &t, &ip))
			return;
	} else if (!bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0)) {
		ev->outer.saddr = bpf_htonl(key.remote_ipv4);
		ev->outer.daddr = bpf_htonl(key.local_ipv4);
		ev->outer.proto = IPPROTO_UDP;
		ev->outer.dport = cfg ? bpf_htons(cfg->port) : 0;
		ev->vni = key.tunnel_id;
		ev->encap = WEFT_ENCAP_VXLAN;
		ev->flags |= WEFT_EVENT_F_OUTER | WEFT_EVENT_F_TUNINFO | WEFT_EVENT_F_VNI;
	}
	__builtin_memcpy(&ev->inner, &t, sizeof(t));
	ev->flags |= WEFT_EVENT_F_INNER;
}

/*
 * The peer host an event concerns, when the caller did not know it: the far
 * end of the outer header, or the lease holder of the inner packet's far
 * address.
 */
static __always_inline void find_peer(struct weft_event *ev)
{
	const struct weft_peer *peer;

	if (ev->peer)
		return;
	if (ev->flags & WEFT_EVENT_F_OUTER) {
		ev->peer = ev->dir == WEFT_DIR_INGRESS ? ev->outer.saddr : ev->outer.daddr;
		return;
	}
	if (!(ev->flags & WEFT_EVENT_F_INNER))
		return;
	peer = peer_for(ev->dir == WEFT_DIR_INGRESS ? ev->inner.saddr : ev->inner.daddr);
	if (peer && !(peer->flags & WEFT_PEER_F_LOCAL))
		ev->peer = peer->public_ip;
}

/*
 * How a record is submitted: the monitor is woken when the ring's unread data
 * crosses WEFT_EVENTS_WAKE_BYTES (an eighth of it) or four times that, not for
 * each record. A wake-up is an irq_work on the packet's CPU (on this VM a
 * self-IPI, a VM exit) and the wake of the monitor's thread, often on the
 * other CPU: dearer than the record itself. The ring's default (wake when the
 * reader has caught up) woke a monitor that keeps up for nearly every event;
 * forcing a wake-up for every record above the mark would cost one per record
 * whenever the reader lags. Two records committed at once on two CPUs can both
 * see the first mark behind them; the second mark, and the monitor's own read
 * every READ_MS (src/monitor/session.ts), cover that, and bound how long a
 * lone event waits.
 */
#define WEFT_EVENT_RECORD_BYTES ((sizeof(struct weft_event) + BPF_RINGBUF_HDR_SZ + 7) & ~7UL) /* with the ring's header, 8-aligned */

static __always_inline int crossed(__u64 before, __u64 after, __u64 mark)
{
	return before < mark && after >= mark;
}

/* Called with the record reserved: the unread data counts it. */
static __always_inline __u64 wake_flags(void)
{
	__u64 avail = bpf_ringbuf_query(&weft_events, BPF_RB_AVAIL_DATA);
	__u64 before = avail > WEFT_EVENT_RECORD_BYTES ? avail - WEFT_EVENT_RECORD_BYTES : 0;

	return crossed(before, avail, WEFT_EVENTS_WAKE_BYTES) || crossed(before, avail, 4 * WEFT_EVENTS_WAKE_BYTES)
		       ? BPF_RB_FORCE_WAKEUP
		       : BPF_RB_NO_WAKEUP;
}

/* A record with its header filled and the packet described, or NULL when the ring buffer is full. */
static __always_inline struct weft_event *event_new(struct __sk_buff *skb, const struct weft_config *cfg, __u8 kind,
						     __u8 code, __u32 len, __u8 prog, __u8 dir, __be32 peer, __u8 encap)
{
	struct weft_event *ev = bpf_ringbuf_reserve(&weft_events, sizeof(*ev), 0);

	if (!ev) {
		count_lost();
		return 0;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->ts_ns = bpf_ktime_get_ns();
	ev->kind = kind;
	ev->code = code;
	ev->prog = prog;
	ev->dir = dir;
	ev->encap = encap;
	ev->ifindex = skb->ifindex;
	ev->len = len;
	ev->peer = peer;
	describe(skb, cfg, ev);
	return ev;
}

/* A drop, as verdict() counts it: the packet as it was when its fate was decided. */
static __always_inline void emit_drop(struct __sk_buff *skb, const struct weft_config *cfg, __u32 reason, __u32 len,
				      __u8 prog, __u8 dir)
{
	struct weft_event *ev;

	if (!listening(WEFT_MON_DROPS_UNTIL))
		return;
	ev = event_new(skb, cfg, WEFT_EVENT_DROP, reason, len, prog, dir, 0, WEFT_ENCAP_NONE);
	if (!ev)
		return;
	find_peer(ev);
	bpf_ringbuf_submit(ev, wake_flags());
}

/* A forwarding decision already carried out: the packet as it leaves the program (encapsulated, if it was). */
static __always_inline void emit_trace(struct __sk_buff *skb, const struct weft_config *cfg, __u8 action, __u32 len,
				       __u8 prog, __u8 dir, __be32 peer, __u8 encap)
{
	struct weft_event *ev;

	if (!trace_wanted())
		return;
	ev = event_new(skb, cfg, WEFT_EVENT_TRACE, action, len, prog, dir, peer, encap);
	if (!ev)
		return;
	find_peer(ev);
	bpf_ringbuf_submit(ev, wake_flags());
}

/*
 * For a decision that strips headers (decapsulation at the underlay): the
 * packet is described as it arrived, before the decision, and the record
 * kept until trace_end() says what was done (a drop discards it: emit_drop
 * tells that story).
 */
static __always_inline struct weft_event *trace_begin(struct __sk_buff *skb, const struct weft_config *cfg, __u32 len,
						       __u8 prog, __u8 dir)
{
	struct weft_event *ev;

	if (!trace_wanted())
		return 0;
	ev = event_new(skb, cfg, WEFT_EVENT_TRACE, WEFT_TRACE_TO_KERNEL, len, prog, dir, 0, WEFT_ENCAP_NONE);
	if (ev)
		find_peer(ev);
	return ev;
}

static __always_inline void trace_end(struct weft_event *ev, int ret, __u8 action)
{
	if (!ev)
		return;
	if (IS_DROP(ret)) {
		bpf_ringbuf_discard(ev, BPF_RB_NO_WAKEUP); /* nothing in it for the monitor */
		return;
	}
	ev->code = action;
	bpf_ringbuf_submit(ev, wake_flags());
}

#else /* WEFT_NO_EVENTS */

struct weft_event;
static __always_inline void emit_drop(struct __sk_buff *skb, const struct weft_config *cfg, __u32 reason, __u32 len,
				      __u8 prog, __u8 dir) {}
static __always_inline void emit_trace(struct __sk_buff *skb, const struct weft_config *cfg, __u8 action, __u32 len,
				       __u8 prog, __u8 dir, __be32 peer, __u8 encap) {}
static __always_inline struct weft_event *trace_begin(struct __sk_buff *skb, const struct weft_config *cfg, __u32 len,
						       __u8 prog, __u8 dir)
{
	return 0;
}
static __always_inline void trace_end(struct weft_event *ev, int ret, __u8 action) {}

#endif /* WEFT_NO_EVENTS */

#endif /* WEFT_EVENTS_H */
