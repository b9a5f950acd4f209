// `weft bpf ...` when one runs: opens the pins, reads, prints.
import { usageError } from '../core/errors.js';
import { MAP_CONFIG, MAP_DROPS, MAP_PEERS, MAP_STATS, decodePeer, encodeLpmKey } from '../dataplane/ebpf/maps.js';
import { dash, keyValues, print, table, toJson } from './table.js';
import { PinnedMaps, type PeerEntry } from './bpf/pins.js';
import { ipv4Value, lookup, type LookupResult } from './bpf/lookup.js';
import { IPNet } from '../core/ipnet.js';
import { showCounters } from './bpf/counters.js';
import type { BpfArgs, CounterArgs, LookupArgs } from './bpf.js';

function withMaps<T>(dir: string, names: Parameters<typeof PinnedMaps.open>[1], fn: (m: PinnedMaps) => T): T {
  const maps = PinnedMaps.open(dir, names);
  try {
    return fn(maps);
  } finally {
    maps.close();
  }
}

/**
 * The backend a peer entry stands for. DirectRouting entries are forwarded
 * directly like host-gw ones; the flag, and the VtepMAC vxlan keeps, tell
 * which tunnel backend they belong to.
 */
function peerBackend(e: PeerEntry): string | null {
  if (e.local) return null;
  if (e.route.directRouting) return e.route.vtepMAC ? 'vxlan' : 'ipip';
  if (e.route.encap === 'direct') return 'host-gw';
  return e.route.encap;
}

function peerJson(e: PeerEntry): Record<string, unknown> {
  return {
    subnet: e.subnet,
    local: e.local,
    backend: peerBackend(e),
    encap: e.local ? 'none' : e.route.encap,
    publicIP: e.route.publicIP.toString(),
    vni: e.route.vni ?? null,
    vtepMAC: e.route.vtepMAC ?? null,
    directRouting: e.route.directRouting,
  };
}

export function showPeers(a: BpfArgs): void {
  withMaps(a['bpf-pin-dir'], [MAP_PEERS, MAP_CONFIG], (m) => {
    const cfg = m.config();
    const { entries, bad } = m.peers();
    if (a.output === 'json') {
      print(toJson({ pinDir: m.dir, config: cfg, peers: entries.map(peerJson), unreadable: bad }));
      return;
    }
    const about = cfg ? `our subnet ${cfg.subnet}, Network ${cfg.network}, backend ${cfg.backend === 'direct' ? 'host-gw' : cfg.backend}${cfg.ready ? '' : ', NOT READY'}` : 'weft_config not written yet';
    let out = `${entries.length} entr${entries.length === 1 ? 'y' : 'ies'} in ${m.dir}/${MAP_PEERS} (${about})\n\n`;
    out += table(
      ['SUBNET', 'BACKEND', 'VIA', 'VNI', 'VTEP MAC', 'FLAGS'],
      entries.map((e) => [
        e.subnet,
        e.local ? 'local' : dash(peerBackend(e)),
        e.route.publicIP.toString(),
        dash(e.route.vni),
        dash(e.route.vtepMAC),
        [e.local ? 'local' : '', e.route.directRouting ? 'direct-routing' : ''].filter(Boolean).join(',') || '-',
      ]),
    );
    for (const b of bad) out += `unreadable entry ${b.subnet}: ${b.error} (value ${b.value})\n`;
    print(out);
  });
}

export function showLookup(a: LookupArgs): void {
  const ip = String(a.ip);
  if (ipv4Value(ip) === null) throw usageError(`"${ip}" is not an IPv4 address (e.g. weft bpf lookup 10.244.3.7)`);
  withMaps(a['bpf-pin-dir'], [MAP_PEERS, MAP_CONFIG], (m) => {
    const r = lookup(ip, m.config(), m.peers().entries);
    // The trie itself answers the same question; say so if it disagrees with the longest match computed here.
    const host = encodeLpmKey(IPNet.v4(`${ip}/32`));
    const k = m.map(MAP_PEERS).lookup(host);
    const kernel = k ? decodePeer(host, k).route : null;
    const agrees = r.match === null ? kernel === null : kernel !== null && kernel.publicIP.toString() === r.match.publicIP && (kernel.vtepMAC ?? null) === r.match.vtepMAC;
    if (a.output === 'json') print(toJson({ pinDir: m.dir, ...r, kernelAgrees: agrees }));
    else print(formatLookup(r, agrees));
  });
}

function formatLookup(r: LookupResult, agrees: boolean): string {
  const m = r.match;
  const pairs: Array<[string, string]> = [
    ['address', r.address],
    ['network', r.network ? `${r.network} (${r.inNetwork ? 'inside' : 'outside'})` : 'unknown (weft_config not written)'],
    ['matches', m ? `${m.subnet}${m.local ? ' (our own subnet)' : ` via ${m.publicIP}`}` : 'no entry'],
    ['action', r.action + (r.dropReason ? ` (${r.dropReason})` : '')],
    ['so', r.says],
  ];
  if (!agrees) pairs.push(['WARNING', 'the kernel\'s trie lookup answers with a different entry than the longest match of the listed entries: the map changed while it was read; run it again']);
  return keyValues(pairs);
}

export async function showCounterMap(kind: 'counters' | 'drops', a: CounterArgs): Promise<void> {
  if (!(a.interval > 0)) throw usageError(`--interval ${a.interval}: give seconds above 0, e.g. --interval 0.5`);
  if (!Number.isInteger(a.count) || a.count < 0) throw usageError(`--count ${a.count}: give a whole number, 0 for no limit`);
  const maps = PinnedMaps.open(a['bpf-pin-dir'], [kind === 'counters' ? MAP_STATS : MAP_DROPS]);
  try {
    await showCounters(maps, kind, { watch: a.watch, intervalSec: a.interval, count: a.count, output: a.output });
  } finally {
    maps.close();
  }
}

export async function showPrograms(a: BpfArgs): Promise<void> {
  // The TC and tcx inspection (with the dataplane's loader and netlink) loads for this subcommand only.
  const { inspectPrograms, formatPrograms } = await import('./bpf/programs.js');
  const r = inspectPrograms(a['bpf-pin-dir']);
  print(a.output === 'json' ? toJson(r) : formatPrograms(r));
}
