// A watch of one key prefix that outlives any one etcd endpoint. Each
// attempt runs on a client of its own for one endpoint, so that when that
// endpoint fails the watch moves to the next one, resuming after the last
// revision it delivered; etcd3's own watch manager would retry on its shared
// pool at a near-steady rate, and grpc-js would wait minutes for a TCP
// connect to a blackholed host. An endpoint fails the watch when:
// - the stream errors or ends (etcd stopped, the connection reset);
// - keepalive finds the connection silent (registry.ts sets it on every channel);
// - the member has no leader (the require-leader metadata makes etcd cancel
//   the watch, or refuse to create it);
// - the watch is not created within the call timeout (a connect that hangs).
// Attempts after a failure wait a jittered, doubling backoff up to 30 s,
// reset once a watch delivers a response or stays up for a while (a watch
// that is created only to be cancelled at once is no success). A watch etcd
// cancels (a compaction past our revision, which etcd 3.4 reports without a
// reason) cannot be resumed anywhere: `cancelled` tells the owner to re-list.
import { EventEmitter } from 'node:events';
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3';
import { Backoff } from '../core/backoff.js';
import { RateLimiter, type Logger } from '../core/log.js';
import { DEFAULT_CALL_TIMEOUT_MS } from './etcd-client.js';
import type { EtcdRegistry } from './registry.js';

export interface EtcdWatchEvents {
  put: [IKeyValue];
  delete: [IKeyValue];
  /** A response arrived at this store revision (events or progress). */
  revision: [string];
  /** The watch runs (true, on which endpoint) or lost its endpoint (false, and why). */
  connection: [boolean, string];
  /** etcd cancelled the watch (compacted past our revision): it has stopped; list again and start a new one. */
  cancelled: [Error];
}

/** A watch that lives this long counts as a success even if nothing happened on it. */
const STABLE_MS = 10_000;

/** A failed attempt: why, and whether etcd cancelled the watch (it cannot resume from our revision). */
class AttemptFailed extends Error {
  constructor(
    message: string,
    readonly cancelled = false,
  ) {
    super(message);
  }
}

export class EtcdWatch extends EventEmitter<EtcdWatchEvents> {
  /** The last store revision delivered; the next attempt starts after it. */
  revision = '0';
  connected = false;
  /** `host:port` of the endpoint the watch runs on, while connected. */
  endpoint: string | undefined;
  private cursor: number;
  private client: Etcd3 | undefined;
  private watcher: Watcher | undefined;
  private stopped = false;
  private running = false;
  private readonly backoff = new Backoff();
  private readonly aborter = new AbortController();
  private readonly limiter = new RateLimiter(30_000);

  constructor(
    private readonly registry: EtcdRegistry,
    private readonly prefix: string,
    private readonly log: Logger,
    random: () => number = Math.random,
  ) {
    super();
    // Agents that start together spread their watches over the endpoints.
    this.cursor = Math.floor(random() * registry.hosts.length);
  }

  /**
   * Watches from the revision after `revision`. Resolves once a watch is
   * created; rejects when every endpoint failed once (the caller retries with
   * its own backoff). Once started, it keeps itself running until stop().
   */
  async start(revision: string): Promise<void> {
    this.revision = revision;
    let last: Error | undefined;
    for (let i = 0; i < this.registry.hosts.length; i++) {
      if (this.stopped) return;
      try {
        await this.attempt();
        this.running = true;
        return;
      } catch (err) {
        last = err as Error;
        if (err instanceof AttemptFailed && err.cancelled) throw err;
      }
    }
    throw last ?? new Error('no etcd endpoint');
  }

  private nextHost(): string {
    const hosts = this.registry.hosts;
    return hosts[this.cursor++ % hosts.length];
  }

  /** One watch on one endpoint: resolves when etcd created it, rejects when it failed first. */
  private attempt(): Promise<void> {
    const host = this.nextHost();
    this.log.debug({ endpoint: host, revision: this.revision }, 'etcd watch: connecting');
    const client = (this.client = this.registry.clientFor(host));
    const next = String(BigInt(this.revision) + 1n);
    // watcher() rather than create(): the handlers are in place before the first connection attempt.
    const w = (this.watcher = client.watch().prefix(this.prefix).startRevision(next).withPreviousKV().watcher());
    const timeoutMs = this.registry.options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    return new Promise<void>((resolve, reject) => {
      let created = false;
      let stable: NodeJS.Timeout | undefined;
      const timer = setTimeout(() => fail(new AttemptFailed(`no watch created within ${timeoutMs} ms`)), timeoutMs);
      const fail = (err: AttemptFailed): void => {
        clearTimeout(timer);
        clearTimeout(stable);
        if (this.watcher !== w) return;
        this.teardown();
        if (!created) return reject(err);
        this.lost(host, err);
      };
      w.on('connected', () => {
        clearTimeout(timer);
        if (this.watcher !== w) return;
        created = true;
        stable = setTimeout(() => this.watcher === w && this.backoff.reset(), STABLE_MS);
        stable.unref();
        this.endpoint = host;
        this.setConnected(true, host);
        resolve();
      });
      w.on('data', (res: IWatchResponse) => {
        if (this.watcher !== w) return;
        this.backoff.reset();
        if (res.header?.revision) this.emit('revision', (this.revision = String(res.header.revision)));
      });
      w.on('put', (kv: IKeyValue) => {
        if (this.watcher !== w) return;
        this.revision = String(kv.mod_revision);
        this.emit('put', kv);
      });
      w.on('delete', (kv: IKeyValue) => {
        if (this.watcher !== w) return;
        this.revision = String(kv.mod_revision);
        this.emit('delete', kv);
      });
      w.on('disconnected', (err: Error) => fail(new AttemptFailed(err.message)));
      // A cancelled watch: a compaction past our revision, or etcd dropping it; it cannot resume from our revision.
      w.on('error', (err: Error) => fail(new AttemptFailed(err.message, true)));
    });
  }

  /** Drops the current attempt's watch and client; their late events are ignored (the handlers check identity). */
  private teardown(): void {
    const w = this.watcher;
    const c = this.client;
    this.watcher = undefined;
    this.client = undefined;
    this.endpoint = undefined;
    // Cancelling tells etcd we are gone where it can still hear; closing the client ends a stream that hangs.
    if (w) void w.cancel().catch(() => undefined);
    c?.close();
  }

  private setConnected(up: boolean, detail: string): void {
    if (this.connected === up) return;
    this.connected = up;
    this.emit('connection', up, detail);
  }

  /** A running watch lost its endpoint: move on, after the backoff. */
  private lost(host: string, err: AttemptFailed): void {
    this.setConnected(false, err.message);
    if (err.cancelled) {
      this.running = false;
      this.emit('cancelled', err);
      return;
    }
    if (this.limiter.allow('lost')) {
      this.log.warn({ endpoint: host, err: err.message, revision: this.revision }, 'etcd watch disconnected; resuming from the last revision when etcd is back');
    }
    void this.retry();
  }

  private async retry(): Promise<void> {
    while (!this.stopped) {
      if (!(await this.backoff.wait(this.aborter.signal))) return;
      try {
        await this.attempt();
        this.limiter.reset('lost');
        this.log.info({ endpoint: this.endpoint, revision: this.revision }, 'etcd watch resumed');
        return;
      } catch (err) {
        const e = err as AttemptFailed;
        if (e.cancelled) {
          this.running = false;
          this.emit('cancelled', e);
          return;
        }
        if (this.limiter.allow('retry')) this.log.warn({ err: e.message, revision: this.revision }, 'etcd watch: no endpoint answers yet; retrying with backoff');
      }
    }
  }

  /** Whether the watch is started and keeping itself up. */
  get active(): boolean {
    return this.running && !this.stopped;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.aborter.abort();
    const w = this.watcher;
    const c = this.client;
    this.watcher = undefined;
    this.client = undefined;
    // Cancelling tells etcd we are gone; if etcd does not answer within a second the watch dies with the client.
    if (w) await Promise.race([w.cancel().catch(() => undefined), new Promise((r) => setTimeout(r, 1000).unref())]);
    c?.close();
  }
}
