// What `weft monitor` prints, and which events it prints: one line per
// event for people (a header, then fixed columns and the packet), or one
// JSON object per line for machines; filters by address, peer and reason,
// applied as the events arrive.
import { IPAddr, IPNet } from '../core/ipnet.js';
import { DROP_REASONS, TRACE_ACTIONS } from '../dataplane/ebpf/maps.js';
import type { MonitorEvent, Tuple } from './event.js';

/** The names --reason takes: drop reasons and trace actions. */
export const REASON_NAMES: readonly string[] = [...DROP_REASONS, ...TRACE_ACTIONS];

export interface EventFilter {
  /** An event matches when any address of its headers lies in one of these. */
  addresses: IPNet[];
  /** An event matches when its peer, or an address of its outer header, is one of these. */
  peers: IPAddr[];
  /** Drop reasons and trace actions; empty: all. */
  reasons: Set<string>;
}

/** Parses the filter flags; a mistake is thrown as a message for a usage error. */
export function parseFilter(o: { address: string[]; peer: string[]; reason: string[] }): EventFilter {
  const addresses = o.address.map((text) => {
    const net = text.includes('/') ? IPNet.parse(text) : IPAddr.parse(text) && IPNet.parse(`${text}/32`);
    if (!net || net.family !== 4) throw new Error(`--address ${text}: not an IPv4 address or CIDR (e.g. 10.244.3.7 or 10.244.3.0/24)`);
    return net;
  });
  const peers = o.peer.map((text) => {
    const a = IPAddr.parse(text);
    if (!a || a.family !== 4) throw new Error(`--peer ${text}: not an IPv4 address (a peer host's PublicIP, e.g. 192.0.2.12)`);
    return a;
  });
  for (const r of o.reason) {
    if (!REASON_NAMES.includes(r)) throw new Error(`--reason ${r}: not a drop reason or trace action; one of ${REASON_NAMES.join(', ')}`);
  }
  return { addresses, peers, reasons: new Set(o.reason) };
}

const addressesOf = (e: MonitorEvent): string[] => [e.outer, e.inner].flatMap((t) => (t ? [t.src, t.dst] : []));

export function matches(e: MonitorEvent, f: EventFilter): boolean {
  if (f.reasons.size && !f.reasons.has(e.reason ?? e.action ?? '')) return false;
  if (f.addresses.length) {
    const values = addressesOf(e).map((a) => IPAddr.v4(a).value);
    if (!f.addresses.some((n) => values.some((v) => n.containsIP(v)))) return false;
  }
  if (f.peers.length) {
    const candidates = [e.peer, e.outer?.src, e.outer?.dst].filter((a): a is string => Boolean(a)).map((a) => IPAddr.v4(a).value);
    if (!f.peers.some((p) => candidates.includes(p.value))) return false;
  }
  return true;
}

function endpoint(addr: string, port: number | null): string {
  return port === null ? addr : `${addr}:${port}`;
}

export function describeTuple(t: Tuple): string {
  return `${t.proto} ${endpoint(t.src, t.sport)} > ${endpoint(t.dst, t.dport)}`;
}

/** The packet in words: the inner packet, what carried it, and the peer. */
export function describePacket(e: MonitorEvent): string {
  const parts: string[] = [];
  if (e.inner) parts.push(describeTuple(e.inner));
  if (e.outer) parts.push(`in ${e.encap ?? 'tunnel'} ${describeTuple(e.outer).replace(/^\S+ /, '')}${e.vni !== null ? ` vni ${e.vni}` : ''}`);
  else if (e.vni !== null) parts.push(`vni ${e.vni}`);
  if (e.peer) parts.push(`peer ${e.peer}`);
  parts.push(`${e.length} B`);
  return parts.join(', ');
}

const COLUMNS = [
  ['TIME', 15],
  ['EVENT', 5],
  ['REASON/ACTION', 13],
  ['PROGRAM', 15],
  ['DEVICE', 12],
  ['DIR', 7],
] as const;

export const TABLE_HEADER = COLUMNS.map(([h, w]) => h.padEnd(w)).join('  ') + '  PACKET\n';

/** 10:41:02.123456, local time, from nanoseconds since the epoch. */
export function clock(epochNs: bigint): string {
  const d = new Date(Number(epochNs / 1_000_000n));
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(Number((epochNs / 1000n) % 1_000_000n), 6)}`;
}

export function tableLine(e: MonitorEvent, device: string, epochNs: bigint): string {
  const cells = [clock(epochNs), e.kind, e.reason ?? e.action ?? '-', e.program, device, e.direction];
  return cells.map((c, i) => c.padEnd(COLUMNS[i][1])).join('  ') + '  ' + describePacket(e) + '\n';
}

export function jsonLine(e: MonitorEvent, device: string, epochNs: bigint): string {
  const { monotonicNs: _mono, kind, ...rest } = e;
  return JSON.stringify({ time: new Date(Number(epochNs / 1_000_000n)).toISOString(), type: kind, device, ...rest }) + '\n';
}
