// Packet building for the BPF packet tests: just enough Ethernet, IPv4, UDP
// and ICMP to write down the exact bytes a program must produce.
import { ipv4Bytes, macBytes } from 'weft/dataplane/ebpf/maps.js';

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
export const IPPROTO_ICMP = 1;
export const IPPROTO_IPIP = 4;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** What weft's entry programs return for a packet they leave alone (TCX_NEXT; counters.h verdict()), as the u32 BPF_PROG_TEST_RUN reports. */
export const TC_ACT_UNSPEC = 0xffffffff;
export const TC_ACT_SHOT = 2;
export const TC_ACT_REDIRECT = 7;

/** RFC 1071 checksum of b (already folded and complemented). */
export function inetChecksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2) sum += b[b.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function eth(dst: string, src: string, type: number): Buffer {
  const b = Buffer.alloc(14);
  macBytes(dst, 'eth dst').copy(b, 0);
  macBytes(src, 'eth src').copy(b, 6);
  b.writeUInt16BE(type, 12);
  return b;
}

export interface Ipv4Fields {
  src: string;
  dst: string;
  protocol: number;
  tos?: number;
  id?: number;
  df?: boolean;
  /** Raw frag_off field (flags and offset); overrides df. */
  fragOff?: number;
  ttl?: number;
}

/** An IPv4 header (20 bytes, correct checksum) followed by payload. */
export function ipv4(f: Ipv4Fields, payload: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h[1] = f.tos ?? 0;
  h.writeUInt16BE(20 + payload.length, 2);
  h.writeUInt16BE(f.id ?? 0, 4);
  h.writeUInt16BE(f.fragOff ?? (f.df === false ? 0 : 0x4000), 6);
  h[8] = f.ttl ?? 64;
  h[9] = f.protocol;
  ipv4Bytes(f.src, 'ip src').copy(h, 12);
  ipv4Bytes(f.dst, 'ip dst').copy(h, 16);
  h.writeUInt16BE(inetChecksum(h), 10);
  return Buffer.concat([h, payload]);
}

/** A UDP header with checksum 0 (allowed over IPv4) followed by payload. */
export function udp(sport: number, dport: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([h, payload]);
}

/** An ICMP echo request with n bytes of patterned data. */
export function icmpEcho(id: number, seq: number, n = 56): Buffer {
  const b = Buffer.alloc(8 + n);
  b[0] = 8;
  b.writeUInt16BE(id, 4);
  b.writeUInt16BE(seq, 6);
  for (let i = 0; i < n; i++) b[8 + i] = i & 0xff;
  b.writeUInt16BE(inetChecksum(b), 2);
  return b;
}

/** The inner IPv4 packet of the tests: pod 10.244.1.2 to `dst`, an ICMP echo. */
export function podPacket(dst: string, opts: { src?: string; df?: boolean; tos?: number; size?: number } = {}): Buffer {
  return ipv4({ src: opts.src ?? '10.244.1.2', dst, protocol: IPPROTO_ICMP, df: opts.df, tos: opts.tos, ttl: 63 }, icmpEcho(7, 1, opts.size ?? 56));
}

/** A TCP segment (20-byte header, ACK unless flags say otherwise, checksum left 0: the programs never look at it) followed by payload. */
export function tcp(sport: number, dport: number, payload: Buffer, flags = 0x10): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt32BE(1000, 4);
  h.writeUInt32BE(2000, 8);
  h[12] = 5 << 4;
  h[13] = flags;
  h.writeUInt16BE(64240, 14);
  return Buffer.concat([h, payload]);
}
