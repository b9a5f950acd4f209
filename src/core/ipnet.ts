// Addresses and networks, IPv4 and IPv6, held as bigint so that one piece of
// arithmetic serves both families. The one parser of addresses in weft:
// parsing and formatting go through ipaddr.js, and every layer (config,
// leases, backends, map codecs, netlink entries, the CLI) takes its values
// from here instead of splitting strings itself.
import { createRequire } from 'node:module';
import type ipaddrModule from 'ipaddr.js';

// Loaded with require, not import: an ES import of a CommonJS package makes
// Node compile its CommonJS export lexer first, 60 to 80 ms of every start
// of the CNI plugin (src/cni/main.ts), which imports nothing else that is CommonJS.
// And loaded on first use: a dotted quad and the formatting of IPv4 never need
// it, so an IPv4 host's CNI plugin and CLI start without it (3 ms).
let ipaddrLoaded: typeof ipaddrModule | undefined;
const ipaddr = (): typeof ipaddrModule => (ipaddrLoaded ??= createRequire(import.meta.url)('ipaddr.js') as typeof ipaddrModule);

export type Family = 4 | 6;

export function bitsOf(family: Family): number {
  return family === 4 ? 32 : 128;
}

/**
 * A dotted quad as ipaddr.js's isValidFourPartDecimal accepts it (four
 * decimal parts of 0 to 255, no leading zeros), read without it: every lease
 * holds two IPv4 addresses, and 65,536 leases went through ipaddr.js in 0.3 s.
 * -1 when the text is not one (ipaddr.js then decides).
 */
export function quadValue(text: string): number {
  return quadValueIn(text, 0, text.length);
}

/**
 * quadValue of text[start, end), read in place: a lease key's address
 * without its substring, or straight from the bytes etcd sent (a list's
 * 65,536 keys, each a string first, were 40 ms of choosing a subnet).
 */
export function quadValueIn(text: string | Uint8Array, start: number, end: number): number {
  const n = end - start;
  if (n < 7 || n > 15) return -1;
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = start; i <= end; i++) {
    const c = i >= end ? 46 : typeof text === 'string' ? text.charCodeAt(i) : text[i];
    if (c === 46) {
      if (digits === 0 || part > 255) return -1;
      value = value * 256 + part;
      if (i < end && ++dots > 3) return -1;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && part === 0) return -1;
      part = part * 10 + (c - 48);
      if (++digits > 3) return -1;
    } else {
      return -1;
    }
  }
  return dots === 3 ? value : -1;
}

export function parseIP(text: string): { family: Family; value: bigint } | null {
  const quad = quadValue(text);
  if (quad >= 0) return { family: 4, value: BigInt(quad) };
  if (ipaddr().IPv4.isValidFourPartDecimal(text)) {
    return { family: 4, value: bytesToBig(ipaddr().IPv4.parse(text).toByteArray()) };
  }
  if (ipaddr().IPv6.isValid(text)) {
    const v6 = ipaddr().IPv6.parse(text);
    if (v6.zoneId) return null;
    return { family: 6, value: bytesToBig(v6.toByteArray()) };
  }
  return null;
}

export function formatIP(family: Family, value: bigint | number): string {
  if (family === 4) {
    const v = Number(value);
    // join, not a template: a flat string, where a template makes a rope that a long-lived lease keeps twice.
    return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
  }
  const bytes: number[] = [];
  const big = BigInt(value);
  for (let i = bitsOf(family) / 8 - 1; i >= 0; i--) bytes.push(Number((big >> BigInt(i * 8)) & 0xffn));
  return ipaddr().fromByteArray(bytes).toString();
}

function bytesToBig(bytes: number[]): bigint {
  return bytes.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
}

/**
 * An IPv4 value as a number when it is an integer of 32 bits (what every
 * caller gives), else as a bigint: an IPAddr or IPNet compared with another
 * (equals, deepEqual) compares these.
 */
function holdV4(value: bigint | number): number | bigint {
  if (typeof value === 'bigint') return value >= 0n && value <= 0xffffffffn ? Number(value) : value;
  return Number.isInteger(value) && value >= 0 && value <= 0xffffffff ? value : BigInt(value);
}

/**
 * An address, parsed once. An IPv4 address is held as a number, and its
 * bigint `value` made when first asked for: a start holds 65,536 peers'
 * PublicIPs, and a BigInt each was 65,536 objects more for the collector to
 * copy; the start's own checks and the map's encoding read `addr`.
 */
export class IPAddr {
  /** The address: a number for IPv4 (exact), a bigint for IPv6. */
  readonly addr: number | bigint;
  #value: bigint | undefined;

  constructor(
    readonly family: Family,
    value: bigint | number,
  ) {
    this.addr = family === 4 ? holdV4(value) : BigInt(value);
    this.#value = typeof this.addr === 'bigint' ? this.addr : typeof value === 'bigint' ? value : undefined;
  }

  /** The address as a bigint (made once for IPv4, when first asked). */
  get value(): bigint {
    return (this.#value ??= BigInt(this.addr));
  }

  static parse(text: string): IPAddr | null {
    const p = parseIP(text);
    return p ? new IPAddr(p.family, p.value) : null;
  }

  /** An IPv4 address from its dotted form; throws naming `what` when it is not one. */
  static v4(text: string, what = 'address'): IPAddr {
    // Every lease's PublicIP comes this way: a dotted quad without parseIP's object.
    const quad = quadValue(text);
    if (quad >= 0) return new IPAddr(4, quad);
    const p = parseIP(text);
    if (!p || p.family !== 4) throw new Error(`${what}: ${JSON.stringify(text)} is not an IPv4 address`);
    return new IPAddr(4, p.value);
  }

  /** From network-order bytes (4 or 16). */
  static fromBytes(b: Uint8Array): IPAddr {
    if (b.length !== 4 && b.length !== 16) throw new Error(`an address is 4 or 16 bytes, not ${b.length}`);
    return new IPAddr(b.length === 4 ? 4 : 6, bytesToBig([...b]));
  }

  /** Network byte order, as in packets and in the BPF maps. */
  bytes(): Buffer {
    const n = bitsOf(this.family) / 8;
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[n - 1 - i] = Number((this.value >> BigInt(i * 8)) & 0xffn);
    return b;
  }

  equals(other: IPAddr): boolean {
    return other.family === this.family && other.addr === this.addr;
  }

  toString(): string {
    return formatIP(this.family, this.addr);
  }
}

/** Network masks by family and prefix length, computed once: every contains() and network read needs one. */
const MASKS: Record<Family, bigint[]> = { 4: [], 6: [] };

function maskOf(family: Family, prefixLen: number): bigint {
  const cached = MASKS[family][prefixLen];
  if (cached !== undefined) return cached;
  const bits = bitsOf(family);
  const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefixLen)) - 1n);
  // Only lengths a network can have are kept (a malformed one, say 40 for IPv4, is computed each time).
  if (Number.isInteger(prefixLen) && prefixLen >= 0 && prefixLen <= bits) MASKS[family][prefixLen] = mask;
  return mask;
}

/** Addresses in an IPv4 prefix of each length, 0 to 32 (a table: 2 ** n is a call to pow). */
const IPV4_SPAN: readonly number[] = Array.from({ length: 33 }, (_, len) => 2 ** (32 - len));

/**
 * A network. IPv4 is held in numbers, as IPAddr holds it, and its bigints
 * made when first asked for: a start's 65,536 lease subnets are checked,
 * keyed and encoded from the numbers (a BigInt each was 65,536 objects more).
 */
export class IPNet {
  /** The address as written, which may have host bits set (see isNetworkAddress): a number for IPv4, a bigint for IPv6. */
  readonly start: number | bigint;
  /**
   * `base` and `network` as bigints, once asked for: a BigInt operation makes
   * a new BigInt each time. # fields, so that comparing two IPNets does not
   * depend on which was asked.
   */
  #base: bigint | undefined;
  #net: bigint | undefined;

  constructor(
    readonly family: Family,
    base: bigint | number,
    readonly prefixLen: number,
  ) {
    this.start = family === 4 ? holdV4(base) : BigInt(base);
    this.#base = typeof this.start === 'bigint' ? this.start : typeof base === 'bigint' ? base : undefined;
    this.#net = undefined;
  }

  /** An IPv4 network from its address as a number (every lease key of a list comes this way). */
  static network4(address: number, prefixLen: number): IPNet {
    return new IPNet(4, address, prefixLen);
  }

  /** The address as written, as a bigint. */
  get base(): bigint {
    return (this.#base ??= BigInt(this.start));
  }

  /** IPv4 with a valid prefix length: the network address as a number; NaN otherwise. */
  get network4(): number {
    const size = this.size4();
    return size > 0 ? this.start4 - (this.start4 % size) : NaN;
  }

  /** IPv4 held as a number: `start`; NaN otherwise. */
  private get start4(): number {
    return typeof this.start === 'number' ? this.start : NaN;
  }

  /** Parses "10.244.0.0/16" or "fd00::/48"; returns null when malformed. */
  static parse(text: string): IPNet | null {
    const slash = text.indexOf('/');
    if (slash < 0) return null;
    const ip = parseIP(text.slice(0, slash));
    const lenText = text.slice(slash + 1);
    if (!ip || !/^\d{1,3}$/.test(lenText)) return null;
    const len = Number(lenText);
    if (len > bitsOf(ip.family)) return null;
    return new IPNet(ip.family, ip.value, len);
  }

  /** An IPv4 network in CIDR form; throws naming `what` when it is not one. */
  static v4(text: string, what = 'network'): IPNet {
    const net = IPNet.parse(text);
    if (!net || net.family !== 4) throw new Error(`${what}: ${JSON.stringify(text)} is not an IPv4 CIDR`);
    return net;
  }

  static of(family: Family, ip: string, prefixLen: number): IPNet {
    const parsed = parseIP(ip);
    if (!parsed || parsed.family !== family) throw new Error(`not an IPv${family} address: ${ip}`);
    return new IPNet(family, parsed.value, prefixLen);
  }

  get bits(): number {
    return bitsOf(this.family);
  }

  get mask(): bigint {
    return maskOf(this.family, this.prefixLen);
  }

  get network(): bigint {
    if (this.#net === undefined) {
      const n = this.base & this.mask;
      // A subnet as written in a lease key has no host bits: the same BigInt serves.
      this.#net = n === this.base ? this.base : n;
    }
    return this.#net;
  }

  /** The number of addresses in the network. */
  get size(): bigint {
    return 1n << BigInt(this.bits - this.prefixLen);
  }

  get ip(): string {
    return formatIP(this.family, this.start);
  }

  isNetworkAddress(): boolean {
    const size = this.size4();
    if (size > 0 && typeof this.start === 'number') return this.start % size === 0;
    return this.base === this.network;
  }

  /** The same prefix with host bits cleared. */
  canonical(): IPNet {
    return new IPNet(this.family, this.network, this.prefixLen);
  }

  /** Whether the address (an IPAddr's `addr` or `value`) is in this network. */
  containsIP(value: bigint | number): boolean {
    const size = this.size4();
    // IPv4 in numbers: each BigInt operation made a BigInt, several for each lease a start checks.
    if (size > 0 && typeof this.start === 'number') return Math.floor(Number(value) / size) === Math.floor(this.start / size);
    return (BigInt(value) & this.mask) === this.network;
  }

  /** True when other lies entirely inside this network. */
  contains(other: IPNet): boolean {
    return other.family === this.family && other.prefixLen >= this.prefixLen && this.containsIP(other.start);
  }

  /** For IPv4 with a valid prefix length, the number of addresses it spans; 0 otherwise (IPv6: BigInt arithmetic). */
  private size4(): number {
    return this.family === 4 ? (IPV4_SPAN[this.prefixLen] ?? 0) : 0;
  }

  overlaps(other: IPNet): boolean {
    return other.family === this.family && (this.contains(other) || other.contains(this));
  }

  equals(other: IPNet): boolean {
    return other.family === this.family && other.start === this.start && other.prefixLen === this.prefixLen;
  }

  /** The network address (host bits cleared). */
  get addr(): IPAddr {
    return new IPAddr(this.family, this.network);
  }

  /** The address `offset` after the network address, e.g. hostAt(1) = the first host. */
  hostAt(offset: bigint): string {
    return formatIP(this.family, this.network + offset);
  }

  toString(): string {
    return `${this.ip}/${this.prefixLen}`;
  }
}

/**
 * IPv4 ranges that hold no host a tunnel or a route can use, with what they
 * are: a peer's PublicIP in one is refused, and so is a Network over one.
 */
export const SPECIAL_IPV4: ReadonlyArray<readonly [IPNet, string]> = [
  [IPNet.v4('255.255.255.255/32'), 'the broadcast address'],
  [IPNet.v4('0.0.0.0/32'), 'the unspecified address'],
  [IPNet.v4('0.0.0.0/8'), 'in 0.0.0.0/8 ("this network", not an address of a host)'],
  [IPNet.v4('127.0.0.0/8'), 'a loopback address'],
  [IPNet.v4('169.254.0.0/16'), 'a link-local address'],
  [IPNet.v4('224.0.0.0/4'), 'a multicast address'],
  [IPNet.v4('240.0.0.0/4'), 'a reserved address (240.0.0.0/4)'],
];

/** What special range an IPv4 address is in (see SPECIAL_IPV4), or null for an ordinary unicast address. */
export function specialUse(ip: IPAddr): string | null {
  if (ip.family !== 4) return null;
  // Every lease's PublicIP is asked at a start: as numbers, not seven BigInt masks.
  const v = Number(ip.addr);
  // By index: a destructuring for-of ran the iterator protocol for each range, 0.5 us a lease in a start's profile.
  for (let i = 0; i < SPECIAL_IPV4_NUMBERS.length; i++) {
    const range = SPECIAL_IPV4_NUMBERS[i];
    if (v >= range[0] && v <= range[1]) return range[2];
  }
  return null;
}

/** An IPv4 network as numbers: its first and last address. Two networks overlap exactly when their spans meet. */
export function span4(net: IPNet): [number, number] {
  const first = net.network4;
  return [first, last4(first, net.prefixLen)];
}

/** The last address of the IPv4 prefix of `prefixLen` that starts at `first`. */
export function last4(first: number, prefixLen: number): number {
  return first + IPV4_SPAN[prefixLen] - 1;
}

const SPECIAL_IPV4_NUMBERS: ReadonlyArray<readonly [number, number, string]> = SPECIAL_IPV4.map(([net, what]) => [...span4(net), what] as const);
