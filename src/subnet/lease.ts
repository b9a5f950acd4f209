// flannel's lease keys and values, byte for byte.
//   key:   10.244.3.0-24   or, dual-stack,   10.244.3.0-24&fd00:10:244:3::-64
//   value: {"PublicIP":"192.0.2.11","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"…"}}
// Fields written by others that we do not know are kept when we rewrite our own lease.
import { IPNet, parseIP, quadValue, quadValueIn, type IPAddr } from '../core/ipnet.js';
import { WeftError } from '../core/errors.js';

// flannel's own pattern (pkg/subnet/subnet.go), anchored at the start as well.
const KEY_RE = /^(\d+\.\d+\.\d+\.\d+)-(\d+)(?:&([a-f\d:]+)-(\d+))?$/;

export interface SubnetKey {
  subnet?: IPNet;
  subnetV6?: IPNet;
}

/** Parses the last path element of a lease key; null when it is not a lease key. */
export function parseSubnetKey(name: string): SubnetKey | null {
  const plain = subnetKey4(name);
  if (plain) return { subnet: plain };
  const m = KEY_RE.exec(name);
  if (!m) return null;
  const v4 = IPNet.parse(`${m[1]}/${m[2]}`);
  if (!v4 || v4.family !== 4 || !v4.isNetworkAddress()) return null;
  const key: SubnetKey = { subnet: v4 };
  if (m[3] !== undefined) {
    const v6 = IPNet.parse(`${m[3]}/${m[4]}`);
    if (!v6 || v6.family !== 6 || !v6.isNetworkAddress()) return null;
    key.subnetV6 = v6;
  }
  return key;
}

/**
 * An IPv4-only key ("10.244.3.0-24") read without the pattern: every key of
 * a 65,536-lease list is one. null when it is anything else, dual-stack
 * included, which the pattern then decides.
 */
function subnetKey4(name: string): IPNet | null {
  const packed = subnetKey4Packed(name);
  return packed < 0 ? null : IPNet.network4(Math.floor(packed / 64), packed % 64);
}

/**
 * subnetKey4 as one number, network address * 64 + prefix length (exact in
 * a double), or -1: no tuple, no substring, for each of a list's 65,536 keys.
 */
export function subnetKey4Packed(name: string): number {
  return subnetKey4PackedIn(name, 0, name.length);
}

/** subnetKey4Packed of text[start, end): a key as etcd sent it, in its page's bytes (RawLeaseList.subnets). */
export function subnetKey4PackedIn(text: string | Uint8Array, start: number, end: number): number {
  let dash = end - 1;
  let len = 0;
  for (let scale = 1; dash >= start; dash--, scale *= 10) {
    const c = typeof text === 'string' ? text.charCodeAt(dash) : text[dash];
    if (c === 45) break;
    if (c < 48 || c > 57) return -1;
    len += (c - 48) * scale;
  }
  const digits = end - dash - 1;
  if (dash < start || digits < 1 || digits > 2) return -1;
  const ip = quadValueIn(text, start, dash);
  if (ip < 0 || len > 32) return -1;
  // The host bits, as numbers: a shift by 32 is a shift by 0 in JavaScript.
  const host = len === 0 ? ip : ip % 2 ** (32 - len);
  return host === 0 ? ip * 64 + len : -1;
}

export function formatSubnetKey(key: SubnetKey): string {
  const parts: string[] = [];
  if (key.subnet) parts.push(`${key.subnet.ip}-${key.subnet.prefixLen}`);
  if (key.subnetV6) parts.push(`${key.subnetV6.ip}-${key.subnetV6.prefixLen}`);
  return parts.join('&');
}

export interface LeaseAttrs {
  PublicIP: string;
  PublicIPv6: string | null;
  BackendType?: string;
  BackendData?: unknown;
  BackendV6Data?: unknown;
  /** Fields others wrote that weft does not know; written back unchanged. */
  extra?: Record<string, unknown>;
}

const KNOWN = new Set(['PublicIP', 'PublicIPv6', 'BackendType', 'BackendData', 'BackendV6Data']);

/** A lease value that is not one; the message is the reason, for the warning naming its key. */
function invalid(reason: string): WeftError {
  return new WeftError(reason, 'failed', { field: 'lease value' });
}

/** Parses a lease value; throws a WeftError with the reason when it is not one. */
export function parseLeaseAttrs(text: string): LeaseAttrs {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw invalid(`not JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid('not a JSON object');
  const o = raw as Record<string, unknown>;
  if (typeof o.PublicIP !== 'string' || (quadValue(o.PublicIP) < 0 && parseIP(o.PublicIP)?.family !== 4)) {
    throw invalid(`PublicIP ${JSON.stringify(o.PublicIP)} is not an IPv4 address`);
  }
  if (o.PublicIPv6 !== undefined && o.PublicIPv6 !== null && (typeof o.PublicIPv6 !== 'string' || parseIP(o.PublicIPv6)?.family !== 6)) {
    throw invalid(`PublicIPv6 ${JSON.stringify(o.PublicIPv6)} is not an IPv6 address`);
  }
  if (o.BackendType !== undefined && typeof o.BackendType !== 'string') throw invalid('BackendType is not a string');
  const PublicIPv6 = (o.PublicIPv6 as string | null | undefined) ?? null;
  const hasType = o.BackendType !== undefined && o.BackendType !== '';
  const hasData = o.BackendData !== undefined && o.BackendData !== null;
  // A lease as flannel writes it (every one of a start's 65,536) is kept as parsed: the copy below would be one more object each.
  if (hasType && hasData && o.PublicIPv6 === null && isFlannelShaped(o)) return o as unknown as LeaseAttrs;
  // Every lease flannel writes has both: one literal keeps them in the object (added later, each lease got a property array).
  const attrs: LeaseAttrs =
    hasType && hasData ? { PublicIP: o.PublicIP, PublicIPv6, BackendType: o.BackendType as string, BackendData: o.BackendData } : { PublicIP: o.PublicIP, PublicIPv6 };
  if (hasType && !hasData) attrs.BackendType = o.BackendType as string;
  if (hasData && !hasType) attrs.BackendData = o.BackendData;
  if (o.BackendV6Data !== undefined && o.BackendV6Data !== null) attrs.BackendV6Data = o.BackendV6Data;
  // Most leases hold only the known fields: look before building the copy (65,536 leases, 65,536 arrays).
  let unknown = false;
  for (const k in o) if (!KNOWN.has(k)) unknown = true;
  if (unknown) attrs.extra = Object.fromEntries(Object.entries(o).filter(([k]) => !KNOWN.has(k)));
  return attrs;
}

/** True when o has exactly PublicIP, PublicIPv6, BackendType and BackendData, in any order (the checks on each are the caller's). */
function isFlannelShaped(o: Record<string, unknown>): boolean {
  let n = 0;
  for (const k in o) {
    if (k !== 'PublicIP' && k !== 'PublicIPv6' && k !== 'BackendType' && k !== 'BackendData') return false;
    n++;
  }
  return n === 4;
}

/** Serialises in the field order and omissions of flannel's Go struct (PublicIPv6 always present, null when unset). */
export function encodeLeaseAttrs(attrs: LeaseAttrs): string {
  const o: Record<string, unknown> = { PublicIP: attrs.PublicIP, PublicIPv6: attrs.PublicIPv6 ?? null };
  if (attrs.BackendType) o.BackendType = attrs.BackendType;
  if (attrs.BackendData !== undefined) o.BackendData = attrs.BackendData;
  if (attrs.BackendV6Data !== undefined) o.BackendV6Data = attrs.BackendV6Data;
  for (const [k, v] of Object.entries(attrs.extra ?? {})) if (!(k in o)) o[k] = v;
  return JSON.stringify(o);
}

/** A lease as read from etcd. */
export interface Lease {
  /** The key's last element, e.g. "10.244.3.0-24". */
  name: string;
  subnet: IPNet;
  subnetV6?: IPNet;
  attrs: LeaseAttrs;
  /** attrs.PublicIP, parsed. */
  publicIP: IPAddr;
  /** etcd lease id as a decimal string; "0" for a reservation (no TTL). */
  leaseId: string;
  /**
   * The etcd revisions the key was last written and created at: of two
   * leases claiming one subnet, the older holds it. Numbers (exact: a store
   * reaches 2^53 revisions never), not strings: two strings a lease were
   * 131,072 objects in a 65,536-lease start.
   */
  modRevision: number;
  createRevision: number;
}

export function isReservation(lease: Pick<Lease, 'leaseId'>): boolean {
  return lease.leaseId === '0';
}

/** True when two lease values say the same thing to a dataplane. */
export function sameAttrs(a: LeaseAttrs, b: LeaseAttrs): boolean {
  return encodeLeaseAttrs(a) === encodeLeaseAttrs(b);
}
