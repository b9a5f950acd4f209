// flannel's CNI plugin semantics (flannel-io/cni-plugin, flannel.go and
// flannel_linux.go): the plugin's own config, subnet.env read into the
// delegate's config, and that config serialised as flannel saves it
// (Go's encoding/json: map keys sorted), so that a dataDir written by
// flannel's plugin is read by weft's and the other way round.
import { readEnvFile } from '../agent/subnet-env.js';
import { IPNet } from '../core/ipnet.js';
import { DEFAULT_SUBNET_FILE } from '../core/paths.js';
import { CniError, CODE } from './spec.js';

export const DEFAULT_DATA_DIR = '/var/lib/cni/flannel';

type Obj = Record<string, unknown>;

export interface NetConf {
  raw: Obj;
  cniVersion: string;
  name: string;
  type: string;
  subnetFile: string;
  dataDir: string;
  delegate: Obj | null;
  ipam: Obj | null;
  runtimeConfig: Obj | null;
  prevResult: Obj | null;
  /** weft's own: the pod's devices follow the underlay's BIG TCP limits (bigtcp.ts). */
  bigTCP: boolean;
}

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const kind = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`);

function decodeError(field: string, want: string, v: unknown): CniError {
  return new CniError(CODE.decodingFailure, `failed to load netconf: ${field}: expected ${want}, got ${kind(v)} (${JSON.stringify(v)?.slice(0, 60)})`);
}

function str(o: Obj, field: string, dflt = ''): string {
  const v = o[field];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'string') throw decodeError(field, 'a string', v);
  return v;
}

function bool(o: Obj, field: string): boolean {
  const v = o[field];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw decodeError(field, 'a boolean', v);
  return v;
}

function obj(o: Obj, field: string): Obj | null {
  const v = o[field];
  if (v === undefined || v === null) return null;
  if (!isObj(v)) throw decodeError(field, 'an object', v);
  return v;
}

/** The plugin's config from stdin: JSON syntax, the network name (skel's rules) and every field weft reads, each error naming its field. */
export function parseNetConf(stdin: string): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(CODE.decodingFailure, `error unmarshall network config: ${(err as Error).message}`);
  }
  if (!isObj(raw)) throw new CniError(CODE.decodingFailure, `error unmarshall network config: expected a JSON object, got ${kind(raw)}`);
  const name = str(raw, 'name');
  if (!name) throw new CniError(CODE.invalidNetworkConfig, 'missing network name');
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) throw new CniError(CODE.invalidNetworkConfig, 'invalid characters found in network name', name);
  for (const f of ['capabilities', 'dns']) obj(raw, f);
  return {
    raw,
    cniVersion: str(raw, 'cniVersion'),
    name,
    type: str(raw, 'type'),
    subnetFile: str(raw, 'subnetFile') || DEFAULT_SUBNET_FILE,
    dataDir: str(raw, 'dataDir') || DEFAULT_DATA_DIR,
    delegate: obj(raw, 'delegate'),
    ipam: obj(raw, 'ipam'),
    runtimeConfig: obj(raw, 'runtimeConfig'),
    prevResult: obj(raw, 'prevResult'),
    bigTCP: bool(raw, 'bigTCP'),
  };
}

export interface FlannelEnv {
  networks: string[];
  subnet: string | null;
  ipv6Networks: string[];
  ipv6Subnet: string | null;
  mtu: number;
  ipMasq: boolean;
}

/** subnet.env as flannel's loadFlannelSubnetEnv reads it: networks deduplicated, subnets as networks (10.244.3.1/24 -> 10.244.3.0/24). */
export function loadSubnetEnv(file: string): FlannelEnv {
  const env = readEnvFile(file);
  if (!env) {
    throw new CniError(CODE.tryAgainLater, 'subnet.env not found: is the weft agent running?', `${file} does not exist; the weft agent (or flanneld) writes it once it holds a subnet lease`);
  }
  const bad = (key: string, why: string): CniError => new CniError(CODE.invalidNetworkConfig, `${file}: ${key}: ${why}`, 'the weft agent (or flanneld) writes this file; was it edited by hand?');
  const cidr = (key: string, text: string): string => {
    const n = IPNet.parse(text);
    if (!n) throw bad(key, `${JSON.stringify(text)} is not a CIDR`);
    return n.canonical().toString();
  };
  const list = (key: string): string[] => (env[key] === undefined ? [] : [...new Set(env[key].split(',').map((c) => cidr(key, c)))]);
  const networks = list('FLANNEL_NETWORK');
  const ipv6Networks = list('FLANNEL_IPV6_NETWORK');
  const subnet = env.FLANNEL_SUBNET === undefined ? null : cidr('FLANNEL_SUBNET', env.FLANNEL_SUBNET);
  const ipv6Subnet = env.FLANNEL_IPV6_SUBNET === undefined ? null : cidr('FLANNEL_IPV6_SUBNET', env.FLANNEL_IPV6_SUBNET);
  const missing: string[] = [];
  if (!networks.length && !ipv6Networks.length) missing.push('FLANNEL_NETWORK', 'FLANNEL_IPV6_NETWORK');
  if (!subnet && !ipv6Subnet) missing.push('FLANNEL_SUBNET', 'FLANNEL_IPV6_SUBNET');
  if (env.FLANNEL_MTU === undefined) missing.push('FLANNEL_MTU');
  if (env.FLANNEL_IPMASQ === undefined) missing.push('FLANNEL_IPMASQ');
  if (missing.length) throw bad(missing.join(', '), 'missing');
  if (!/^\d+$/.test(env.FLANNEL_MTU) || Number(env.FLANNEL_MTU) > 0xffffffff) throw bad('FLANNEL_MTU', `${JSON.stringify(env.FLANNEL_MTU)} is not an MTU`);
  return { networks, subnet, ipv6Networks, ipv6Subnet, mtu: Number(env.FLANNEL_MTU), ipMasq: env.FLANNEL_IPMASQ === 'true' };
}

/** Objects Go marshals as structs: their keys keep the order they were built in. */
const structs = new WeakSet<object>();

/** ipam.routes as flannel reads them into types.Route: each needs a CIDR dst. */
function routesOf(ipam: Obj | null): Obj[] {
  const routes = ipam?.routes;
  if (routes === undefined || routes === null) return [];
  if (!Array.isArray(routes)) throw decodeError('ipam.routes', 'an array', routes);
  return routes.map((r: unknown, i) => {
    const field = `ipam.routes[${i}]`;
    if (!isObj(r)) throw decodeError(field, 'an object', r);
    if (typeof r.dst !== 'string' || !IPNet.parse(r.dst)) throw decodeError(`${field}.dst`, 'a CIDR string', r.dst);
    if (r.gw !== undefined && r.gw !== null && typeof r.gw !== 'string') throw decodeError(`${field}.gw`, 'an IP address string', r.gw);
    const route: Obj = { dst: r.dst };
    for (const k of ['gw', 'mtu', 'advmss', 'priority', 'table', 'scope']) if (r[k] !== undefined && r[k] !== null && r[k] !== '' && r[k] !== 0) route[k] = r[k];
    structs.add(route);
    return route;
  });
}

/** flannel's cmdAdd + doCmdAdd: the delegate's config, with our defaults where the `delegate` object leaves them out. */
export function buildDelegate(n: NetConf, fenv: FlannelEnv): Obj {
  const d: Obj = { ...(n.delegate ?? {}) };
  if ('type' in d && typeof d.type !== 'string') throw decodeError('delegate.type', 'a string', d.type);
  if ('name' in d) throw new CniError(CODE.invalidNetworkConfig, "'delegate' dictionary must not have 'name' field, it'll be set by flannel", 'delegate.name');
  if ('ipam' in d) throw new CniError(CODE.invalidNetworkConfig, "'delegate' dictionary must not have 'ipam' field, it'll be set by flannel", 'delegate.ipam');
  if (n.runtimeConfig) d.runtimeConfig = n.runtimeConfig;
  d.name = n.name;
  if (!('type' in d)) d.type = 'bridge';
  // If the agent does not masquerade, the bridge does.
  if (!('ipMasq' in d)) d.ipMasq = !fenv.ipMasq;
  if (!('mtu' in d)) d.mtu = fenv.mtu;
  if (d.type === 'bridge' && !('isGateway' in d)) d.isGateway = true;
  if (n.cniVersion) d.cniVersion = n.cniVersion;
  const ipam: Obj = { ...(n.ipam ?? {}) };
  if (!('type' in ipam)) ipam.type = 'host-local';
  ipam.ranges = [fenv.subnet, fenv.ipv6Subnet].filter((s): s is string => s !== null).map((subnet) => [{ subnet }]);
  const routes = routesOf(n.ipam);
  for (const dst of [...fenv.networks, ...fenv.ipv6Networks]) {
    const r = { dst };
    structs.add(r);
    routes.push(r);
  }
  ipam.routes = routes;
  d.ipam = ipam;
  return d;
}

/** JSON as Go's encoding/json writes it: map keys sorted, struct fields in order, <, > and & escaped. */
export function goJSON(v: unknown): string {
  const order = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(order);
    if (!isObj(x)) return x;
    const keys = structs.has(x) ? Object.keys(x) : Object.keys(x).sort();
    return Object.fromEntries(keys.filter((k) => x[k] !== undefined).map((k) => [k, order(x[k])]));
  };
  return JSON.stringify(order(v)).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
