/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-CPU counters: traffic by direction and encapsulation, drops by reason
 * (enum weft_drop_reason in weft_maps.h). Per-CPU so that counting never
 * contends; the agent sums the CPUs when it reads them.
 */
#ifndef WEFT_COUNTERS_H
#define WEFT_COUNTERS_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "maps.h"
#include "verdict.h"
#include "events.h"

static __always_inline void count_traffic(__u32 dir, __u32 encap, __u32 bytes)
{
	__u32 idx = weft_stats_index(dir, encap);
	struct weft_counter *c;

	if (encap >= WEFT_ENCAP_MAX)
		return;
	c = bpf_map_lookup_elem(&weft_stats, &idx);
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

static __always_inline void count_drop(__u32 reason, __u32 bytes)
{
	struct weft_counter *c;

	if (reason >= WEFT_DROP_MAX)
		reason = WEFT_DROP_NONE;
	c = bpf_map_lookup_elem(&weft_drops, &reason);
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

/*
 * Every entry program's last step, and the one place it counts drops: a
 * drop reason negated (verdict.h) is counted under its reason, told to a
 * listening `weft monitor` (events.h) and shot. TC_ACT_OK, "carry on",
 * leaves as TC_ACT_UNSPEC (tcx's TCX_NEXT): the packet goes on to whatever
 * else runs at the hook, other tcx programs and then classic filters, and the
 * kernel passes it when nothing else is there, as it would TC_ACT_OK;
 * TC_ACT_OK itself would end the hook's chain and starve programs that others
 * attached beside weft's (attach.ts). Any other verdict stands. prog and dir
 * say where it happened (enum weft_prog, enum weft_dir).
 */
static __always_inline int verdict(struct __sk_buff *skb, const struct weft_config *cfg, int ret, __u32 bytes,
				   __u8 prog, __u8 dir)
{
	if (ret == TC_ACT_OK)
		return TC_ACT_UNSPEC;
	if (!IS_DROP(ret))
		return ret;
	count_drop(-ret, bytes);
	emit_drop(skb, cfg, -ret < WEFT_DROP_MAX ? -ret : WEFT_DROP_NONE, bytes, prog, dir);
	return TC_ACT_SHOT;
}

#endif /* WEFT_COUNTERS_H */
