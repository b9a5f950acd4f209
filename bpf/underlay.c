// SPDX-License-Identifier: GPL-2.0
/*
 * TC ingress of the underlay interface, which carries all of the host's
 * traffic: only our own tunnel traffic is touched. IPv4 to our address with
 * protocol 4 (ipip backend) or to the udp port (udp backend) is decapsulated
 * and delivered on the overlay device; everything else passes untouched,
 * including everything before the agent has written its config, so that
 * attaching early can never cut a host off its network.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "weft_maps.h"
#include "maps.h"
#include "parse.h"
#include "counters.h"
#include "encap.h"

char LICENSE[] SEC("license") = "GPL";

SEC("tc")
int underlay_decap(struct __sk_buff *skb)
{
	const struct weft_config *cfg = config_ready();
	__u32 len = skb->len;
	struct ipv4_pkt p;
	__u32 olen;
	int with_udp;
	int ret;

	if (!cfg || parse_ipv4(skb, &p))
		return TC_ACT_OK;
	/* host-gw and DirectRouting peers send pod traffic as is: count it, the stack routes it. */
	if (in_prefix(p.ip->daddr, cfg->network, cfg->network_len)) {
		count_traffic(WEFT_DIR_INGRESS, WEFT_ENCAP_DIRECT, len);
		return TC_ACT_OK;
	}
	if (p.ip->daddr != cfg->public_ip)
		return TC_ACT_OK;

	if (cfg->backend == WEFT_ENCAP_IPIP && p.ip->protocol == IPPROTO_IPIP) {
		with_udp = 0;
	} else if (cfg->backend == WEFT_ENCAP_UDP && p.ip->protocol == IPPROTO_UDP) {
		/* Later fragments carry no port: the stack gets them, and drops them with no socket. */
		if (p.ip->frag_off & bpf_htons(IP_OFFSET))
			return TC_ACT_OK;
		if (udp_dport(skb, &p) != cfg->port)
			return TC_ACT_OK;
		with_udp = 1;
	} else {
		return TC_ACT_OK;
	}
	/* An outer fragment cannot be decapsulated in place; senders set DF, so this is rare. */
	if (is_fragment(p.ip))
		return drop(WEFT_DROP_UNSUPPORTED, len);
	olen = p.ip_len + (with_udp ? sizeof(struct udphdr) : 0);
	ret = decap_ip(skb, cfg, olen, with_udp);
	if (ret < 0)
		return drop(-ret, len);
	count_traffic(WEFT_DIR_INGRESS, cfg->backend, len - olen);
	return ret;
}
