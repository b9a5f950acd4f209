// The network config at <prefix>/config: flannel's fields, defaults and
// checks. Every problem is a config WeftError naming the field and the reason.
import { IPNet, SPECIAL_IPV4, type Family } from '../core/ipnet.js';
import type { BackendType } from '../core/model.js';
import { configError } from '../core/errors.js';


/** flannel's ports when a config's Backend.Port is 0 or absent; what a 0 port means everywhere in weft. */
export const DEFAULT_VXLAN_PORT = 8472;
export const DEFAULT_UDP_PORT = 8285;

export interface BackendConfig {
  type: BackendType;
  /** vxlan */
  vni: number;
  /** vxlan and udp: never 0 once parsed (DEFAULT_VXLAN_PORT, DEFAULT_UDP_PORT) */
  port: number;
  gbp: boolean;
  learning: boolean;
  /** vxlan and ipip */
  directRouting: boolean;
  /** The pods' MTU when set (vxlan); 0 = derived from the interface. */
  mtu: number;
}

export interface SubnetRange {
  network: IPNet;
  subnetLen: number;
  /** First and last subnet the allocator may hand out. */
  subnetMin: IPNet;
  subnetMax: IPNet;
}

export interface NetworkConfig {
  enableIPv4: boolean;
  enableIPv6: boolean;
  ipv4: SubnetRange;
  ipv6?: SubnetRange;
  backend: BackendConfig;
  /** True when the config named no Backend: flannel then runs udp. */
  backendDefaulted: boolean;
  /** Fields we did not recognise (ignored, as flannel does, but worth a warning). */
  unknownFields: string[];
}

const TOP_FIELDS = [
  'Network', 'SubnetLen', 'SubnetMin', 'SubnetMax', 'EnableIPv4', 'EnableIPv6', 'EnableNFTables',
  'IPv6Network', 'IPv6SubnetLen', 'IPv6SubnetMin', 'IPv6SubnetMax', 'Backend',
];
const BACKEND_FIELDS: Record<BackendType, string[]> = {
  vxlan: ['Type', 'VNI', 'Port', 'GBP', 'Learning', 'DirectRouting', 'MTU', 'MacPrefix'],
  'host-gw': ['Type'],
  ipip: ['Type', 'DirectRouting'],
  udp: ['Type', 'Port'],
};

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optInt(obj: Json, key: string, field: string, min: number, max: number): number | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw configError(field, `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function optBool(obj: Json, key: string, field: string): boolean | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw configError(field, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function optString(obj: Json, key: string, field: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw configError(field, `must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function parseNet(text: string, field: string, family: Family): IPNet {
  const net = IPNet.parse(text);
  if (!net || net.family !== family) {
    throw configError(field, `${JSON.stringify(text)} is not an IPv${family} network in CIDR form (e.g. ${family === 4 ? '10.244.0.0/16' : 'fd00:10:244::/56'})`);
  }
  return net;
}

/** flannel's rules for one family; names are the JSON field names for that family. */
function parseRange(obj: Json, family: Family): SubnetRange {
  const f = family === 4
    ? { net: 'Network', len: 'SubnetLen', min: 'SubnetMin', max: 'SubnetMax', dflt: 24, dfltUpTo: 22, maxLen: 30, minNet: 28 }
    : { net: 'IPv6Network', len: 'IPv6SubnetLen', min: 'IPv6SubnetMin', max: 'IPv6SubnetMax', dflt: 64, dfltUpTo: 62, maxLen: 126, minNet: 124 };
  const text = optString(obj, f.net, f.net);
  if (!text) {
    throw configError(f.net, family === 4
      ? 'missing: please define a correct Network parameter, e.g. {"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}'
      : 'missing while EnableIPv6 is true: please define a correct IPv6Network parameter');
  }
  const parsed = parseNet(text, f.net, family);
  if (!parsed.isNetworkAddress()) {
    throw configError(f.net, `${text} has host bits set; did you mean ${parsed.canonical().toString()}?`);
  }
  const network = parsed;
  if (family === 4 && network.prefixLen === 0) {
    throw configError(f.net, `${text} covers every address, the host's own networks and the route to etcd among them; choose a private range such as 10.244.0.0/16`);
  }
  if (family === 4) {
    const special = SPECIAL_IPV4.find(([n]) => n.prefixLen > 0 && n.overlaps(network));
    if (special) throw configError(f.net, `${text} overlaps ${special[0]} (${special[1]}); pods cannot use those addresses: choose a private range such as 10.244.0.0/16`);
  }
  if (network.prefixLen > f.minNet) {
    throw configError(f.net, `network ${text} is too small: the minimum useful network prefix is /${f.minNet}`);
  }
  const bits = network.bits;
  const given = optInt(obj, f.len, f.len, 0, bits);
  const subnetLen = given ?? (network.prefixLen <= f.dfltUpTo ? f.dflt : network.prefixLen + 2);
  if (subnetLen > f.maxLen) throw configError(f.len, `${f.len} must be less than /${f.maxLen + 1}, got /${subnetLen}`);
  if (subnetLen - network.prefixLen < 2) {
    throw configError(f.len, `network ${text} must be able to accommodate at least four subnets: ${f.len} must be at least /${network.prefixLen + 2}, got /${subnetLen}`);
  }
  const subnetSize = 1n << BigInt(bits - subnetLen);
  const boundary = (field: string, dflt: bigint): IPNet => {
    const t = optString(obj, field, field);
    if (!t) return new IPNet(family, dflt, subnetLen);
    // flannel writes SubnetMin/Max as addresses; accept "a.b.c.d" and "a.b.c.d/len".
    const net = IPNet.parse(t.includes('/') ? t : `${t}/${subnetLen}`);
    if (!net || net.family !== family) throw configError(field, `${JSON.stringify(t)} is not an IPv${family} address`);
    if (!network.containsIP(net.base)) throw configError(field, `${t} is not in the range of the network ${network}`);
    if ((net.base - network.network) % subnetSize !== 0n) throw configError(field, `${t} is not on a ${f.len} boundary (/${subnetLen})`);
    return new IPNet(family, net.base, subnetLen);
  };
  const subnetMin = boundary(f.min, network.network + subnetSize);
  const subnetMax = boundary(f.max, network.network + network.size - subnetSize);
  if (subnetMin.base > subnetMax.base) {
    throw configError(f.min, `${subnetMin.ip} is above ${f.max} ${subnetMax.ip}: no subnet can be allocated`);
  }
  return { network, subnetLen, subnetMin, subnetMax };
}

function parseBackend(raw: unknown): { backend: BackendConfig; defaulted: boolean; unknown: string[] } {
  if (raw === undefined || raw === null) {
    return { backend: { type: 'udp', vni: 0, port: DEFAULT_UDP_PORT, gbp: false, learning: false, directRouting: false, mtu: 0 }, defaulted: true, unknown: [] };
  }
  if (!isObject(raw)) throw configError('Backend', `must be an object such as {"Type": "vxlan"}, got ${JSON.stringify(raw)}`);
  const typeText = optString(raw, 'Type', 'Backend.Type');
  if (!typeText) throw configError('Backend.Type', 'missing: expected one of vxlan, host-gw, ipip, udp');
  const type = typeText.toLowerCase() as BackendType;
  if (!(type in BACKEND_FIELDS)) {
    throw configError('Backend.Type', `unknown backend type ${JSON.stringify(typeText)}: expected one of vxlan, host-gw, ipip, udp`);
  }
  const unknown = Object.keys(raw).filter((k) => !BACKEND_FIELDS[type].includes(k)).map((k) => `Backend.${k}`);
  const b: BackendConfig = { type, vni: 0, port: 0, gbp: false, learning: false, directRouting: false, mtu: 0 };
  if (type === 'vxlan') {
    b.vni = optInt(raw, 'VNI', 'Backend.VNI', 0, 0xffffff) ?? 1;
    const port = optInt(raw, 'Port', 'Backend.Port', 0, 65535) ?? 0;
    b.port = port === 0 ? DEFAULT_VXLAN_PORT : port;
    b.gbp = optBool(raw, 'GBP', 'Backend.GBP') ?? false;
    b.learning = optBool(raw, 'Learning', 'Backend.Learning') ?? false;
    b.directRouting = optBool(raw, 'DirectRouting', 'Backend.DirectRouting') ?? false;
    const mtu = optInt(raw, 'MTU', 'Backend.MTU', 0, 65535) ?? 0;
    if (mtu !== 0 && mtu < 576) throw configError('Backend.MTU', `must be at least 576 (or 0 for the interface MTU minus the overhead), got ${mtu}`);
    b.mtu = mtu;
  } else if (type === 'ipip') {
    b.directRouting = optBool(raw, 'DirectRouting', 'Backend.DirectRouting') ?? false;
  } else if (type === 'udp') {
    const port = optInt(raw, 'Port', 'Backend.Port', 0, 65535) ?? 0;
    b.port = port === 0 ? DEFAULT_UDP_PORT : port;
  }
  return { backend: b, defaulted: false, unknown };
}

/** Parses and validates the JSON text of <prefix>/config, filling flannel's defaults. */
export function parseNetworkConfig(text: string): NetworkConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw configError('(document)', `not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(raw)) throw configError('(document)', 'must be a JSON object such as {"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}');
  const enableIPv4 = optBool(raw, 'EnableIPv4', 'EnableIPv4') ?? true;
  const enableIPv6 = optBool(raw, 'EnableIPv6', 'EnableIPv6') ?? false;
  if (!enableIPv4) throw configError('EnableIPv4', 'false is not supported: weft leases an IPv4 subnet on every host (IPv6 comes on top with EnableIPv6)');
  const ipv4 = parseRange(raw, 4);
  const ipv6 = enableIPv6 ? parseRange(raw, 6) : undefined;
  const { backend, defaulted, unknown } = parseBackend(raw.Backend);
  const unknownFields = [...Object.keys(raw).filter((k) => !TOP_FIELDS.includes(k)), ...unknown];
  return { enableIPv4, enableIPv6, ipv4, ipv6, backend, backendDefaulted: defaulted, unknownFields };
}

/** The config with every default filled in, in flannel's JSON shape (for `weft config check`). */
export function effectiveConfig(cfg: NetworkConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  out.Network = cfg.ipv4.network.toString();
  out.SubnetLen = cfg.ipv4.subnetLen;
  out.SubnetMin = cfg.ipv4.subnetMin.ip;
  out.SubnetMax = cfg.ipv4.subnetMax.ip;
  out.EnableIPv4 = cfg.enableIPv4;
  out.EnableIPv6 = cfg.enableIPv6;
  if (cfg.ipv6) {
    out.IPv6Network = cfg.ipv6.network.toString();
    out.IPv6SubnetLen = cfg.ipv6.subnetLen;
    out.IPv6SubnetMin = cfg.ipv6.subnetMin.ip;
    out.IPv6SubnetMax = cfg.ipv6.subnetMax.ip;
  }
  const b = cfg.backend;
  const backend: Record<string, unknown> = { Type: b.type };
  if (b.type === 'vxlan') Object.assign(backend, { VNI: b.vni, Port: b.port, GBP: b.gbp, Learning: b.learning, DirectRouting: b.directRouting, MTU: b.mtu });
  if (b.type === 'ipip') backend.DirectRouting = b.directRouting;
  if (b.type === 'udp') backend.Port = b.port;
  out.Backend = backend;
  return out;
}

/** Bytes the encapsulation adds to each packet: FLANNEL_MTU = interface MTU - overhead. */
export function encapOverhead(type: BackendType, underlayFamily: Family = 4): number {
  switch (type) {
    case 'vxlan':
      return underlayFamily === 6 ? 70 : 50;
    case 'ipip':
      return 20;
    case 'udp':
      return 28;
    case 'host-gw':
      return 0;
  }
}

/** The fields in which two configs differ, as "Field: old -> new" (JSON field names). */
export function diffConfigs(a: NetworkConfig, b: NetworkConfig): string[] {
  const fields = (c: NetworkConfig): Record<string, unknown> => ({
    Network: String(c.ipv4.network),
    SubnetLen: c.ipv4.subnetLen,
    SubnetMin: String(c.ipv4.subnetMin.ip),
    SubnetMax: String(c.ipv4.subnetMax.ip),
    EnableIPv6: c.enableIPv6,
    IPv6Network: c.ipv6 ? String(c.ipv6.network) : null,
    IPv6SubnetLen: c.ipv6?.subnetLen ?? null,
    'Backend.Type': c.backend.type,
    'Backend.VNI': c.backend.vni,
    'Backend.Port': c.backend.port,
    'Backend.GBP': c.backend.gbp,
    'Backend.Learning': c.backend.learning,
    'Backend.DirectRouting': c.backend.directRouting,
    'Backend.MTU': c.backend.mtu,
  });
  const fa = fields(a);
  const fb = fields(b);
  return Object.keys(fa)
    .filter((k) => fa[k] !== fb[k])
    .map((k) => `${k}: ${JSON.stringify(fa[k])?.replace(/^"(.*)"$/, '$1')} -> ${JSON.stringify(fb[k])?.replace(/^"(.*)"$/, '$1')}`);
}
