// The etcd side of subnet leasing: flannel's keys under <prefix>, read and
// written with the etcd v3 API. No policy here (that is the lease manager's);
// every call is one etcd round trip with a deadline.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { Etcd3, type IKeyValue, type IOptions } from 'etcd3';
import { ExponentialBackoff, noop, type IBackoff } from 'cockatiel';
import { IPAddr, type IPNet } from '../core/ipnet.js';
import { isWeftError, usageError } from '../core/errors.js';
import { readTlsCredentials } from './etcd-tls.js';
import { encodeLeaseAttrs, formatSubnetKey, parseLeaseAttrs, parseSubnetKey, type Lease, type LeaseAttrs, type SubnetKey } from './lease.js';

export interface EtcdOptions {
  endpoints: string[];
  prefix: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  username?: string;
  password?: string;
  /** Deadline of each unary call. */
  callTimeoutMs?: number;
}

export interface MalformedLease {
  key: string;
  reason: string;
  /** Set when the key names a subnet (only the value is bad): the subnet still counts as taken. */
  subnet?: IPNet;
}

export interface LeaseList {
  leases: Lease[];
  malformed: MalformedLease[];
  /** The store revision the list was read at; a watch resumes after it. */
  revision: string;
}

export interface CreateResult {
  created: boolean;
  leaseId: string;
  /** ms since epoch; null for a reservation. */
  expiresAt: number | null;
}

export function buildClientOptions(o: EtcdOptions): IOptions {
  if (o.endpoints.length === 0) throw usageError('--etcd-endpoints is empty: give at least one, e.g. http://127.0.0.1:2379');
  const hosts: string[] = [];
  let tls = false;
  for (const e of o.endpoints) {
    let u: URL;
    try {
      u = new URL(e);
    } catch {
      throw usageError(`--etcd-endpoints: ${JSON.stringify(e)} is not a URL; write it as http://HOST:PORT or https://HOST:PORT`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw usageError(`--etcd-endpoints: ${e} has scheme ${u.protocol}; use http:// or https://`);
    }
    if (u.protocol === 'https:') tls = true;
    hosts.push(`${u.hostname.replace(/^\[|\]$/g, '')}:${u.port || '2379'}`);
  }
  if (tls && o.endpoints.some((e) => e.startsWith('http:'))) {
    throw usageError('--etcd-endpoints mixes http:// and https://; use one scheme for all endpoints');
  }
  if (Boolean(o.certFile) !== Boolean(o.keyFile)) {
    throw usageError('--etcd-certfile and --etcd-keyfile go together: give both for client certificate authentication, or neither');
  }
  if (!tls && (o.caFile || o.certFile)) {
    throw usageError('TLS files were given (--etcd-cafile/--etcd-certfile/--etcd-keyfile) but the endpoints are http://; use https:// endpoints for TLS');
  }
  const options: IOptions = {
    hosts,
    dialTimeout: o.callTimeoutMs ?? 5000,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + (o.callTimeoutMs ?? 5000) }),
    // Retries and backoff are the lease manager's and the watcher's; etcd3's own circuit breaker would hide outages.
    // etcd3 calls .next() on this factory whenever it (re)starts a backoff sequence; its typing says IBackoff.
    faultHandling: { host: () => noop, global: noop, watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 5000 }) as unknown as IBackoff<unknown> },
    // One list of 65,536 leases is 11.6 MB, past grpc-js's 4 MiB default answer; paged range reads (issue 13) bound each answer.
    grpcOptions: { 'grpc.max_receive_message_length': 64 * 1024 * 1024 },
  };
  // etcd3 types rootCertificate as a Buffer; null (no --etcd-cafile) is grpc's "the system's CAs", where an empty Buffer trusted none.
  if (tls) options.credentials = readTlsCredentials(o) as NonNullable<IOptions['credentials']>;
  if (o.username || o.password) {
    if (!o.username || !o.password) throw usageError('--etcd-username and --etcd-password go together');
    options.auth = { username: o.username, password: o.password };
  }
  return options;
}

/** What an etcd error means for the user, and what to check. */
export function explainEtcdError(err: Error, endpoints: string[]): string {
  const m = err.message;
  const at = `etcd at ${endpoints.join(',')}`;
  if (/authentication is not enabled/i.test(m)) return `${at} has authentication disabled but credentials were given (${m}); drop --etcd-username/--etcd-password or enable auth in etcd`;
  if (/authentication failed|invalid auth token|user name is empty|permission denied|PERMISSION_DENIED|UNAUTHENTICATED/i.test(m)) {
    return `${at} refused our credentials (${m}); check --etcd-username and --etcd-password and the user's role`;
  }
  if (/certificate|SSL|TLS|handshake|self.signed/i.test(m)) return `TLS with ${at} failed (${m}); check --etcd-cafile, --etcd-certfile, --etcd-keyfile and the https:// endpoints`;
  return `${at} is unreachable or failing (${m}); check --etcd-endpoints and that etcd is running`;
}

export class EtcdRegistry {
  readonly client: Etcd3;
  readonly prefix: string;

  constructor(readonly options: EtcdOptions) {
    this.prefix = options.prefix.replace(/\/+$/, '');
    this.client = new Etcd3(buildClientOptions(options));
  }

  get configKey(): string {
    return `${this.prefix}/config`;
  }

  get subnetsPrefix(): string {
    return `${this.prefix}/subnets/`;
  }

  leaseKey(key: SubnetKey): string {
    return this.subnetsPrefix + formatSubnetKey(key);
  }

  async getConfigText(): Promise<string | null> {
    return this.client.get(this.configKey).string();
  }

  /**
   * When v3 has no config, flannel users often wrote it with the v2 API
   * (`ETCDCTL_API=2 etcdctl set`), which v3 cannot see. Returns the v2 value if
   * an endpoint serves the v2 API and holds one.
   */
  async v2Config(): Promise<string | null> {
    for (const endpoint of this.options.endpoints) {
      const url = `${endpoint.replace(/\/+$/, '')}/v2/keys${this.configKey}`;
      // A hint only: an endpoint that does not answer the v2 API simply has no v2 config to point at.
      const body = await httpGet(url, this.options).catch(() => null);
      if (!body) continue;
      try {
        const parsed = JSON.parse(body) as { node?: { value?: string } };
        if (typeof parsed.node?.value === 'string') return parsed.node.value;
      } catch {
        // Not the v2 API's answer: no hint from this endpoint.
      }
    }
    return null;
  }

  decode(kv: IKeyValue): Lease | MalformedLease {
    const key = kv.key.toString();
    const name = key.slice(this.subnetsPrefix.length);
    const sk = parseSubnetKey(name);
    if (!sk || !sk.subnet) return { key, reason: `key is not a subnet (want e.g. ${this.subnetsPrefix}10.244.3.0-24)` };
    try {
      const attrs = parseLeaseAttrs(kv.value.toString());
      const publicIP = IPAddr.v4(attrs.PublicIP, 'PublicIP');
      return { name, subnet: sk.subnet, subnetV6: sk.subnetV6, attrs, publicIP, leaseId: String(kv.lease ?? '0'), modRevision: String(kv.mod_revision) };
    } catch (err) {
      if (isWeftError(err)) return { key, reason: `value is not a lease: ${err.message}`, subnet: sk.subnet };
      throw err;
    }
  }

  async listLeases(): Promise<LeaseList> {
    const res = await this.client.getAll().prefix(this.subnetsPrefix).exec();
    const leases: Lease[] = [];
    const malformed: MalformedLease[] = [];
    for (const kv of res.kvs) {
      const d = this.decode(kv);
      if ('reason' in d) malformed.push(d);
      else leases.push(d);
    }
    return { leases, malformed, revision: String(res.header.revision) };
  }

  /** Writes the lease only if the key does not exist (flannel's create transaction). */
  async createLease(key: SubnetKey, attrs: LeaseAttrs, ttlSec: number): Promise<CreateResult> {
    const k = this.leaseKey(key);
    const grant = await this.client.leaseClient.leaseGrant({ TTL: ttlSec });
    const expiresAt = Date.now() + Number(grant.TTL) * 1000;
    const res = await this.client.if(k, 'Version', '==', 0).then(this.client.put(k).value(encodeLeaseAttrs(attrs)).lease(grant.ID)).commit();
    if (!res.succeeded) {
      await this.revoke(grant.ID);
      return { created: false, leaseId: '0', expiresAt: null };
    }
    return { created: true, leaseId: String(grant.ID), expiresAt };
  }

  /**
   * Rewrites a lease we hold with a fresh TTL (ttlSec 0: a reservation, written
   * without an etcd lease). Only succeeds while the key still carries
   * `expectLeaseId`, so we never overwrite a subnet someone else took.
   */
  async renewLease(key: SubnetKey, attrs: LeaseAttrs, ttlSec: number, expectLeaseId: string): Promise<CreateResult> {
    const k = this.leaseKey(key);
    const value = encodeLeaseAttrs(attrs);
    if (ttlSec === 0) {
      const res = await this.client.if(k, 'Lease', '==', 0).and(k, 'Version', '>', 0).then(this.client.put(k).value(value)).commit();
      return { created: res.succeeded, leaseId: '0', expiresAt: null };
    }
    const grant = await this.client.leaseClient.leaseGrant({ TTL: ttlSec });
    const expiresAt = Date.now() + Number(grant.TTL) * 1000;
    const res = await this.client
      .if(k, 'Lease', '==', expectLeaseId)
      .and(k, 'Version', '>', 0)
      .then(this.client.put(k).value(value).lease(grant.ID))
      .commit();
    if (!res.succeeded) {
      await this.revoke(grant.ID);
      return { created: false, leaseId: '0', expiresAt: null };
    }
    // The key moved to the new lease; the old one would otherwise linger until its TTL.
    if (expectLeaseId !== '0') await this.revoke(expectLeaseId);
    return { created: true, leaseId: String(grant.ID), expiresAt };
  }

  async revoke(leaseId: string): Promise<void> {
    // Only ever a grant we no longer use: if revoking fails, it ends with its TTL and holds no key.
    await this.client.leaseClient.leaseRevoke({ ID: leaseId }).catch(() => undefined);
  }

  /** Seconds left on an etcd lease; -1 when it no longer exists. */
  async leaseTTL(leaseId: string): Promise<number> {
    if (leaseId === '0') return -1;
    const r = await this.client.leaseClient.leaseTimeToLive({ ID: leaseId, keys: false });
    return Number(r.TTL);
  }

  close(): void {
    this.client.close();
  }
}

export function httpGet(url: string, o: EtcdOptions): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const opts: https.RequestOptions = { timeout: 3000 };
    if (u.protocol === 'https:') {
      if (o.caFile) opts.ca = fs.readFileSync(o.caFile);
      if (o.certFile) opts.cert = fs.readFileSync(o.certFile);
      if (o.keyFile) opts.key = fs.readFileSync(o.keyFile);
    }
    if (o.username && o.password) opts.auth = `${o.username}:${o.password}`;
    const req = mod.get(u, opts, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 ? body : null));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}
