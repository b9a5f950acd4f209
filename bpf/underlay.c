// SPDX-License-Identifier: GPL-2.0
/*
 * TC ingress of the underlay interface, which carries all of the host's
 * traffic: only our own overlay traffic is touched. IPv4 to our address with
 * protocol 4 (ipip backend) or to the udp port (udp backend) is handed to
 * the overlay device's vxlan receive path or decapsulated here; vxlan for a
 * local pod is decapsulated here when it is plain (vxlan_to_pod), and left
 * to the vxlan device otherwise; pod traffic from direct peers (host-gw,
 * DirectRouting) is forwarded to the pod's device (forward.h). Everything
 * else passes untouched, including everything before the agent has written
 * its config, so that attaching early can never cut a host off its network.
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

/* What an arriving IPv4 packet is to weft. */
enum arrival {
	ARRIVAL_HOST,    /* the host's own traffic: passed untouched */
	ARRIVAL_DIRECT,  /* pod traffic from a host-gw or DirectRouting peer, as it was sent */
	ARRIVAL_VXLAN,   /* UDP to us under the vxlan backend */
	ARRIVAL_IPIP,    /* protocol 4 to us under the ipip backend */
	ARRIVAL_UDP,     /* to the udp backend's port */
	ARRIVAL_FORGED,  /* to the overlay device's own port (WEFT_CFG_F_KERNEL_DECAP) from outside */
};

static __always_inline enum arrival classify(struct __sk_buff *skb, const struct weft_config *cfg, const struct ipv4_pkt *p)
{
	__u16 dport;

	if (in_prefix(p->ip->daddr, cfg->network, cfg->network_len))
		return ARRIVAL_DIRECT;
	if (p->ip->daddr != cfg->public_ip)
		return ARRIVAL_HOST;
	if (cfg->backend == WEFT_ENCAP_VXLAN)
		return p->ip->protocol == IPPROTO_UDP ? ARRIVAL_VXLAN : ARRIVAL_HOST;
	if (cfg->backend == WEFT_ENCAP_IPIP && p->ip->protocol == IPPROTO_IPIP)
		return ARRIVAL_IPIP;
	/* Later fragments carry no port: the stack gets them, and drops them with no socket. */
	if (p->ip->protocol != IPPROTO_UDP || (p->ip->frag_off & bpf_htons(IP_OFFSET)) ||
	    (cfg->backend != WEFT_ENCAP_UDP && !(cfg->flags & WEFT_CFG_F_KERNEL_DECAP)))
		return ARRIVAL_HOST;
	dport = udp_dport(skb, p);
	if (!dport)
		return ARRIVAL_HOST;
	if (cfg->backend == WEFT_ENCAP_UDP && dport == cfg->port)
		return ARRIVAL_UDP;
	if ((cfg->flags & WEFT_CFG_F_KERNEL_DECAP) && dport == cfg->decap_port)
		return ARRIVAL_FORGED;
	return ARRIVAL_HOST;
}

/*
 * What was done with a packet of ours (for its trace event, asked only when
 * one is wanted): a redirect from the ipip or udp decapsulation went to the
 * overlay device when it carries the device's MAC, else to a pod's port.
 */
static __always_inline __u8 arrival_action(struct __sk_buff *skb, const struct weft_config *cfg, enum arrival what, int ret)
{
	__u8 dst[ETH_ALEN];

	if (what != ARRIVAL_IPIP && what != ARRIVAL_UDP)
		return ret == TC_ACT_REDIRECT ? WEFT_TRACE_TO_POD : WEFT_TRACE_TO_KERNEL;
	if (ret != TC_ACT_REDIRECT)
		return WEFT_TRACE_HANDOFF;
	if (!bpf_skb_load_bytes(skb, offsetof(struct ethhdr, h_dest), dst, ETH_ALEN) &&
	    mac_eq(dst, cfg->overlay_mac))
		return WEFT_TRACE_TO_OVERLAY;
	return WEFT_TRACE_TO_POD;
}

SEC("tc")
int underlay_decap(struct __sk_buff *skb)
{
	const struct weft_config *cfg = config_ready();
	__u32 len = skb->len;
	struct weft_event *ev;
	struct ipv4_pkt p;
	enum arrival what;
	int ret;

	/* Not ours: carry on to whatever else runs at this hook (TCX_NEXT, see verdict()). */
	if (!cfg || IS_DROP(parse_ipv4(skb, &p)))
		return TC_ACT_UNSPEC;
	what = classify(skb, cfg, &p);
	if (what == ARRIVAL_HOST)
		return TC_ACT_UNSPEC;
	/* Described as it arrived: decapsulation takes the outer headers away. */
	ev = trace_begin(skb, cfg, len, WEFT_PROG_UNDERLAY_DECAP, WEFT_DIR_INGRESS);
	switch (what) {
	case ARRIVAL_DIRECT:
		/* Counted as received, whether it is forwarded here or left to the stack. */
		count_traffic(WEFT_DIR_INGRESS, WEFT_ENCAP_DIRECT, len);
		ret = forward_to_pod(skb, cfg, cfg->underlay_ifindex);
		break;
	case ARRIVAL_VXLAN:
		ret = vxlan_to_pod(skb, cfg, &p);
		/* What vxlan_to_pod() leaves is the vxlan device's; what it takes is counted as the device counts: the inner frame. */
		if (ret == TC_ACT_REDIRECT)
			count_traffic(WEFT_DIR_INGRESS, WEFT_ENCAP_VXLAN, len - ETH_HLEN - p.ip_len - sizeof(struct udphdr) - WEFT_VXLAN_HLEN);
		break;
	case ARRIVAL_IPIP:
	case ARRIVAL_UDP:
		ret = decap_ip(skb, cfg, &p, what == ARRIVAL_UDP);
		if (!IS_DROP(ret))
			count_traffic(WEFT_DIR_INGRESS, cfg->backend, len - ip_tunnel_olen(&p, what == ARRIVAL_UDP));
		break;
	case ARRIVAL_FORGED:
		/* Only this program feeds the overlay device's port; VXLAN from outside is not ours to take. */
		ret = -WEFT_DROP_UNSUPPORTED;
		break;
	default:
		ret = TC_ACT_OK;
		break;
	}
	trace_end(ev, ret, ev ? arrival_action(skb, cfg, what, ret) : 0);
	return verdict(skb, cfg, ret, len, WEFT_PROG_UNDERLAY_DECAP, WEFT_DIR_INGRESS);
}
