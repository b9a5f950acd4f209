// The agent's view of every lease under <prefix>/subnets/: a full list, then a
// watch from the next revision. The watch (etcd-watch.ts) covers the whole
// <prefix>/, so a change of <prefix>/config arrives on the same stream; it
// moves between endpoints by itself and resumes from the last revision it
// saw. When etcd has compacted past it, we re-list and emit only the
// difference (flannel's hot loop on compaction, #2470, is what this avoids).
// Malformed keys or values written by someone else are skipped with a
// warning naming the key.
import { EventEmitter } from 'node:events';
import type { IKeyValue } from 'etcd3';
import { sameAttrs, type Lease } from './lease.js';
import type { EtcdRegistry, LeaseList, MalformedLease } from './registry.js';
import { RawLeaseList } from './raw-list.js';
import { EtcdWatch } from './etcd-watch.js';
import { Backoff } from '../core/backoff.js';
import { RateLimiter, type Logger } from '../core/log.js';

/** Leases decoded and emitted per turn of the event loop while a list is applied (about 20 ms of the agent's work). */
const APPLY_SLICE = 2000;

/** A list's keys in slices of APPLY_SLICE: a list read raw is decoded a slice at a time, as each is applied. */
function* slicesOf(list: LeaseList | RawLeaseList): Generator<Array<Lease | MalformedLease>> {
  if (list instanceof RawLeaseList) {
    for (let s = list.take(APPLY_SLICE); s.length > 0; s = list.take(APPLY_SLICE)) yield s;
    return;
  }
  if (list.malformed.length > 0) yield list.malformed;
  for (let i = 0; i < list.leases.length; i += APPLY_SLICE) yield list.leases.slice(i, i + APPLY_SLICE);
}

export type LeaseEvent =
  | { type: 'added'; lease: Lease }
  | { type: 'changed'; lease: Lease; previous: Lease }
  | { type: 'removed'; lease: Lease };

/** The network config as the watch saw it change: its text, or null when deleted. */
export interface ConfigChange {
  text: string | null;
  revision: string;
}

export interface LeaseWatcherEvents {
  event: [LeaseEvent];
  /** etcd connection state as the watch sees it. */
  connection: [boolean];
  config: [ConfigChange];
}

export class LeaseWatcher extends EventEmitter<LeaseWatcherEvents> {
  readonly view = new Map<string, Lease>();
  /** Last revision reflected in the view. */
  revision = '0';
  connected = false;
  /** Why the watch is down, while it is. */
  lastError: string | undefined;
  private watch: EtcdWatch | undefined;
  private stopped = false;
  private relisting = false;
  private readonly backoff = new Backoff();
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
  async start(initial?: LeaseList | RawLeaseList): Promise<void> {
    const list = initial ?? (await this.registry.listLeases());
    await this.apply(list);
    if (this.stopped) return;
    this.revision = list.revision;
    await this.watchFrom(list.revision);
    this.setConnected(true);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.watch?.stop();
  }

  /** The endpoint the watch runs on, while it runs. */
  get endpoint(): string | undefined {
    return this.watch?.endpoint;
  }

  private setConnected(up: boolean): void {
    if (up) this.lastError = undefined;
    if (this.connected === up) return;
    this.connected = up;
    this.emit('connection', up);
  }

  private async watchFrom(revision: string): Promise<void> {
    const w = new EtcdWatch(this.registry, `${this.registry.prefix}/`, this.log);
    w.on('put', (kv) => this.onPut(kv));
    w.on('delete', (kv) => this.onDelete(kv));
    w.on('revision', (rev) => (this.revision = rev));
    w.on('connection', (up, detail) => {
      if (!up) this.lastError = detail;
      this.setConnected(up);
    });
    w.on('cancelled', (err) => {
      if (this.watch !== w) return;
      this.watch = undefined;
      this.log.warn({ err: err.message, revision: this.revision }, 'etcd watch cancelled; re-listing leases');
      void this.relist();
    });
    this.watch = w;
    try {
      await w.start(revision);
    } catch (err) {
      this.watch = undefined;
      await w.stop();
      throw err;
    }
    if (this.stopped) await w.stop();
  }

  private async relist(): Promise<void> {
    if (this.relisting || this.stopped) return;
    this.relisting = true;
    try {
      for (;;) {
        if (this.stopped) return;
        try {
          const list = await this.registry.listLeases();
          await this.apply(list, true);
          if (this.stopped) return;
          this.revision = list.revision;
          await this.watchFrom(list.revision);
          this.setConnected(true);
          this.backoff.reset();
          return;
        } catch (err) {
          this.lastError = (err as Error).message;
          this.setConnected(false);
          if (this.limiter.allow('relist')) this.log.warn({ err: (err as Error).message }, 'cannot re-list leases from etcd; retrying');
          await this.backoff.wait();
        }
      }
    } finally {
      this.relisting = false;
    }
  }

  /**
   * Replaces the view with a full list, emitting only what differs. The list
   * is decoded (when read raw) and emitted in slices, each on its own turn of
   * the event loop: 65,536 leases are 1 s of decoding and listeners' work,
   * and what waits on other threads meanwhile (the kernel verifying the eBPF
   * programs at a start) goes on between slices. No watch runs while a list
   * is applied, so no event comes between them.
   */
  private async apply(list: LeaseList | RawLeaseList, isRelist = false): Promise<void> {
    // A first list has nothing to compare with: no set of 65,536 names at a start.
    const seen = this.view.size > 0 ? new Set<string>() : null;
    let first = true;
    for (const slice of slicesOf(list)) {
      if (!first) {
        await new Promise((r) => setImmediate(r));
        if (this.stopped) return;
      }
      first = false;
      for (const d of slice) {
        if ('reason' in d) {
          this.warnMalformed(d.key, d.reason, 'list');
          continue;
        }
        seen?.add(d.name);
        this.upsert(d);
      }
    }
    // Only the gone are copied out (a copy of the whole view was 65,536 pairs of garbage at every start).
    const gone: Lease[] = [];
    if (seen) for (const [name, lease] of this.view) if (!seen.has(name)) gone.push(lease);
    for (const lease of gone) {
      this.view.delete(lease.name);
      this.emit('event', { type: 'removed', lease });
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
    const key = kv.key.toString();
    if (key === this.registry.configKey) {
      this.emit('config', { text: kv.value.toString(), revision: this.revision });
      return;
    }
    if (!key.startsWith(this.registry.subnetsPrefix)) return;
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
    const key = kv.key.toString();
    if (key === this.registry.configKey) {
      this.emit('config', { text: null, revision: this.revision });
      return;
    }
    if (!key.startsWith(this.registry.subnetsPrefix)) return;
    const name = key.slice(this.registry.subnetsPrefix.length);
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
