// A host's lease session: our own lease (acquired, renewed, taken back when it
// disappears) and the other hosts' leases, from one watch of <prefix>/subnets/
// that starts from the list our subnet was chosen on. What leaves the session
// is only what the rest of the agent needs: peers added, changed or removed,
// and `lost` when our lease is gone for good.
//
// flannel does this in one event loop (LocalManager + CompleteLease); here
// three objects each have one job: the LeaseManager our lease, the
// LeaseWatcher the mirror of the prefix, and the session the routing between
// them (events on our key go to the manager, the rest out as peer events).
import { EventEmitter } from 'node:events';
import type { WeftError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { formatSubnetKey, type Lease } from './lease.js';
import { LeaseManager, type LeaseManagerOptions, type OwnLease } from './manager.js';
import type { RawLeaseList } from './raw-list.js';
import { LeaseWatcher, type ConfigChange, type LeaseEvent } from './watch.js';

export type PeerEvent = LeaseEvent;

export interface LeaseSessionEvents {
  peer: [PeerEvent];
  /** Our lease is gone and cannot be taken back (taken over by another host): the agent must stop. */
  lost: [WeftError];
  /** For the agent's metrics: our lease renewed, or taken back after it vanished. */
  renewed: [OwnLease];
  reacquired: [OwnLease];
  /** The watch's connection to etcd went up (true) or down. */
  connection: [boolean];
  /** <prefix>/config was written or deleted while the session ran. */
  config: [ConfigChange];
}

export type LeaseSessionOptions = LeaseManagerOptions;

export class LeaseSession extends EventEmitter<LeaseSessionEvents> {
  private readonly manager: LeaseManager;
  private readonly watcher: LeaseWatcher;
  /** The acquisition's list, until the watch starts from it (once: a retry lists afresh). */
  private acquiredList: RawLeaseList | undefined;
  /** Our key's name, made for one OwnLease object (see isOwn). */
  private ownName: { of: OwnLease; name: string } | undefined;
  private readonly log: Logger;

  constructor(o: LeaseSessionOptions) {
    super();
    this.log = o.log;
    this.manager = new LeaseManager(o);
    this.watcher = new LeaseWatcher(o.registry, o.log);
    this.manager.on('lost', (err) => this.emit('lost', err));
    this.manager.on('renewed', (l) => this.emit('renewed', l));
    this.manager.on('reacquired', (l) => this.emit('reacquired', l));
    this.watcher.on('connection', (up) => this.emit('connection', up));
    this.watcher.on('event', (e) => this.route(e));
    this.watcher.on('config', (c) => this.emit('config', c));
  }

  /** Our lease, once acquired; renewals and re-acquisitions update it. */
  get own(): OwnLease | undefined {
    return this.manager.current;
  }

  /** Whether the watch is connected to etcd (false before it starts). */
  get connected(): boolean {
    return this.watcher.connected;
  }

  /** The last etcd revision the session has seen. */
  get revision(): string {
    return this.watcher.revision;
  }

  /** Why the watch is down, while it is down after having run. */
  get watchError(): string | undefined {
    return this.watcher.lastError;
  }

  /** Takes a subnet (see LeaseManager.acquire); rejects when none is free or etcd cannot be read. */
  async acquire(): Promise<OwnLease> {
    const { own, list } = await this.manager.acquire();
    this.acquiredList = list;
    return own;
  }

  /**
   * Emits every current peer as added, then follows the prefix. The first
   * call starts from the acquisition's list (10,000 leases are not listed
   * twice); a retry after a failure lists again. Rejects when etcd cannot be read.
   */
  async watch(): Promise<void> {
    if (!this.own) throw new Error('LeaseSession.watch() before acquire()');
    const initial = this.acquiredList;
    this.acquiredList = undefined;
    await this.watcher.start(initial);
  }

  /** Our own key, by its full name: another key naming our subnet (say, dual-stack) is a stranger's lease, not ours. */
  private isOwn(lease: Lease): boolean {
    const own = this.own;
    if (!own) return false;
    // Every event asks, 65,536 of them at a start: the name is made again only when the lease object changes.
    if (this.ownName?.of !== own) this.ownName = { of: own, name: formatSubnetKey({ subnet: own.subnet, subnetV6: own.subnetV6 }) };
    return lease.name === this.ownName.name;
  }

  private route(e: LeaseEvent): void {
    if (!this.isOwn(e.lease)) {
      this.emit('peer', e);
      return;
    }
    // Our own key: its first sighting is our own write; a change or a removal is the manager's to answer.
    if (e.type === 'added') return;
    this.manager.onOwnLeaseEvent(e.type, e.type === 'changed' ? e.lease : undefined).catch((err: unknown) => {
      this.log.error({ subnet: e.lease.subnet.toString(), err: (err as Error).message }, 'handling a change of our own lease failed');
    });
  }

  async stop(): Promise<void> {
    this.manager.stop();
    await this.watcher.stop();
  }
}
