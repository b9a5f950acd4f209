// `weft leases` when it runs: the subnet leases in etcd under the prefix, with
// the TTL each has left.
import { WeftError } from '../core/errors.js';
import { etcdRefusal } from '../subnet/etcd-tls.js';
import { EtcdRegistry, type LeaseList } from '../subnet/registry.js';
import { isReservation, type Lease } from '../subnet/lease.js';
import { parseNetworkConfig } from '../config/network.js';
import { etcdFromArgs } from './options.js';
import { dash, duration, print, table, toJson } from './table.js';
import { TTL_AUTO_MAX, type LeasesArgs } from './leases.js';

export interface LeaseRow {
  key: string;
  subnet: string;
  subnetV6: string | null;
  publicIP: string;
  publicIPv6: string | null;
  /** BackendType as written; null when the lease has none (flannel's udp leases, and most reservations). */
  backend: string | null;
  vni: number | null;
  vtepMAC: string | null;
  backendData: unknown;
  /** Written without an etcd lease: never expires, and only its PublicIP may take it. */
  reservation: boolean;
  /** Decimal etcd lease id; null for a reservation. */
  leaseId: string | null;
  /** Seconds left (etcd LeaseTimeToLive); null for a reservation, for a lease etcd no longer has, and when TTLs were not asked (report.ttls). */
  ttlSeconds: number | null;
  grantedTTLSeconds: number | null;
  expiresAt: string | null;
  /** The etcd lease is gone (expired between the list and the TTL query). */
  expired: boolean;
  modRevision: string;
}

export interface MalformedRow {
  key: string;
  reason: string;
  /** The subnet the key names, when only the value is bad (the allocator still counts it as taken). */
  subnet: string | null;
}

export interface LeasesReport {
  prefix: string;
  endpoints: string[];
  revision: string;
  /** The Network of the config under the prefix; null when there is none (or it does not parse). */
  network: string | null;
  leases: LeaseRow[];
  malformed: MalformedRow[];
  /** Whether etcd was asked for each lease's TTL (`--ttl`; by default only up to TTL_AUTO_MAX etcd leases). */
  ttls: boolean;
}

function backendField(data: unknown, field: string): unknown {
  return typeof data === 'object' && data !== null ? (data as Record<string, unknown>)[field] : undefined;
}

/** ttl: etcd's answer for the row's lease, null when etcd has no such lease, undefined when it was not asked. */
export function leaseRow(l: Lease, key: string, ttl: { ttl: number; granted: number } | null | undefined, now: number): LeaseRow {
  const reservation = isReservation(l);
  const vni = backendField(l.attrs.BackendData, 'VNI');
  const mac = backendField(l.attrs.BackendData, 'VtepMAC');
  const alive = ttl !== null && ttl !== undefined && ttl.ttl >= 0;
  return {
    key,
    subnet: l.subnet.toString(),
    subnetV6: l.subnetV6?.toString() ?? null,
    publicIP: l.attrs.PublicIP,
    publicIPv6: l.attrs.PublicIPv6,
    backend: l.attrs.BackendType ?? null,
    vni: typeof vni === 'number' ? vni : null,
    vtepMAC: typeof mac === 'string' ? mac : null,
    backendData: l.attrs.BackendData ?? null,
    reservation,
    leaseId: reservation ? null : l.leaseId,
    ttlSeconds: alive ? ttl.ttl : null,
    grantedTTLSeconds: alive ? ttl.granted : null,
    expiresAt: alive ? new Date(now + ttl.ttl * 1000).toISOString() : null,
    expired: !reservation && ttl !== undefined && !alive,
    // A string, as etcd's JSON gives every int64 (and as weft leases always has).
    modRevision: String(l.modRevision),
  };
}

/** TTL calls in flight at once: one connection multiplexes them; the count bounds what one `weft leases` asks of etcd at a time. */
const TTL_CALLS_IN_FLIGHT = 64;

async function timeToLive(reg: EtcdRegistry, ids: string[]): Promise<Map<string, { ttl: number; granted: number }>> {
  const out = new Map<string, { ttl: number; granted: number }>();
  // etcd has no call for many leases' TTLs: one each, kept TTL_CALLS_IN_FLIGHT deep (rounds of a few left the
  // connection idle while the slowest of each round finished: 65,535 leases of their own took 24-36 s).
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < ids.length) {
      const id = ids[next++];
      const r = await reg.client.leaseClient.leaseTimeToLive({ ID: id, keys: false });
      out.set(id, { ttl: Number(r.TTL), granted: Number(r.grantedTTL) });
    }
  };
  await Promise.all(Array.from({ length: Math.min(TTL_CALLS_IN_FLIGHT, ids.length) }, worker));
  return out;
}

/**
 * The leases and what etcd says of them. TTLs take a call per etcd lease
 * (etcd has no call for many; one costs about 0.3 ms of this process's CPU in
 * gRPC): `ttl` true asks for all, false for none, undefined for all only
 * when there are at most TTL_AUTO_MAX.
 */
export async function readLeases(reg: EtcdRegistry, ttl?: boolean): Promise<LeasesReport> {
  const where = `etcd at ${reg.options.endpoints.join(',')}`;
  let list: LeaseList;
  let configText: string | null;
  let ttls: Map<string, { ttl: number; granted: number }> | null = null;
  try {
    [list, configText] = await Promise.all([reg.listLeases(), reg.getConfigText()]);
    const ids = [...new Set(list.leases.filter((l) => !isReservation(l)).map((l) => l.leaseId))];
    if (ttl ?? ids.length <= TTL_AUTO_MAX) ttls = await timeToLive(reg, ids);
  } catch (err) {
    throw etcdRefusal(err, reg.options) ?? new WeftError(`cannot read the leases under ${reg.subnetsPrefix}: ${where} is unreachable or failing (${(err as Error).message}). Check --etcd-endpoints and that etcd is running.`, 'unavailable');
  }
  let network: string | null = null;
  try {
    if (configText !== null) network = parseNetworkConfig(configText).ipv4.network.toString();
  } catch {
    // A broken config is `weft config check`'s business; the leases are still worth listing.
  }
  const now = Date.now();
  const leases = list.leases
    .sort((x, y) => (x.subnet.network < y.subnet.network ? -1 : x.subnet.network > y.subnet.network ? 1 : 0))
    .map((l) => leaseRow(l, reg.subnetsPrefix + l.name, ttls ? (ttls.get(l.leaseId) ?? null) : undefined, now));
  const malformed = list.malformed.map((m) => ({ key: m.key, reason: m.reason, subnet: m.subnet?.toString() ?? null }));
  return { prefix: reg.prefix, endpoints: reg.options.endpoints, revision: list.revision, network, leases, malformed, ttls: ttls !== null };
}

function expiry(r: LeaseRow, asked: boolean): string {
  if (r.reservation) return 'reservation';
  if (r.expired) return 'expired';
  if (!asked) return '?';
  return duration((r.ttlSeconds ?? 0) * 1000);
}

export function formatLeases(rep: LeasesReport): string {
  const v6 = rep.leases.some((r) => r.subnetV6 || r.publicIPv6);
  const headers = ['SUBNET', ...(v6 ? ['SUBNET (IPv6)'] : []), 'PUBLIC IP', ...(v6 ? ['PUBLIC IPv6'] : []), 'BACKEND', 'VNI', 'VTEP MAC', 'EXPIRES IN', 'ETCD LEASE'];
  const rows = rep.leases.map((r) => [
    r.subnet,
    ...(v6 ? [dash(r.subnetV6)] : []),
    r.publicIP,
    ...(v6 ? [dash(r.publicIPv6)] : []),
    dash(r.backend),
    dash(r.vni),
    dash(r.vtepMAC),
    expiry(r, rep.ttls),
    dash(r.leaseId),
  ]);
  let out = `${rep.leases.length} lease${rep.leases.length === 1 ? '' : 's'} under ${rep.prefix}/subnets/ (Network ${rep.network ?? 'unknown: no config'}, etcd revision ${rep.revision})\n`;
  if (!rep.ttls && rep.leases.some((r) => !r.reservation)) out += `EXPIRES IN not asked: over ${TTL_AUTO_MAX} etcd leases, a call each (--ttl asks)\n`;
  if (rep.leases.length) out += '\n' + table(headers, rows);
  if (rep.malformed.length) {
    out += `\n${rep.malformed.length} malformed (skipped by agents; a key that names a subnet still keeps it taken):\n\n`;
    out += table(['KEY', 'SUBNET', 'PROBLEM'], rep.malformed.map((m) => [m.key, dash(m.subnet), m.reason]));
  }
  return out;
}

export async function runLeases(a: LeasesArgs): Promise<void> {
  const reg = new EtcdRegistry(etcdFromArgs(a));
  try {
    const rep = await readLeases(reg, a.ttl);
    print(a.output === 'json' ? toJson(rep) : formatLeases(rep));
    if (rep.leases.length === 0 && rep.malformed.length === 0 && rep.network === null) {
      process.stderr.write(`note: nothing under ${rep.prefix} (no config, no leases): is --etcd-prefix right? flannel's default is /coreos.com/network\n`);
    }
  } finally {
    reg.close();
  }
}
