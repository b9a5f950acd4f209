/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one return convention of every helper that decides a packet's fate,
 * as Cilium's: a TC verdict (>= 0: TC_ACT_OK, TC_ACT_REDIRECT, ...) or a
 * drop reason negated (< 0: -WEFT_DROP_*). A helper with nothing to decide
 * says TC_ACT_OK, "carry on". TC_ACT_UNSPEC (-1) is the one negative verdict
 * and no helper returns it, so a negative value is always a drop; the entry
 * program counts it under its reason in one place, its last line
 * (verdict() in counters.h), which also turns "carry on" into
 * TC_ACT_UNSPEC so that other programs on the hook still run.
 *
 * Helpers that only answer a question (pod_hop, plain_flow, ct_may_skip)
 * return a truth value, and wrappers of one kernel call (pop_outer,
 * handoff_room) its 0-or-error.
 */
#ifndef WEFT_VERDICT_H
#define WEFT_VERDICT_H

#include <linux/pkt_cls.h>
#include "weft_maps.h"

#define IS_DROP(ret) ((ret) < 0)

#endif /* WEFT_VERDICT_H */
