// Codecs for the BPF maps: the TypeScript mirror of bpf/include/weft_maps.h.
// Its constants (enums, flags, map names and sizes) come from the header
// through the generated contract.ts; the struct layouts are written once more
// here, in LAYOUT, and test/bpf/schema.test.ts loads the objects and checks
// every offset and size against their BTF and the kernel's view.
//
// Byte order: addresses are network order (as in the packets); every other
// integer is in the host's order, which for BPF is the CPU's own. weft runs on
// little-endian hosts (x86_64, arm64); hostOrderCheck() refuses anything else.
import os from 'node:os';
import { IPAddr, IPNet } from '../../core/ipnet.js';
import type { BackendType, Encap, LocalNetwork, PeerRoute } from '../../core/model.js';
import {
  CFG_F_ANY_SENDER,
  CFG_F_CT_FOLLOWS,
  CFG_F_KERNEL_DECAP,
  CFG_F_POD_FORWARD,
  CFG_F_READY,
  CFG_F_VXLAN_PUSH,
  DIR,
  DROP_REASONS,
  ENCAP,
  ENCAP_MAX,
  MAP_CONFIG,
  MAP_DEFS,
  MAP_DROPS,
  MAP_EVENTS,
  MAP_MONITOR,
  MAP_PEERS,
  MAP_STATS,
  PEER_F_DIRECT_ROUTING,
  PEER_F_LOCAL,
  PORT_F_PEER,
} from './contract.js';
import { DEFAULT_UDP_PORT, DEFAULT_VXLAN_PORT } from '../../config/network.js';

export * from './contract.js';

export type EncapName = keyof typeof ENCAP;
const ENCAP_NAMES = Object.keys(ENCAP) as EncapName[];
export type DirName = keyof typeof DIR;
export type DropReason = (typeof DROP_REASONS)[number];

/**
 * Byte offsets of every field, named as in weft_maps.h. The codecs below
 * read and write through this table only; schema.test.ts compares it with the
 * BTF of the compiled objects, so a field moved in C fails a test here.
 */
export const LAYOUT = {
  weft_lpm_key: { size: 8, fields: { prefixlen: 0, addr: 4 } },
  weft_peer: { size: 16, fields: { public_ip: 0, vni: 4, vtep_mac: 8, encap: 14, flags: 15 } },
  weft_config: {
    size: 56,
    fields: {
      public_ip: 0, subnet: 4, network: 8, subnet_len: 12, network_len: 13, backend: 14, flags: 15, vni: 16, port: 20, mtu: 22,
      underlay_ifindex: 24, overlay_ifindex: 28, vtep_mac: 32, overlay_mac: 38, underlay_mac: 44, decap_port: 50, ct_timeout_ms: 52,
    },
  },
  weft_counter: { size: 16, fields: { packets: 0, bytes: 8 } },
  weft_port_key: { size: 12, fields: { bridge_ifindex: 0, mac: 4, _pad: 10 } },
  weft_port: { size: 8, fields: { ifindex: 0, flags: 4 } },
  weft_pod_port: { size: 12, fields: { bridge_ifindex: 0, bridge_mac: 4, _pad: 10 } },
  weft_tuple: { size: 16, fields: { saddr: 0, daddr: 4, sport: 8, dport: 10, proto: 12, _pad: 13 } },
  weft_event: {
    size: 64,
    fields: { ts_ns: 0, kind: 8, code: 9, prog: 10, dir: 11, flags: 12, encap: 13, _pad: 14, ifindex: 16, len: 20, vni: 24, peer: 28, outer: 32, inner: 48 },
  },
} as const;
const K = LAYOUT.weft_lpm_key.fields;
const P = LAYOUT.weft_peer.fields;
const C = LAYOUT.weft_config.fields;
const N = LAYOUT.weft_counter.fields;
const PK = LAYOUT.weft_port_key.fields;
const PV = LAYOUT.weft_port.fields;
const PP = LAYOUT.weft_pod_port.fields;
const CT = LAYOUT.weft_tuple.fields;

export const LPM_KEY_SIZE = LAYOUT.weft_lpm_key.size;
export const PEER_SIZE = LAYOUT.weft_peer.size;
export const CONFIG_SIZE = LAYOUT.weft_config.size;
export const COUNTER_SIZE = LAYOUT.weft_counter.size;

type MapName = keyof typeof MAP_DEFS;
type TypeName = (typeof MAP_DEFS)[MapName]['key' | 'value'];
const SCALARS = { __u32: 4, __u64: 8 } as const;
/** A ring buffer's key and value (null) have no size. */
const typeSize = (t: TypeName): number => (t === null ? 0 : t in SCALARS ? SCALARS[t as keyof typeof SCALARS] : LAYOUT[t as keyof typeof LAYOUT].size);

/** What each map must look like in the kernel (type names as libbpf prints them), from maps.h and LAYOUT. */
export const MAP_SCHEMA = Object.fromEntries(
  Object.entries(MAP_DEFS).map(([name, d]) => [name, { type: d.type, keySize: typeSize(d.key), valueSize: typeSize(d.value), maxEntries: d.maxEntries }]),
) as { readonly [M in MapName]: { readonly type: (typeof MAP_DEFS)[M]['type']; readonly keySize: number; readonly valueSize: number; readonly maxEntries: number } };

/** The maps that stay pinned under --bpf-pin-dir while weft runs (weft_ports is unpinned once the objects are loaded). */
export const PINNED_MAPS = [MAP_PEERS, MAP_CONFIG, MAP_STATS, MAP_DROPS, MAP_EVENTS, MAP_MONITOR] as const;

export function hostOrderCheck(): void {
  if (os.endianness() !== 'LE') throw new Error(`weft's map codecs assume a little-endian host; this one is ${os.endianness()}`);
}

// --- addresses ---------------------------------------------------------------

/** 4 bytes of an IPv4 address in network order; addresses are parsed by src/core/ipnet.ts. */
export function ipv4Bytes(addr: string | IPAddr, what: string): Buffer {
  const b = Buffer.alloc(4);
  writeIPv4(b, 0, typeof addr === 'string' ? IPAddr.v4(addr, what) : addr, () => what);
  return b;
}

/**
 * An IPv4 address written at `off` in network order, without a Buffer of its
 * own. `what` names it in an error: a function, since formatting a name for
 * every entry of 65,536 costs more than the entry.
 */
function writeIPv4(b: Buffer, off: number, a: IPAddr, what: () => string): void {
  if (a.family !== 4) throw new Error(`${what()}: ${a} is not an IPv4 address`);
  b.writeUInt32BE(Number(a.addr), off);
}

export function ipv4String(b: Buffer, off = 0): string {
  return IPAddr.fromBytes(b.subarray(off, off + 4)).toString();
}

export function macBytes(mac: string, what: string): Buffer {
  const b = Buffer.alloc(6);
  writeMac(b, 0, mac, () => what);
  return b;
}

/** A MAC address ("02:00:00:00:03:01") written at `off`. */
function writeMac(b: Buffer, off: number, mac: string, what: () => string): void {
  if (!putMac(b, off, mac)) throw new Error(`${what()}: "${mac}" is not a MAC address`);
}

/** Writes the MAC text's six bytes at `off`; false when it is not a MAC (the bytes written so far stay). */
function putMac(b: Buffer, off: number, mac: string): boolean {
  // Read by character codes: 65,536 peers' MACs through a pattern and six slices each were most of encoding them.
  if (mac.length !== 17) return false;
  for (let i = 0; i < 6; i++) {
    const hi = hexDigit(mac.charCodeAt(i * 3));
    const lo = hexDigit(mac.charCodeAt(i * 3 + 1));
    if (hi < 0 || lo < 0 || (i < 5 && mac.charCodeAt(i * 3 + 2) !== 58)) return false;
    b[off + i] = hi * 16 + lo;
  }
  return true;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 32;
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

export function macString(b: Buffer, off = 0): string {
  return [...b.subarray(off, off + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/**
 * An IPv4 subnet for a map: checked, then its address (network order) written
 * at `off`. The trie compares prefixlen bits only, but a stray host bit would
 * make decode disagree with encode.
 */
function writeSubnet(b: Buffer, off: number, net: IPNet, what: () => string): void {
  checkSubnet(net, what);
  b.writeUInt32BE(Number(net.start), off);
}

function checkSubnet(net: IPNet, what: () => string): void {
  if (net.family !== 4) throw new Error(`${what()}: ${net} is not an IPv4 subnet`);
  if (!net.isNetworkAddress()) throw new Error(`${what()}: "${net}" has host bits set`);
}

// --- weft_peers ----------------------------------------------------------------

/** struct weft_lpm_key for a subnet, e.g. 10.244.3.0/24. */
export function encodeLpmKey(subnet: IPNet): Buffer {
  const b = Buffer.alloc(LPM_KEY_SIZE);
  writeLpmKey(b, 0, subnet);
  return b;
}

/**
 * A weft_lpm_key at off as one number, for comparing keys without a string
 * each: the trie refuses a prefixlen over 32, so prefixlen * 2^32 + addr is
 * exact.
 */
export function lpmKeyId(b: Buffer, off: number): number {
  return b.readUInt32LE(off + K.prefixlen) * 2 ** 32 + b.readUInt32BE(off + K.addr);
}

/** Hoisted: an arrow written in the call made a function object for each of 65,536 keys. */
const LPM_KEY_WHAT = (): string => 'weft_lpm_key';

/** encodeLpmKey into b at off (a packed array of keys for a batch). */
export function writeLpmKey(b: Buffer, off: number, subnet: IPNet): void {
  writeSubnet(b, off + K.addr, subnet, LPM_KEY_WHAT);
  b.writeUInt32LE(subnet.prefixLen, off + K.prefixlen);
}

export function decodeLpmKey(b: Buffer): IPNet {
  checkSize(b, LPM_KEY_SIZE, 'weft_lpm_key');
  return new IPNet(4, IPAddr.fromBytes(b.subarray(K.addr, K.addr + 4)).value, b.readUInt32LE(K.prefixlen));
}

/**
 * struct weft_peer for a peer route. A DirectRouting peer of a tunnel backend
 * (encap 'direct', directRouting true) is forwarded like host-gw
 * (WEFT_ENCAP_DIRECT) and flagged so that it can be told apart from a host-gw
 * peer; a vxlan one keeps its VNI and VtepMAC.
 */
export function encodePeer(route: PeerRoute): Buffer {
  const b = Buffer.alloc(PEER_SIZE);
  writePeer(b, 0, route);
  return b;
}

/**
 * encodePeer into b at off, which must hold zeros (a packed array of values
 * for a batch: one allocation for 65,536 peers, where a Buffer each spent
 * more time in the collector than in the encoding).
 */
export function writePeer(b: Buffer, off: number, route: PeerRoute): void {
  // No function objects for the error's words (writeIPv4's and checkSubnet's `what`): three for each of 65,536
  // peers were half of packing them. The messages are theirs.
  const { publicIP, subnet } = route;
  if (publicIP.family !== 4) peerError(route, `publicIP: ${publicIP} is not an IPv4 address`);
  b.writeUInt32BE(Number(publicIP.addr), off + P.public_ip);
  if (subnet.family !== 4) peerError(route, `${subnet} is not an IPv4 subnet`);
  if (!subnet.isNetworkAddress()) peerError(route, `"${subnet}" has host bits set`);
  if (route.encap === 'vxlan' || (route.directRouting && route.vtepMAC)) {
    if (route.vni === undefined || !Number.isInteger(route.vni) || route.vni < 0 || route.vni > 0xffffff)
      peerError(route, `vni ${String(route.vni)} is not a VNI (0..16777215)`);
    if (!route.vtepMAC) peerError(route, 'a vxlan peer needs its vtepMAC');
  }
  b.writeUInt32LE(route.vni ?? 0, off + P.vni);
  if (route.vtepMAC && !putMac(b, off + P.vtep_mac, route.vtepMAC)) peerError(route, `vtepMAC: "${route.vtepMAC}" is not a MAC address`);
  if (route.directRouting && route.encap !== 'direct')
    peerError(route, `a DirectRouting peer is forwarded directly (encap 'direct'), not with ${route.encap}`);
  b[off + P.encap] = ENCAP[route.encap];
  b[off + P.flags] = route.directRouting ? PEER_F_DIRECT_ROUTING : 0;
}

function peerError(route: PeerRoute, message: string): never {
  throw new Error(`weft_peer ${route.subnet}: ${message}`);
}

/** The entry for our own subnet: never a destination of the overlay (its traffic stays on the host). */
export function encodeLocalPeer(publicIP: IPAddr): Buffer {
  const b = Buffer.alloc(PEER_SIZE);
  writeLocalPeer(b, 0, publicIP);
  return b;
}

/** encodeLocalPeer into b at off, which must hold zeros. */
export function writeLocalPeer(b: Buffer, off: number, publicIP: IPAddr): void {
  writeIPv4(b, off + P.public_ip, publicIP, () => 'weft_peer (local): publicIP');
  b[off + P.encap] = ENCAP.none;
  b[off + P.flags] = PEER_F_LOCAL;
}

export interface DecodedPeer {
  route: PeerRoute;
  local: boolean;
}

/** The inverse of encodePeer. */
export function decodePeer(key: Buffer, value: Buffer): DecodedPeer {
  checkSize(value, PEER_SIZE, 'weft_peer');
  const subnet = decodeLpmKey(key);
  const encapNum = value[P.encap];
  const flags = value[P.flags];
  const name = ENCAP_NAMES[encapNum];
  if (name === undefined) throw new Error(`weft_peer ${subnet}: unknown encap ${encapNum}`);
  const mac = value.subarray(P.vtep_mac, P.vtep_mac + 6).some((x) => x !== 0) ? macString(value, P.vtep_mac) : undefined;
  const directRouting = (flags & PEER_F_DIRECT_ROUTING) !== 0;
  const encap: Encap = name === 'none' ? 'direct' : name;
  const route: PeerRoute = { subnet, publicIP: IPAddr.fromBytes(value.subarray(P.public_ip, P.public_ip + 4)), encap, directRouting };
  if (encap === 'vxlan' || (directRouting && mac)) {
    route.vni = value.readUInt32LE(P.vni);
    if (mac) route.vtepMAC = mac;
  }
  return { route, local: (flags & PEER_F_LOCAL) !== 0 || name === 'none' };
}

// --- weft_config ---------------------------------------------------------------

const BACKEND_ENCAP: Record<BackendType, number> = { vxlan: ENCAP.vxlan, ipip: ENCAP.ipip, udp: ENCAP.udp, 'host-gw': ENCAP.direct };

/** What the loader knows beyond LocalNetwork: the overlay device it made or adopted, and what the programs may do with it. */
export interface ConfigDevices {
  overlayIfindex: number;
  overlayMAC: string;
  /** Forward peer traffic for local pods in the program (CFG_F_POD_FORWARD). */
  podForward?: boolean;
  /** udp: the UDP port of the overlay device's vxlan receive path (CFG_F_KERNEL_DECAP); 0 or absent: decapsulate in the program. */
  decapPort?: number;
  /** vxlan without GBP: push the headers in the program instead of the device's transmit path (CFG_F_VXLAN_PUSH). */
  vxlanPush?: boolean;
  /** Accept tunnel packets from any sender (CFG_F_ANY_SENDER); the VNI is still checked. */
  anySender?: boolean;
  /** Conntrack follows flows on this host (CFG_F_CT_FOLLOWS): packets of flows it has no entry for go the host's way. */
  ctFollows?: boolean;
  /** Conntrack's established TCP timeout, ms: established flows it tracks liberally skip the host, refreshed to it; 0 or absent: they never do. */
  ctTimeoutMs?: number;
}

export interface DecodedConfig {
  /** The outer source of our tunnels, and the destination the underlay program decapsulates. */
  address: string;
  subnet: string;
  network: string;
  backend: EncapName;
  ready: boolean;
  vni: number;
  port: number;
  underlayMTU: number;
  underlayIfindex: number;
  overlayIfindex: number;
  vtepMAC: string;
  overlayMAC: string;
  underlayMAC: string;
  podForward: boolean;
  /** The overlay device's vxlan port that udp packets are handed to, or 0 when the programs decapsulate. */
  decapPort: number;
  vxlanPush: boolean;
  anySender: boolean;
  ctFollows: boolean;
  ctTimeoutMs: number;
}

/**
 * struct weft_config. Its public_ip field gets the underlay interface's own
 * address, not the advertised PublicIP: it is the outer source address and
 * the address tunnelled packets arrive at, and the two differ only behind NAT,
 * where the advertised PublicIP is not ours to send from.
 */
export function encodeConfig(local: LocalNetwork, dev: ConfigDevices, ready = true): Buffer {
  const b = Buffer.alloc(CONFIG_SIZE);
  writeSubnet(b, C.subnet, local.subnet, () => 'weft_config: subnet');
  writeSubnet(b, C.network, local.network, () => 'weft_config: network');
  const backend = BACKEND_ENCAP[local.backend];
  if (backend === undefined) throw new Error(`weft_config: unknown backend "${local.backend}"`);
  ipv4Bytes(local.iface.address, 'weft_config: iface.address').copy(b, C.public_ip);
  b[C.subnet_len] = local.subnet.prefixLen;
  b[C.network_len] = local.network.prefixLen;
  b[C.backend] = backend;
  const decapPort = dev.decapPort ?? 0;
  checkU16(decapPort, 'weft_config: decapPort');
  if (decapPort && local.backend !== 'udp') throw new Error(`weft_config: decapPort is for the udp backend, not ${local.backend}`);
  if (dev.vxlanPush && (local.backend !== 'vxlan' || local.vxlan?.gbp)) throw new Error(`weft_config: vxlanPush is for the vxlan backend without GBP (backend ${local.backend})`);
  b[C.flags] = (ready ? CFG_F_READY : 0) | (dev.podForward ? CFG_F_POD_FORWARD : 0) | (decapPort ? CFG_F_KERNEL_DECAP : 0) | (dev.vxlanPush ? CFG_F_VXLAN_PUSH : 0) | (dev.anySender ? CFG_F_ANY_SENDER : 0) | (dev.ctFollows ? CFG_F_CT_FOLLOWS : 0);
  const ctTimeoutMs = dev.ctTimeoutMs ?? 0;
  if (!Number.isInteger(ctTimeoutMs) || ctTimeoutMs < 0 || ctTimeoutMs > 0xffffffff) throw new Error(`weft_config: ctTimeoutMs ${ctTimeoutMs} does not fit 32 bits`);
  b.writeUInt32LE(ctTimeoutMs, C.ct_timeout_ms);
  b.writeUInt16LE(decapPort, C.decap_port);
  let port = 0;
  if (local.backend === 'vxlan') {
    if (!local.vxlan) throw new Error('weft_config: the vxlan backend needs its vxlan settings');
    b.writeUInt32LE(local.vxlan.vni, C.vni);
    port = local.vxlan.port || DEFAULT_VXLAN_PORT;
    macBytes(local.vxlan.vtepMAC, 'weft_config: vxlan.vtepMAC').copy(b, C.vtep_mac);
  } else if (local.backend === 'udp') {
    port = local.udp?.port || DEFAULT_UDP_PORT;
  }
  b.writeUInt16LE(port, C.port);
  checkU16(local.iface.mtu, 'weft_config: iface.mtu');
  b.writeUInt16LE(local.iface.mtu, C.mtu);
  b.writeUInt32LE(local.iface.index, C.underlay_ifindex);
  b.writeUInt32LE(dev.overlayIfindex, C.overlay_ifindex);
  macBytes(dev.overlayMAC, 'weft_config: overlay MAC').copy(b, C.overlay_mac);
  macBytes(local.iface.mac, 'weft_config: iface.mac').copy(b, C.underlay_mac);
  return b;
}

export function decodeConfig(b: Buffer): DecodedConfig {
  checkSize(b, CONFIG_SIZE, 'weft_config');
  return {
    address: ipv4String(b, C.public_ip),
    subnet: `${ipv4String(b, C.subnet)}/${b[C.subnet_len]}`,
    network: `${ipv4String(b, C.network)}/${b[C.network_len]}`,
    backend: ENCAP_NAMES[b[C.backend]] ?? 'none',
    ready: (b[C.flags] & CFG_F_READY) !== 0,
    vni: b.readUInt32LE(C.vni),
    port: b.readUInt16LE(C.port),
    underlayMTU: b.readUInt16LE(C.mtu),
    underlayIfindex: b.readUInt32LE(C.underlay_ifindex),
    overlayIfindex: b.readUInt32LE(C.overlay_ifindex),
    vtepMAC: macString(b, C.vtep_mac),
    overlayMAC: macString(b, C.overlay_mac),
    underlayMAC: macString(b, C.underlay_mac),
    podForward: (b[C.flags] & CFG_F_POD_FORWARD) !== 0,
    decapPort: (b[C.flags] & CFG_F_KERNEL_DECAP) !== 0 ? b.readUInt16LE(C.decap_port) : 0,
    vxlanPush: (b[C.flags] & CFG_F_VXLAN_PUSH) !== 0,
    anySender: (b[C.flags] & CFG_F_ANY_SENDER) !== 0,
    ctFollows: (b[C.flags] & CFG_F_CT_FOLLOWS) !== 0,
    ctTimeoutMs: b.readUInt32LE(C.ct_timeout_ms),
  };
}

export const CONFIG_KEY = Buffer.alloc(4);

// --- weft_stats / weft_drops -----------------------------------------------------

export interface Counter {
  packets: bigint;
  bytes: bigint;
}

export function statsIndex(dir: DirName, encap: EncapName): number {
  return DIR[dir] * ENCAP_MAX + ENCAP[encap];
}

export function u32Key(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}

export function dropKey(reason: DropReason): Buffer {
  return u32Key(DROP_REASONS.indexOf(reason));
}

/** Sums a per-CPU lookup result: one 16-byte struct weft_counter per possible CPU. */
export function decodeCounter(perCpu: Buffer): Counter {
  if (perCpu.length % COUNTER_SIZE !== 0) throw new Error(`weft_counter: ${perCpu.length} bytes is not a whole number of per-CPU counters`);
  let packets = 0n;
  let bytes = 0n;
  for (let off = 0; off < perCpu.length; off += COUNTER_SIZE) {
    packets += perCpu.readBigUInt64LE(off + N.packets);
    bytes += perCpu.readBigUInt64LE(off + N.bytes);
  }
  return { packets, bytes };
}

function checkSize(b: Buffer, size: number, what: string): void {
  if (b.length !== size) throw new Error(`${what}: ${b.length} bytes, the schema says ${size}`);
}

function checkU16(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new Error(`${what}: ${n} does not fit 16 bits`);
}

// --- weft_ports ------------------------------------------------------------------

/** struct weft_port_key: a MAC learned on one of a bridge's ports. */
export function encodePortKey(bridgeIfindex: number, mac: string): Buffer {
  const b = Buffer.alloc(LAYOUT.weft_port_key.size);
  b.writeUInt32LE(bridgeIfindex, PK.bridge_ifindex);
  macBytes(mac, `weft_port_key (bridge ${bridgeIfindex})`).copy(b, PK.mac);
  return b;
}

export function decodePortKey(b: Buffer): { bridgeIfindex: number; mac: string } {
  checkSize(b, LAYOUT.weft_port_key.size, 'weft_port_key');
  return { bridgeIfindex: b.readUInt32LE(PK.bridge_ifindex), mac: macString(b, PK.mac) };
}

export interface BridgePort {
  ifindex: number;
  /** The port is a veth whose other end is in another network namespace (a pod's). */
  peer: boolean;
}

/** struct weft_port: the port the MAC was learned on. */
export function encodePort(port: BridgePort): Buffer {
  const b = Buffer.alloc(LAYOUT.weft_port.size);
  b.writeUInt32LE(port.ifindex, PV.ifindex);
  b.writeUInt32LE(port.peer ? PORT_F_PEER : 0, PV.flags);
  return b;
}

export function decodePort(b: Buffer): BridgePort {
  checkSize(b, LAYOUT.weft_port.size, 'weft_port');
  return { ifindex: b.readUInt32LE(PV.ifindex), peer: (b.readUInt32LE(PV.flags) & PORT_F_PEER) !== 0 };
}

// --- weft_pod_ports --------------------------------------------------------------

/** weft_pod_ports' key: the port's ifindex. */
export function encodePodPortKey(ifindex: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(ifindex, 0);
  return b;
}

export function decodePodPortKey(b: Buffer): number {
  checkSize(b, 4, 'weft_pod_ports key');
  return b.readUInt32LE(0);
}

/** struct weft_pod_port: the bridge a port belongs to, and the MAC a pod addresses it by. */
export function encodePodPort(bridgeIfindex: number, bridgeMAC: string): Buffer {
  const b = Buffer.alloc(LAYOUT.weft_pod_port.size);
  b.writeUInt32LE(bridgeIfindex, PP.bridge_ifindex);
  writeMac(b, PP.bridge_mac, bridgeMAC, () => `weft_pod_port (bridge ${bridgeIfindex})`);
  return b;
}

// --- weft_ct_wanted ----------------------------------------------------------------

export interface CtTuple {
  /** Addresses as 4 network-order bytes, ports in host order: as a packet of the flow carries them. */
  saddr: Buffer;
  daddr: Buffer;
  sport: number;
  dport: number;
  proto: number;
}

/** struct weft_tuple: a flow the fast path waits to take (weft_ct_wanted's key). */
export function decodeCtTuple(b: Buffer): CtTuple {
  checkSize(b, LAYOUT.weft_tuple.size, 'weft_tuple');
  return {
    saddr: Buffer.from(b.subarray(CT.saddr, CT.saddr + 4)),
    daddr: Buffer.from(b.subarray(CT.daddr, CT.daddr + 4)),
    sport: b.readUInt16BE(CT.sport),
    dport: b.readUInt16BE(CT.dport),
    proto: b[CT.proto],
  };
}
