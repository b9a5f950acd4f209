/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Out of the underlay by the host's FIB: the last step of every packet the
 * programs encapsulate themselves (ipip, udp, pushed vxlan) and of direct
 * peers' traffic (host-gw, DirectRouting).
 */
#ifndef WEFT_FIB_H
#define WEFT_FIB_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "weft_maps.h"
#include "verdict.h"

#ifndef AF_INET
#define AF_INET 2
#endif

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

#endif /* WEFT_FIB_H */
