/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The map instances both objects share. Their layouts are in weft_maps.h;
 * pinning by name makes overlay.o and underlay.o open the same maps under
 * the loader's pin root, and lets a restarted agent adopt them with their
 * peers and counters intact.
 */
#ifndef WEFT_MAPS_INSTANCES_H
#define WEFT_MAPS_INSTANCES_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "weft_maps.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, WEFT_PEERS_MAX);
	__type(key, struct weft_lpm_key);
	__type(value, struct weft_peer);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weft_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WEFT_STATS_ENTRIES);
	__type(key, __u32);
	__type(value, struct weft_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WEFT_DROP_MAX);
	__type(key, __u32);
	__type(value, struct weft_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_drops SEC(".maps");

/* What the programs tell `weft monitor` (events.h); pinned, so a monitor reads it with the agent stopped. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, WEFT_EVENTS_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_events SEC(".maps");

/* Whether anyone listens, and how many events were lost: enum weft_monitor_slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WEFT_MON_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_monitor SEC(".maps");

/* The bridges' forwarding database for the programs (forward.h): pinned only while the objects load, so that both share it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEFT_PORTS_MAX);
	__type(key, struct weft_port_key);
	__type(value, struct weft_port);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_ports SEC(".maps");

/* The ports from_pod runs on, and their bridge (weft_maps.h): only gateway.o reads it; pinned while loading, like weft_ports. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, WEFT_PORTS_MAX);
	__type(key, __u32);
	__type(value, struct weft_pod_port);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_pod_ports SEC(".maps");

/* Flows the fast path waits to take (weft_maps.h, conntrack.h): shared like weft_ports, read by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEFT_CT_WANTED_MAX);
	__type(key, struct weft_tuple);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_ct_wanted SEC(".maps");

/* A record per flow added to weft_ct_wanted, to wake the agent (weft_maps.h): shared and unpinned like it. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, WEFT_CT_WAKE_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_ct_wake SEC(".maps");

/*
 * In a section of its own, which libbpf loads as no map: only its type
 * matters, in the BTF (weft_maps.h says why).
 */
struct weft_contract weft_contract SEC("weft_btf");

/* The local facts, or NULL until the agent has marked them READY. */
static __always_inline const struct weft_config *config_ready(void)
{
	__u32 zero = 0;
	const struct weft_config *cfg = bpf_map_lookup_elem(&weft_config, &zero);

	if (!cfg || !(cfg->flags & WEFT_CFG_F_READY))
		return 0;
	return cfg;
}

static __always_inline const struct weft_peer *peer_for(__be32 addr)
{
	struct weft_lpm_key key = { .prefixlen = 32, .addr = addr };

	return bpf_map_lookup_elem(&weft_peers, &key);
}

#endif /* WEFT_MAPS_INSTANCES_H */
