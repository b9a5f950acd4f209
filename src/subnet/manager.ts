// Our own subnet lease: acquire (flannel's order, without its bugs), renew
// before expiry, and take it back when it disappears. The lease session
// (session.ts) owns one and tells it what the watch saw of our key.
//
// Acquisition order: (1) a lease or reservation whose PublicIP is ours and that
// fits the config; (2) the subnet of the previous subnet.env, if free; (3) a
// random pick among the first 100 free subnets. A lost create race retries
// with a fresh list (flannel exits there). Reservations (keys without an etcd
// lease) are never handed to anyone else and never expire.
import { EventEmitter } from 'node:events';
import { fitsRange, freeSubnets, freeSubnets4Of, keySplits, overlaps4, pickRandom } from './allocator.js';
import { isReservation, sameAttrs, type Lease, type LeaseAttrs, type SubnetKey } from './lease.js';
import type { IPNet } from '../core/ipnet.js';
import { Backoff } from '../core/backoff.js';
import { WeftError, messageOf } from '../core/errors.js';
import type { EtcdRegistry } from './registry.js';
import { LIST_PARALLEL_SUBNETS, LIST_PARTS } from './etcd-client.js';
import type { RawLeaseList } from './raw-list.js';
import type { NetworkConfig } from '../config/network.js';
import type { Logger } from '../core/log.js';

export const DEFAULT_LEASE_TTL_SEC = 24 * 3600;
const MAX_ATTEMPTS = 25;

export interface OwnLease {
  subnet: IPNet;
  subnetV6?: IPNet;
  leaseId: string;
  /** ms since epoch; null for a reservation. */
  expiresAt: number | null;
  reservation: boolean;
}


export interface LeaseManagerOptions {
  registry: EtcdRegistry;
  config: NetworkConfig;
  /** What we publish: PublicIP, backend type and data. */
  attrs: LeaseAttrs;
  ttlSec?: number;
  renewMarginMin: number;
  /** The subnet(s) of the previous subnet.env, tried second. */
  previous?: { subnet?: IPNet; subnetV6?: IPNet };
  /** Retry interval for a failed renewal (flannel: one minute). */
  renewRetryMs?: number;
  log: Logger;
  random?: () => number;
}

export interface LeaseManagerEvents {
  renewed: [OwnLease];
  reacquired: [OwnLease];
  /** The lease is gone and cannot be taken back: the agent must stop. */
  lost: [WeftError];
}

function keyOf(l: { subnet: IPNet; subnetV6?: IPNet }): SubnetKey {
  return { subnet: l.subnet, subnetV6: l.subnetV6 };
}

/** What an acquisition took, and the lease list it decided on (a watch can start from it instead of listing again). */
export interface Acquired {
  own: OwnLease;
  list: RawLeaseList;
}

export class LeaseManager extends EventEmitter<LeaseManagerEvents> {
  current: OwnLease | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private reacquiring = false;
  private readonly ttlSec: number;

  constructor(private readonly o: LeaseManagerOptions) {
    super();
    this.ttlSec = o.ttlSec ?? DEFAULT_LEASE_TTL_SEC;
  }

  private get log(): Logger {
    return this.o.log;
  }

  private fits(l: { subnet?: IPNet; subnetV6?: IPNet }): boolean {
    const { ipv4, ipv6 } = this.o.config;
    if (!l.subnet || !fitsRange(l.subnet, ipv4)) return false;
    if (ipv6) return Boolean(l.subnetV6 && fitsRange(l.subnetV6, ipv6));
    return !l.subnetV6;
  }

  /**
   * Takes a subnet; rejects with a WeftError when none is free, or with
   * etcd's error when etcd cannot be reached.
   */
  async acquire(): Promise<Acquired> {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const list = await this.o.registry.listRaw(keySplits(this.o.config.ipv4, LIST_PARTS, LIST_PARALLEL_SUBNETS));
      const own = await this.tryAcquire(list);
      if (own) {
        this.current = own;
        this.scheduleRenew();
        return { own, list };
      }
      // Someone wrote between our list and our transaction: list again.
      await new Promise((r) => setTimeout(r, Math.floor((this.o.random ?? Math.random)() * 20 * attempt)));
    }
    throw new WeftError(`could not acquire a subnet after ${MAX_ATTEMPTS} attempts: other hosts kept taking the subnets we chose`);
  }

  /** Decides from the keys, and from only those values that could be our own lease's (raw-list.ts). */
  private async tryAcquire(list: RawLeaseList): Promise<OwnLease | null> {
    const { registry, attrs, config } = this.o;
    const mine = list.mayHavePublicIP(attrs.PublicIP).find((l) => l.attrs.PublicIP === attrs.PublicIP && this.fits(l));
    if (mine) return this.claim(mine);

    const { v4: taken4, v6: taken6 } = list.subnets();
    const isFree6 = (n: IPNet | undefined): boolean => !n || !taken6.some((t) => t.overlaps(n));

    const prev = this.o.previous;
    if (prev?.subnet && this.fits(prev) && !overlaps4(taken4, prev.subnet) && isFree6(prev.subnetV6)) {
      const r = await registry.createLease(keyOf(prev as { subnet: IPNet }), attrs, this.ttlSec);
      if (r.created) {
        this.log.info({ subnet: prev.subnet.toString() }, 'acquired the subnet of the previous subnet.env');
        return { subnet: prev.subnet, subnetV6: prev.subnetV6, leaseId: r.leaseId, expiresAt: r.expiresAt, reservation: false };
      }
      return null;
    }

    const subnet = pickRandom(freeSubnets4Of(config.ipv4, taken4), this.o.random);
    const subnetV6 = config.ipv6 ? pickRandom(freeSubnets(config.ipv6, taken6), this.o.random) : undefined;
    if (!subnet || (config.ipv6 && !subnetV6)) {
      const r = config.ipv4;
      throw new WeftError(
        `out of subnets: every /${r.subnetLen} from ${r.subnetMin.ip} to ${r.subnetMax.ip} in ${r.network} is leased or reserved ` +
          `(${list.size} keys under ${registry.subnetsPrefix}); widen Network or SubnetMin/SubnetMax, or delete stale leases under ${registry.subnetsPrefix}`,
        'config',
        { field: 'Network' },
      );
    }
    const r = await registry.createLease({ subnet, subnetV6 }, attrs, this.ttlSec);
    if (!r.created) {
      this.log.debug({ subnet: subnet.toString() }, 'another host took the subnet first; retrying');
      return null;
    }
    this.log.info({ subnet: subnet.toString() }, 'acquired a new subnet');
    return { subnet, subnetV6, leaseId: r.leaseId, expiresAt: r.expiresAt, reservation: false };
  }

  /** Our own lease or reservation from an earlier run: take it over with our current attributes. */
  private async claim(l: Lease): Promise<OwnLease | null> {
    const reservation = isReservation(l);
    const r = await this.o.registry.renewLease(keyOf(l), this.o.attrs, reservation ? 0 : this.ttlSec, l.leaseId);
    if (!r.created) return null;
    this.log.info({ subnet: l.subnet.toString(), reservation }, reservation ? 'taking the subnet reserved for our PublicIP' : 'reclaimed our existing lease');
    return { subnet: l.subnet, subnetV6: l.subnetV6, leaseId: r.leaseId, expiresAt: r.expiresAt, reservation };
  }

  private scheduleRenew(delayMs?: number): void {
    clearTimeout(this.timer);
    const cur = this.current;
    if (this.stopped || !cur || cur.reservation || cur.expiresAt === null) return;
    const at = cur.expiresAt - this.o.renewMarginMin * 60_000;
    const ms = Math.max(0, delayMs ?? at - Date.now());
    // setTimeout cannot wait longer than ~24.8 days; leases are far shorter.
    this.timer = setTimeout(() => void this.renew(), ms);
    this.timer.unref();
  }

  private async renew(): Promise<void> {
    const cur = this.current;
    if (this.stopped || !cur) return;
    try {
      const r = await this.o.registry.renewLease(keyOf(cur), this.o.attrs, this.ttlSec, cur.leaseId);
      if (!r.created) {
        this.log.warn({ subnet: cur.subnet.toString() }, 'our lease changed or vanished before renewal');
        await this.reacquire();
        return;
      }
      this.current = { ...cur, leaseId: r.leaseId, expiresAt: r.expiresAt };
      this.log.info({ subnet: cur.subnet.toString(), expiresAt: new Date(r.expiresAt!).toISOString() }, 'renewed our lease');
      this.emit('renewed', this.current);
      this.scheduleRenew();
    } catch (err) {
      const retry = this.o.renewRetryMs ?? 60_000;
      this.log.error({ err: messageOf(err), retryInMs: retry }, 'renewing our lease failed; will retry');
      this.scheduleRenew(retry);
    }
  }

  /**
   * The watch saw our key change. A delete (revoked, deleted by hand, expired
   * during an outage) is taken back when the subnet is still free; a
   * rewrite by another host is fatal.
   */
  async onOwnLeaseEvent(event: 'removed' | 'changed', lease?: Lease): Promise<void> {
    const cur = this.current;
    if (!cur || this.stopped) return;
    if (event === 'changed' && lease) {
      if (lease.attrs.PublicIP === this.o.attrs.PublicIP) {
        // Our own renewal, or someone edited our value: put ours back if it differs.
        if (!sameAttrs(lease.attrs, this.o.attrs) && lease.leaseId === cur.leaseId) {
          this.log.warn({ subnet: cur.subnet.toString() }, 'our lease value was edited by someone else; rewriting it');
          await this.o.registry.renewLease(keyOf(cur), this.o.attrs, cur.reservation ? 0 : this.ttlSec, cur.leaseId).then(
            (r) => {
              if (!r.created) this.log.warn({ subnet: cur.subnet.toString() }, 'could not rewrite our edited lease: it changed again meanwhile; the watch will tell what it is now');
            },
            (err: unknown) => this.log.error({ subnet: cur.subnet.toString(), err: messageOf(err) }, 'could not rewrite our edited lease; the next renewal writes it'),
          );
        }
        return;
      }
      this.fail(`our subnet ${cur.subnet} was taken over by ${lease.attrs.PublicIP}; stopping so that two hosts do not route the same subnet`);
      return;
    }
    await this.reacquire();
  }

  private async reacquire(): Promise<void> {
    const cur = this.current;
    if (!cur || this.reacquiring || this.stopped) return;
    this.reacquiring = true;
    try {
      const backoff = new Backoff({ initialMs: 100 });
      while (!this.stopped) {
        try {
          const r = await this.o.registry.createLease(keyOf(cur), this.o.attrs, this.ttlSec);
          if (r.created) {
            this.current = { ...cur, leaseId: r.leaseId, expiresAt: r.expiresAt, reservation: false };
            this.log.warn({ subnet: cur.subnet.toString() }, 'our lease had disappeared (revoked, deleted or expired); re-acquired the same subnet');
            this.emit('reacquired', this.current);
            this.scheduleRenew();
            return;
          }
          const list = await this.o.registry.listLeases();
          const holder = list.leases.find((l) => l.subnet.equals(cur.subnet));
          if (holder && holder.attrs.PublicIP === this.o.attrs.PublicIP) return; // it is back (our own write raced the watch)
          const junk = holder ? undefined : list.malformed.find((m) => m.subnet?.equals(cur.subnet));
          const now = holder ? `${holder.attrs.PublicIP} holds it now` : junk ? `its key was overwritten with something that is not a lease (${junk.reason})` : 'it cannot be re-created';
          this.fail(`our lease on ${cur.subnet} disappeared and ${now}`);
          return;
        } catch (err) {
          this.log.warn({ err: messageOf(err) }, 're-acquiring our lease failed; retrying');
          await new Promise((r) => setTimeout(r, backoff.next()));
        }
      }
    } finally {
      this.reacquiring = false;
    }
  }

  private fail(message: string): void {
    this.stop();
    this.emit('lost', new WeftError(message));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
