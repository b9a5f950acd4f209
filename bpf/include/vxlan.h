/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * VXLAN on the wire (RFC 7348): the header after the outer UDP one, its
 * flags, and what the kernel's vxlan device puts in front of an inner frame.
 * push_vxlan (encap.h) writes it, vxlan_to_pod (decap.h) reads it, and the
 * udp backend's handoff (handoff.h) makes its packets look like it.
 */
#ifndef WEFT_VXLAN_H
#define WEFT_VXLAN_H

#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>

#define WEFT_VXLAN_F_VNI 0x08000000 /* the I flag: a VNI is present */
#define WEFT_VXLAN_F_GBP 0x80000000 /* the G flag: a group policy id follows (GBP) */

/* The VXLAN header alone: flags and VNI. */
#define WEFT_VXLAN_HLEN 8

/* VXLAN's header after the outer UDP one, and the inner Ethernet header after it. */
struct vxlan_eth {
	__be32 vx_flags;
	__be32 vx_vni;
	__u8   dst[ETH_ALEN];
	__u8   src[ETH_ALEN];
	__be16 proto;
} __attribute__((packed)); /* 22 bytes */

struct vxlan_outer {
	struct iphdr ip;
	struct udphdr udp;
	struct vxlan_eth vx;
} __attribute__((packed)); /* 50 bytes */

/*
 * The source port range of the kernel's vxlan (the local port range's
 * default), and its spreading of the flow hash over it (udp_flow_src_port):
 * peers and the underlay's ECMP see the same entropy either way.
 */
#define WEFT_VXLAN_SPORT_MIN 32768
#define WEFT_VXLAN_SPORT_MAX 60999

#endif /* WEFT_VXLAN_H */
