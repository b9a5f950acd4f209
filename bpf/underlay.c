// SPDX-License-Identifier: GPL-2.0
/*
 * TC ingress of the underlay interface, which carries all of the host's
 * traffic: only our own overlay traffic is touched. IPv4 to our address with
 * protocol 4 (ipip backend) or to the udp port (udp backend) is handed to
 * the overlay device's vxlan receive path or decapsulated here; vxlan for a
 * local pod is decapsulated here when it is plain (vxlan_to_pod), and left
 * to the vxlan device otherwise; pod traffic from direct peers (host-gw,
 * DirectRouting) is forwarded to the pod's device (forward.h). Everything else passes untouched, including everything before
 * the agent has written its config, so that attaching early can never cut a
 * host off its network.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "weft_maps.h"
#include "maps.h"
#include "parse.h"
#include "counters.h"
#include "decap.h"
#include "forward.h"

char LICENSE[] SEC("license") = "GPL";

SEC("tc")
int underlay_decap(struct __sk_buff *skb)
{
	const struct weft_config *cfg = config_ready();
	__u32 len = skb->len;
	struct ipv4_pkt p;
	__u16 dport = 0;
	__u32 olen;
	int with_udp;
	int ret;

	if (!cfg || parse_ipv4(skb, &p))
		return TC_ACT_OK;
	/* host-gw and DirectRouting peers send pod traffic as is: count it, then forward it or let the stack. */
	if (in_prefix(p.ip->daddr, cfg->network, cfg->network_len)) {
		count_traffic(WEFT_DIR_INGRESS, WEFT_ENCAP_DIRECT, len);
		ret = forward_to_pod(skb, cfg, cfg->underlay_ifindex);
		return ret < 0 ? drop(-ret, len) : ret;
	}
	if (p.ip->daddr != cfg->public_ip)
		return TC_ACT_OK;

	if (cfg->backend == WEFT_ENCAP_VXLAN) {
		/* What vxlan_to_pod() leaves is the vxlan device's; what it takes is counted as the device counts. */
		__u32 inner_len = len - ETH_HLEN - p.ip_len - sizeof(struct udphdr) - 2 * sizeof(__u32);

		if (p.ip->protocol != IPPROTO_UDP)
			return TC_ACT_OK;
		ret = vxlan_to_pod(skb, cfg, &p);
		if (ret < 0)
			return drop(-ret, len);
		if (ret == TC_ACT_REDIRECT)
			count_traffic(WEFT_DIR_INGRESS, WEFT_ENCAP_VXLAN, inner_len);
		return ret;
	}

	if (p.ip->protocol == IPPROTO_UDP && !(p.ip->frag_off & bpf_htons(IP_OFFSET)) &&
	    (cfg->backend == WEFT_ENCAP_UDP || (cfg->flags & WEFT_CFG_F_KERNEL_DECAP)))
		dport = udp_dport(skb, &p);
	if (cfg->backend == WEFT_ENCAP_IPIP && p.ip->protocol == IPPROTO_IPIP) {
		with_udp = 0;
	} else if (cfg->backend == WEFT_ENCAP_UDP && dport && dport == cfg->port) {
		with_udp = 1;
	} else if ((cfg->flags & WEFT_CFG_F_KERNEL_DECAP) && dport && dport == cfg->decap_port) {
		/* Only this program feeds the overlay device's port; VXLAN from outside is not ours to take. */
		return drop(WEFT_DROP_UNSUPPORTED, len);
	} else {
		/* Later fragments carry no port: the stack gets them, and drops them with no socket. */
		return TC_ACT_OK;
	}
	/* An outer fragment cannot be decapsulated in place; senders set DF, so this is rare. */
	if (is_fragment(p.ip))
		return drop(WEFT_DROP_UNSUPPORTED, len);
	olen = p.ip_len + (with_udp ? sizeof(struct udphdr) : 0);
	ret = decap_ip(skb, cfg, &p, olen, with_udp);
	if (ret < 0)
		return drop(-ret, len);
	count_traffic(WEFT_DIR_INGRESS, cfg->backend, len - olen);
	return ret;
}
