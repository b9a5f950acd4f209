// The etcd side of subnet leasing: flannel's keys under <prefix>, read and
// written with the etcd v3 API. No policy here (that is the lease manager's);
// every call has a deadline and fails over across the endpoints (what the
// client does about failures, and why: etcd-client.ts).
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import {
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  GRPCDeadlineExceededError,
  GRPCUnauthenticatedError,
  GRPCUnavailableError,
  type IOptions,
  type IRangeRequest,
} from 'etcd3';
import { ConstantBackoff, NoopPolicy, handleWhen, noop, retry, wrap, type IPolicy } from 'cockatiel';
import { DEFAULT_CALL_TIMEOUT_MS, DEFAULT_KEEPALIVE_TIME_MS, DEFAULT_KEEPALIVE_TIMEOUT_MS, FIRST_PAGE_KEYS, MAX_LEASE_VALUE_BYTES, PAGE_BYTES, PAGE_KEYS, isEndpointFailure, requireLeader } from './etcd-client.js';
import { IPAddr, type IPNet } from '../core/ipnet.js';
import { isWeftError, usageError } from '../core/errors.js';
import { readTlsCredentials } from './etcd-tls.js';
import { decodeRangeResponse, keyBounds, leaseIdAt, pageBytes, valueBounds, type RawRangePage } from './range-decode.js';
import { RawLeaseList } from './raw-list.js';
import { encodeLeaseAttrs, formatSubnetKey, parseLeaseAttrs, parseSubnetKey, type Lease, type LeaseAttrs, type SubnetKey } from './lease.js';

export interface EtcdOptions {
  endpoints: string[];
  prefix: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  username?: string;
  password?: string;
  /** Deadline of each unary call, per endpoint tried. */
  callTimeoutMs?: number;
  /** gRPC keepalive: ping a connection with an open call after this long without a frame. */
  keepaliveTimeMs?: number;
  /** gRPC keepalive: drop the connection when a ping is not answered within this. */
  keepaliveTimeoutMs?: number;
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

/**
 * Client options for the given endpoints (all of them by default; the
 * watch asks for one at a time).
 */
export function buildClientOptions(o: EtcdOptions, only?: string[]): IOptions {
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
    // An IPv6 address keeps its brackets: gRPC read "::1:2379" as the host "::1:2379" on port 443.
    hosts.push(`${u.hostname}:${u.port || '2379'}`);
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
  const timeout = o.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  const dial = only ?? hosts;
  const options: IOptions = {
    hosts: dial,
    dialTimeout: timeout,
    grpcOptions: {
      'grpc.keepalive_time_ms': o.keepaliveTimeMs ?? DEFAULT_KEEPALIVE_TIME_MS,
      'grpc.keepalive_timeout_ms': o.keepaliveTimeoutMs ?? DEFAULT_KEEPALIVE_TIMEOUT_MS,
      'grpc.keepalive_permit_without_calls': 0,
      'grpc.max_receive_message_length': 0x7fffffff,
    },
    // Each attempt on each endpoint gets its own deadline (etcd3 resolves these per attempt).
    defaultCallOptions: (ctx) => (ctx.isStream ? { interceptors: [requireLeader] } : { deadline: Date.now() + timeout, interceptors: [requireLeader] }),
    faultHandling: {
      // No per-host breaker: an open circuit would replace etcd's own error with "circuit open" and hide outages.
      host: () => noop,
      // A call that an endpoint could not serve goes to the next endpoint at once; waiting is the caller's (its backoff).
      global: retry(handleWhen(isEndpointFailure), { maxAttempts: dial.length - 1, backoff: new ConstantBackoff(0) }),
    },
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

/** A failed etcd request in one word (the label of weft_etcd_request_errors_total): a bounded set. */
export const ETCD_ERROR_KINDS = ['unavailable', 'deadline', 'auth', 'lease', 'other'] as const;
export type EtcdErrorKind = (typeof ETCD_ERROR_KINDS)[number];

export function etcdErrorKind(err: Error): EtcdErrorKind {
  if (err instanceof GRPCUnavailableError) return 'unavailable';
  if (err instanceof GRPCDeadlineExceededError) return 'deadline';
  if (err instanceof EtcdAuthenticationFailedError || err instanceof EtcdPermissionDeniedError || err instanceof EtcdInvalidAuthTokenError || err instanceof GRPCUnauthenticatedError) return 'auth';
  if (err instanceof EtcdLeaseInvalidError) return 'lease';
  return 'other';
}

/**
 * A revision as a small integer where it is one. A page's revisions come from
 * a Float64Array, whose elements V8 reads as heap numbers: stored so, they
 * made the Lease's two fields doubles, a box each, for every lease (131,072
 * objects at 65,536 leases in a heap snapshot). `| 0` makes a small integer.
 */
function revisionNumber(r: string | number): number {
  const n = Number(r);
  return n >= 0 && n <= 0x3fffffff ? n | 0 : n;
}

export class EtcdRegistry {
  readonly client: Etcd3;
  readonly prefix: string;
  /** Every unary request passes this registry's own policy once, around the failover: its failures are the requests that failed. */
  private readonly requests = new NoopPolicy();
  /** `host:port` of each endpoint, in the order given. */
  readonly hosts: string[];
  /** The bytes of subnetsPrefix, in front of every lease key's name. */
  readonly subnetsPrefixBytes: number;

  constructor(readonly options: EtcdOptions) {
    this.prefix = options.prefix.replace(/\/+$/, '');
    this.subnetsPrefixBytes = Buffer.byteLength(this.subnetsPrefix);
    const o = buildClientOptions(options);
    this.hosts = o.hosts as string[];
    this.client = new Etcd3({ ...o, faultHandling: { ...o.faultHandling, global: wrap(this.requests, o.faultHandling!.global as IPolicy) } });
  }

  /** Calls fn with the error of every failed etcd request (not the watch stream's), e.g. for metrics. */
  onRequestError(fn: (err: Error) => void): void {
    this.requests.onFailure(({ reason }) => {
      if ('error' in reason) fn(reason.error);
    });
  }

  /** A client of its own on one endpoint (the watch's: it chooses the endpoint, not etcd3's pool). */
  clientFor(host: string): Etcd3 {
    return new Etcd3(buildClientOptions(this.options, [host]));
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
    return (await this.getConfig()).text;
  }

  /** The config's text (null when absent) and the store revision it was read at. */
  async getConfig(): Promise<{ text: string | null; revision: string }> {
    const res = await this.client.get(this.configKey).exec();
    const kv = res.kvs[0];
    return { text: kv ? kv.value.toString() : null, revision: String(res.header.revision) };
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

  decode(kv: StoredKeyValue): Lease | MalformedLease {
    return this.decodeIn(kv.key, 0, kv.key.length, kv.value, 0, kv.value.length, String(kv.lease ?? '0'), kv.mod_revision, kv.create_revision);
  }

  /** Key i of a range page, read where it lies in the page (no Buffer views, no strings a lease does not keep). */
  decodeAt(page: RawRangePage, i: number): Lease | MalformedLease {
    const [ks, ke] = keyBounds(page, i);
    const [vs, ve] = valueBounds(page, i);
    return this.decodeIn(page.buf, ks, ke, page.buf, vs, ve, leaseIdAt(page, i), page.revs[i * 2 + 1], page.revs[i * 2]);
  }

  private decodeIn(
    kbuf: Buffer,
    ks: number,
    ke: number,
    vbuf: Buffer,
    vs: number,
    ve: number,
    leaseId: string,
    modRevision: string | number,
    createRevision: string | number,
  ): Lease | MalformedLease {
    // Decoded on its own, not sliced from the key: a slice would keep the whole key alive with each lease.
    const name = kbuf.toString('utf8', ks + this.subnetsPrefixBytes, ke);
    const sk = parseSubnetKey(name);
    if (!sk || !sk.subnet) return notALease(kbuf, ks, ke, `key is not a subnet (want e.g. ${this.subnetsPrefix}10.244.3.0-24)`);
    if (ve - vs > MAX_LEASE_VALUE_BYTES) {
      // Not parsed at all: a value this size is a mistake or an attack, never a lease.
      return notALease(kbuf, ks, ke, `value is ${ve - vs} bytes, over 64 KiB (a lease is a few hundred)`, sk.subnet);
    }
    try {
      const attrs = parseLeaseAttrs(vbuf.toString('utf8', vs, ve));
      const publicIP = IPAddr.v4(attrs.PublicIP, 'PublicIP');
      return {
        name,
        subnet: sk.subnet,
        subnetV6: sk.subnetV6,
        attrs,
        publicIP,
        leaseId,
        modRevision: revisionNumber(modRevision),
        createRevision: revisionNumber(createRevision),
      };
    } catch (err) {
      if (isWeftError(err)) return notALease(kbuf, ks, ke, `value is not a lease: ${err.message}`, sk.subnet);
      throw err;
    }
  }

  async listLeases(): Promise<LeaseList> {
    return (await this.listRaw()).decode();
  }

  /**
   * Every key under the subnets prefix, read but not yet decoded: each use
   * decodes what it needs (raw-list.ts). `splits` (key names, see keySplits)
   * cut the read into pieces read at once.
   */
  async listRaw(splits: string[] = []): Promise<RawLeaseList> {
    const list = new RawLeaseList(this.subnetsPrefixBytes, (page, i) => this.decodeAt(page, i));
    list.revision = await this.rangePaged(this.subnetsPrefix, (page) => list.add(page), splits.map((n) => Buffer.from(this.subnetsPrefix + n)));
    return list;
  }

  /**
   * Reads every key under `prefix` in pages (limit + continue after the last
   * key), all at the revision of the first page, so the whole list is one
   * snapshot however large the keyspace. The first page is small; each next
   * one holds as many keys as fit in PAGE_BYTES at the size per key seen so
   * far (a megabyte value makes it one key, flannel's leases 10,000). The
   * next page is asked for before `each` sees this one, so etcd serves it
   * while the caller reads this one.
   *
   * `splits` cut the range into pieces, each paged the same way, all read at
   * once once the first page has fixed the revision: etcd serves one while
   * the agent takes in another (LIST_PARTS). `each` still sees the pages in
   * key order. Returns the revision read at.
   */
  async rangePaged(prefix: string, each: (page: RawRangePage) => void, splits: Buffer[] = []): Promise<string> {
    const start = Buffer.from(prefix);
    const end = prefixEnd(start);
    const cuts = splits.filter((c) => Buffer.compare(c, start) > 0 && Buffer.compare(c, end) < 0).sort(Buffer.compare);
    const from = [start, ...cuts.filter((c, i) => i === 0 || !c.equals(cuts[i - 1]))];
    const to = [...from.slice(1), end];
    // Pages of a piece wait here until every piece before it is handed over.
    const held: RawRangePage[][] = from.map(() => []);
    const finished = from.map(() => false);
    let handing = 0;
    const hand = (): void => {
      while (handing < from.length) {
        for (const page of held[handing].splice(0)) each(page);
        if (!finished[handing]) return;
        handing++;
      }
    };
    let revision = 0;
    let keys = 0;
    let bytes = 0;
    const limit = (): number => Math.max(1, Math.min(PAGE_KEYS, Math.floor((PAGE_BYTES * keys) / Math.max(1, bytes))));
    let failed = false;
    const piece = async (i: number, first?: RawRangePage): Promise<void> => {
      let page = first ?? (await this.rangePage({ key: from[i], range_end: to[i], limit: limit(), revision }));
      for (;;) {
        bytes += pageBytes(page);
        keys += page.count;
        let next: Promise<RawRangePage> | null = null;
        if (page.more && page.count > 0 && !failed) {
          const [ks, ke] = keyBounds(page, page.count - 1);
          next = this.rangePage({ key: Buffer.concat([page.buf.subarray(ks, ke), Buffer.from([0])]), range_end: to[i], limit: limit(), revision });
          // Awaited below, which rethrows; until then a failure must not count as unhandled.
          next.catch(() => undefined);
        }
        if (page.count > 0) held[i].push(page);
        hand();
        if (!next) break;
        page = await next;
      }
      finished[i] = true;
      hand();
    };
    const first = await this.rangePage({ key: from[0], range_end: to[0], limit: FIRST_PAGE_KEYS, revision: 0 });
    revision = first.revision;
    await Promise.all(
      from.map((_, i) =>
        piece(i, i === 0 ? first : undefined).catch((err: unknown) => {
          failed = true;
          throw err;
        }),
      ),
    );
    return String(revision);
  }

  /** One Range call through etcd3's pool (its endpoints, failover, deadline and auth), its answer decoded by range-decode.ts. */
  private rangePage(req: IRangeRequest): Promise<RawRangePage> {
    const pool = (this.client as unknown as { pool: EtcdPool }).pool;
    if (!rawRangeInstalled) {
      const kv = pool.hosts[0]?.getServiceClient('KV');
      if (kv) installRawRange(kv);
    }
    return pool.exec('KV', RAW_RANGE, req) as Promise<RawRangePage>;
  }

  /** Writes the lease only if the key does not exist (flannel's create transaction). */
  async createLease(key: SubnetKey, attrs: LeaseAttrs, ttlSec: number): Promise<CreateResult> {
    const k = this.leaseKey(key);
    const grant = await this.client.leaseClient.leaseGrant({ TTL: ttlSec });
    const expiresAt = Date.now() + Number(grant.TTL) * 1000;
    const res = await this.client.if(k, 'Version', '==', 0).then(this.client.put(k).value(encodeLeaseAttrs(attrs)).lease(grant.ID)).commit();
    // A failover retry after a timeout may find our own first attempt applied: that is success, not a lost race.
    if (!res.succeeded && !(await this.carries(k, grant.ID))) {
      await this.revoke(grant.ID);
      return { created: false, leaseId: '0', expiresAt: null };
    }
    return { created: true, leaseId: String(grant.ID), expiresAt };
  }

  /** Whether the key is attached to this etcd lease now. */
  private async carries(key: string, leaseId: string): Promise<boolean> {
    const res = await this.client.get(key).exec();
    return res.kvs.length > 0 && String(res.kvs[0].lease) === String(leaseId);
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
    if (!res.succeeded && !(await this.carries(k, grant.ID))) {
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

/** A key that is not a lease, named in full (only such a key's full name is ever made: a lease keeps its last element). */
function notALease(kbuf: Buffer, ks: number, ke: number, reason: string, subnet?: IPNet): MalformedLease {
  const key = kbuf.toString('utf8', ks, ke);
  return subnet ? { key, reason, subnet } : { key, reason };
}

/** A key as both etcd3 (a watch's events) and range-decode.ts (a range page) give it. */
export interface StoredKeyValue {
  key: Buffer;
  value: Buffer;
  lease?: string | number;
  mod_revision: string | number;
  create_revision: string | number;
}

/** The parts of etcd3's connection pool rangePage() uses (etcd3 does not export its type). */
interface EtcdPool {
  hosts: { getServiceClient(name: string): object }[];
  exec(service: string, method: string, payload: unknown): Promise<unknown>;
}

/** A grpc-js client as @grpc/grpc-js's makeClientConstructor builds it: the service's methods are on the class. */
interface GrpcServiceClient {
  makeUnaryRequest(path: string, serialize: (v: unknown) => Buffer, deserialize: (b: Buffer) => unknown, arg: unknown, ...rest: unknown[]): unknown;
}

/** The name of the KV method rangePage() adds beside etcd3's `range`. */
const RAW_RANGE = 'weftRawRange';
let rawRangeInstalled = false;

/**
 * Adds KV.weftRawRange to the class of etcd3's KV clients: Range with
 * etcd3's own request serializer and range-decode.ts for the answer, so
 * the pool's exec() runs it like any other call.
 */
function installRawRange(kvClient: object): void {
  const proto = Object.getPrototypeOf(kvClient) as Record<string, unknown> & { constructor: { service: Record<string, { path: string; requestSerialize: (v: unknown) => Buffer }> } };
  const def = proto.constructor.service.Range;
  proto[RAW_RANGE] = function (this: GrpcServiceClient, arg: unknown, ...rest: unknown[]): unknown {
    return this.makeUnaryRequest(def.path, def.requestSerialize, decodeRangeResponse, arg, ...rest);
  };
  rawRangeInstalled = true;
}

/** The end of the key range holding every key that starts with `prefix`. */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
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
