// `weft bpf lookup <ip>`: the entry of weft_peers a destination matches
// (longest prefix, as the trie does) and what overlay_egress would do with
// a packet to it. Pure: the command feeds it what it read from the pins.
import type { DecodedConfig, DropReason } from '../../dataplane/ebpf/maps.js';
import { DEFAULT_UDP_PORT, DEFAULT_VXLAN_PORT } from '../../config/network.js';
import type { PeerEntry } from './pins.js';
import { IPNet, parseIP } from '../../core/ipnet.js';

export type LookupAction = 'encapsulate' | 'forward' | 'local' | 'pass' | 'drop';

export interface LookupResult {
  address: string;
  network: string | null;
  inNetwork: boolean;
  /** The entry the trie returns, or null when none covers the address. */
  match: { subnet: string; local: boolean; encap: string; publicIP: string; vni: number | null; vtepMAC: string | null; directRouting: boolean } | null;
  action: LookupAction;
  /** For encapsulate: vxlan, ipip or udp. */
  encap: string | null;
  /** Outer destination (encapsulate) or next hop (forward). */
  via: string | null;
  vni: number | null;
  vtepMAC: string | null;
  /** Outer UDP destination port (vxlan, udp). */
  port: number | null;
  /** For drop: the reason name the program counts it under (weft bpf drops). */
  dropReason: DropReason | null;
  /** One sentence for a person. */
  says: string;
}

/** An IPv4 address as a number for the trie's question, or null when the text is not one. */
export function ipv4Value(addr: string): bigint | null {
  const p = parseIP(addr);
  return p && p.family === 4 ? p.value : null;
}

function contains(cidr: string, addr: bigint): boolean {
  const net = IPNet.parse(cidr);
  return net !== null && net.family === 4 && net.containsIP(addr);
}

/** The longest prefix among entries that holds addr, as BPF_MAP_TYPE_LPM_TRIE answers. */
export function longestMatch(entries: PeerEntry[], addr: bigint): PeerEntry | null {
  let best: PeerEntry | null = null;
  let bestLen = -1;
  for (const e of entries) {
    const len = Number(e.subnet.split('/')[1]);
    if (len > bestLen && contains(e.subnet, addr)) {
      best = e;
      bestLen = len;
    }
  }
  return best;
}

export function lookup(address: string, config: DecodedConfig | null, entries: PeerEntry[]): LookupResult {
  const addr = ipv4Value(address);
  if (addr === null) throw new TypeError(`"${address}" is not an IPv4 address`);
  const m = longestMatch(entries, addr);
  const inNetwork = config !== null && contains(config.network, addr);
  const r: LookupResult = {
    address,
    network: config?.network ?? null,
    inNetwork,
    match: m && {
      subnet: m.subnet,
      local: m.local,
      encap: m.local ? 'none' : m.route.encap,
      publicIP: m.route.publicIP.toString(),
      vni: m.route.vni ?? null,
      vtepMAC: m.route.vtepMAC ?? null,
      directRouting: m.route.directRouting,
    },
    action: 'pass',
    encap: null,
    via: null,
    vni: null,
    vtepMAC: null,
    port: null,
    dropReason: null,
    says: '',
  };
  if (config === null || !config.ready) {
    r.action = 'drop';
    r.dropReason = 'not_ready';
    r.says = `the agent has not written weft_config${config ? ' as ready' : ''}: overlay_egress drops anything routed to it (not_ready)`;
    return r;
  }
  if (!inNetwork) {
    r.says = `not in the Network ${config.network}: the host routes it as usual, weft's programs pass it to the stack`;
    return r;
  }
  if (m === null) {
    r.action = 'drop';
    r.dropReason = 'no_peer';
    r.says = `in the Network ${config.network}, but no lease holds it: overlay_egress drops it (no_peer)`;
    return r;
  }
  if (m.local || m.subnet === config.subnet) {
    r.action = 'local';
    r.says = `our own subnet ${m.subnet}: delivered locally by the host (bridge or pod routes), never tunnelled`;
    return r;
  }
  const route = m.route;
  r.via = route.publicIP.toString();
  if (route.encap === 'direct' || route.directRouting) {
    r.action = 'forward';
    const why = route.directRouting ? `DirectRouting: ${route.publicIP} shares our L2 segment` : 'host-gw';
    r.says = `peer subnet ${m.subnet}: forwarded directly to next hop ${route.publicIP} on the underlay (${why})`;
    return r;
  }
  r.action = 'encapsulate';
  r.encap = route.encap;
  if (route.encap === 'vxlan') {
    r.vni = route.vni ?? null;
    r.vtepMAC = route.vtepMAC ?? null;
    r.port = config.port || DEFAULT_VXLAN_PORT;
    r.says = `peer subnet ${m.subnet}: encapsulated in vxlan to ${route.publicIP} (VNI ${r.vni}, inner destination MAC ${r.vtepMAC}, UDP port ${r.port})`;
  } else if (route.encap === 'udp') {
    r.port = config.port || DEFAULT_UDP_PORT;
    r.says = `peer subnet ${m.subnet}: encapsulated in UDP to ${route.publicIP} port ${r.port} (flannel's udp wire format)`;
  } else {
    r.says = `peer subnet ${m.subnet}: encapsulated in IPIP to ${route.publicIP}`;
  }
  return r;
}
