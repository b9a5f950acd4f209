// The agent's view of every lease under <prefix>/subnets/: a full list, then a
// watch from the next revision. etcd3 resumes a disconnected watch from the
// last revision it saw; when etcd has compacted past it, the watch is
// cancelled and we re-list and emit only the difference (flannel's hot loop
// on compaction, #2470, is what this avoids). Malformed keys or values written
// by someone else are skipped with a warning naming the key.
import { EventEmitter } from 'node:events';
import type { IKeyValue } from 'etcd3';
import type { Watcher } from 'etcd3';
import { sameAttrs, type Lease } from './lease.js';
import type { EtcdRegistry, LeaseList, MalformedLease } from './registry.js';
import { RateLimiter, type Logger } from '../core/log.js';

export type LeaseEvent =
  | { type: 'added'; lease: Lease }
  | { type: 'changed'; lease: Lease; previous: Lease }
  | { type: 'removed'; lease: Lease };

export interface LeaseWatcherEvents {
  event: [LeaseEvent];
  /** etcd connection state as the watch sees it. */
  connection: [boolean];
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;

export class LeaseWatcher extends EventEmitter<LeaseWatcherEvents> {
  readonly view = new Map<string, Lease>();
  /** Last revision reflected in the view. */
  revision = '0';
  connected = false;
  private watcher: Watcher | undefined;
  /** A watch created but not yet connected (the first attempt, or after a re-list). */
  private connecting: Watcher | undefined;
  private stopped = false;
  private relisting = false;
  private backoffMs = BACKOFF_MIN_MS;
  private readonly warned = new Set<string>();
  private readonly limiter = new RateLimiter(30_000);

  constructor(
    private readonly registry: EtcdRegistry,
    private readonly log: Logger,
  ) {
    super();
  }

  /**
   * Lists the leases (or takes a list just read, e.g. the lease manager's),
   * emits them as added, and starts watching after the list's revision.
   * Rejects when etcd cannot be read.
   */
  async start(initial?: LeaseList): Promise<void> {
    const list = initial ?? (await this.registry.listLeases());
    this.apply(list.leases, list.malformed);
    this.revision = list.revision;
    this.setConnected(true);
    await this.watchFrom(list.revision);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const ws = [this.watcher, this.connecting];
    this.watcher = this.connecting = undefined;
    // A watch still connecting must be cancelled too: etcd3 retries a watcher it holds forever, even after
    // the client is closed (its timers kept a stopped agent's process alive). A failed cancel of a
    // connected one only means etcd learns we are gone when the connection closes.
    for (const w of ws) if (w) await w.cancel().catch(() => undefined);
  }

  private setConnected(up: boolean): void {
    if (this.connected === up) return;
    this.connected = up;
    this.emit('connection', up);
  }

  private async watchFrom(revision: string): Promise<void> {
    const next = String(BigInt(revision) + 1n);
    // watcher() rather than create(): the handlers are in place before the first
    // connection attempt, so an etcd lost while the watch is being set up is logged too.
    const w = this.registry.client.watch().prefix(this.registry.subnetsPrefix).startRevision(next).withPreviousKV().watcher();
    w.on('put', (kv: IKeyValue) => this.onPut(kv));
    w.on('delete', (kv: IKeyValue) => this.onDelete(kv));
    w.on('data', (res) => {
      if (res.header?.revision) this.revision = String(res.header.revision);
      this.backoffMs = BACKOFF_MIN_MS;
    });
    w.on('disconnected', (err: Error) => {
      this.setConnected(false);
      if (this.limiter.allow('disconnected')) {
        this.log.warn({ err: err.message, revision: this.revision }, 'etcd watch disconnected; resuming from the last revision when etcd is back');
      }
    });
    w.on('connected', () => {
      if (!this.connected) this.log.info({ revision: this.revision }, 'etcd watch reconnected');
      this.limiter.reset('disconnected');
      this.setConnected(true);
    });
    this.connecting = w;
    w.on('error', (err: Error) => {
      // A cancelled watch (compaction, or etcd dropping it) cannot resume: re-list.
      if (this.watcher !== w) return;
      this.watcher = undefined;
      this.log.warn({ err: err.message, revision: this.revision }, 'etcd watch cancelled; re-listing leases');
      void this.relist();
    });
    try {
      await new Promise<void>((resolve, reject) => {
        w.once('connected', () => resolve());
        w.once('error', reject);
      });
    } finally {
      if (this.connecting === w) this.connecting = undefined;
    }
    if (this.stopped) {
      // Stopped while connecting: the same as stop() (a failed cancel leaves nothing behind once the client closes).
      await w.cancel().catch(() => undefined);
      return;
    }
    this.watcher = w;
  }

  private async relist(): Promise<void> {
    if (this.relisting || this.stopped) return;
    this.relisting = true;
    try {
      for (;;) {
        if (this.stopped) return;
        try {
          const list = await this.registry.listLeases();
          this.apply(list.leases, list.malformed, true);
          this.revision = list.revision;
          this.setConnected(true);
          await this.watchFrom(list.revision);
          this.backoffMs = BACKOFF_MIN_MS;
          return;
        } catch (err) {
          this.setConnected(false);
          if (this.limiter.allow('relist')) this.log.warn({ err: (err as Error).message }, 'cannot re-list leases from etcd; retrying');
          await new Promise((r) => setTimeout(r, this.backoffMs));
          this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
        }
      }
    } finally {
      this.relisting = false;
    }
  }

  /** Replaces the view with a full list, emitting only what differs. */
  private apply(leases: Lease[], malformed: MalformedLease[], isRelist = false): void {
    for (const m of malformed) this.warnMalformed(m.key, m.reason, 'list');
    const seen = new Set<string>();
    for (const lease of leases) {
      seen.add(lease.name);
      this.upsert(lease);
    }
    for (const [name, lease] of [...this.view]) {
      if (!seen.has(name)) {
        this.view.delete(name);
        this.emit('event', { type: 'removed', lease });
      }
    }
    if (isRelist) this.log.info({ leases: this.view.size, revision: this.revision }, 'lease view re-synchronised');
  }

  private upsert(lease: Lease): void {
    const previous = this.view.get(lease.name);
    this.view.set(lease.name, lease);
    if (!previous) this.emit('event', { type: 'added', lease });
    else if (!sameAttrs(previous.attrs, lease.attrs) || previous.leaseId !== lease.leaseId) {
      this.emit('event', { type: 'changed', lease, previous });
    }
  }

  private onPut(kv: IKeyValue): void {
    this.revision = String(kv.mod_revision);
    const d = this.registry.decode(kv);
    if ('reason' in d) {
      this.warnMalformed(d.key, d.reason, String(kv.mod_revision));
      // A lease overwritten with garbage no longer tells us how to reach its host.
      const name = d.key.slice(this.registry.subnetsPrefix.length);
      const old = this.view.get(name);
      if (old) {
        this.view.delete(name);
        this.emit('event', { type: 'removed', lease: old });
      }
      return;
    }
    this.upsert(d);
  }

  private onDelete(kv: IKeyValue): void {
    this.revision = String(kv.mod_revision);
    const name = kv.key.toString().slice(this.registry.subnetsPrefix.length);
    const old = this.view.get(name);
    if (!old) return;
    this.view.delete(name);
    this.emit('event', { type: 'removed', lease: old });
  }

  private warnMalformed(key: string, reason: string, revision: string): void {
    const id = `${key}@${revision}`;
    if (this.warned.has(id)) return;
    this.warned.add(id);
    this.log.warn({ key, reason }, 'skipping malformed lease written by someone else');
  }
}
