// struct weft_event (bpf/include/weft_maps.h), decoded: what `weft monitor`
// prints. The layout is LAYOUT.weft_event in maps.ts (checked against the
// objects' BTF); the names of reasons, actions, programs, directions and
// encapsulations come from the generated contract.
import {
  DIR,
  DROP_REASONS,
  ENCAP,
  EVENT_F_INNER,
  EVENT_F_OUTER,
  EVENT_F_TUNINFO,
  EVENT_F_VNI,
  EVENT_KINDS,
  LAYOUT,
  PROG_NAMES,
  TRACE_ACTIONS,
  ipv4String,
  type DirName,
  type DropReason,
  type EncapName,
} from '../dataplane/ebpf/maps.js';
import { WeftError } from '../core/errors.js';

export type EventKind = (typeof EVENT_KINDS)[number];
export type TraceAction = (typeof TRACE_ACTIONS)[number];
export type ProgName = (typeof PROG_NAMES)[number];

const E = LAYOUT.weft_event.fields;
const T = LAYOUT.weft_tuple.fields;
export const EVENT_SIZE = LAYOUT.weft_event.size;

const PROTOCOLS: Record<number, string> = { 1: 'icmp', 4: 'ipip', 6: 'tcp', 17: 'udp', 47: 'gre', 58: 'icmpv6', 132: 'sctp' };
const DIR_NAMES = Object.keys(DIR) as DirName[];
const ENCAP_NAMES = Object.keys(ENCAP) as EncapName[];

/** An IPv4 header's addresses, protocol and (TCP, UDP) ports. */
export interface Tuple {
  proto: string;
  src: string;
  dst: string;
  /** null: the protocol has none, or they are not known (a later fragment; tunnel metadata). */
  sport: number | null;
  dport: number | null;
}

export interface MonitorEvent {
  kind: EventKind;
  /** Drop events: why. */
  reason: DropReason | null;
  /** Trace events: what was done. */
  action: TraceAction | null;
  program: ProgName;
  direction: DirName;
  ifindex: number;
  /** The packet's length when the program started (skb->len). */
  length: number;
  /** The tunnel it came through (ingress) or the peer's encapsulation (egress); null when not known. */
  encap: EncapName | null;
  vni: number | null;
  /** The peer host's PublicIP, when known. */
  peer: string | null;
  outer: Tuple | null;
  inner: Tuple | null;
  /** CLOCK_MONOTONIC, as bpf_ktime_get_ns() reads it. */
  monotonicNs: bigint;
}

/** tunInfo: from the kernel's tunnel metadata, which holds no source port (the destination port is the device's). */
function tuple(b: Buffer, off: number, tunInfo: boolean): Tuple {
  const protoNum = b[off + T.proto];
  const sport = b.readUInt16BE(off + T.sport);
  const dport = b.readUInt16BE(off + T.dport);
  // The programs leave both 0 where there are none (a later fragment); no real flow uses 0 -> 0.
  const known = (protoNum === 6 || protoNum === 17) && (sport !== 0 || dport !== 0);
  return {
    proto: PROTOCOLS[protoNum] ?? String(protoNum),
    src: ipv4String(b, off + T.saddr),
    dst: ipv4String(b, off + T.daddr),
    sport: known && !tunInfo ? sport : null,
    dport: known ? dport : null,
  };
}

/** One record of weft_events; throws on a record of another size (another weft version's programs). */
export function decodeEvent(b: Buffer): MonitorEvent {
  if (b.length !== EVENT_SIZE) throw new WeftError(`weft_event: ${b.length} bytes, this weft reads ${EVENT_SIZE}: the programs are another weft version's; restart the agent of this version`);
  const kind = EVENT_KINDS[b[E.kind]];
  if (!kind) throw new WeftError(`weft_event: unknown kind ${b[E.kind]}: the programs are another weft version's; restart the agent of this version`);
  const code = b[E.code];
  const flags = b[E.flags];
  const peer = b.readUInt32BE(E.peer);
  const encap = ENCAP_NAMES[b[E.encap]];
  return {
    kind,
    reason: kind === 'drop' ? (DROP_REASONS[code] ?? 'none') : null,
    action: kind === 'trace' ? (TRACE_ACTIONS[code] ?? null) : null,
    program: PROG_NAMES[b[E.prog]] ?? (`program ${b[E.prog]}` as ProgName),
    direction: DIR_NAMES[b[E.dir]] ?? 'egress',
    ifindex: b.readUInt32LE(E.ifindex),
    length: b.readUInt32LE(E.len),
    encap: encap && encap !== 'none' ? encap : null,
    vni: flags & EVENT_F_VNI ? b.readUInt32LE(E.vni) : null,
    peer: peer ? ipv4String(b, E.peer) : null,
    outer: flags & EVENT_F_OUTER ? tuple(b, E.outer, (flags & EVENT_F_TUNINFO) !== 0) : null,
    inner: flags & EVENT_F_INNER ? tuple(b, E.inner, false) : null,
    monotonicNs: b.readBigUInt64LE(E.ts_ns),
  };
}
