// The one table of peers: each peer lease with the decision about it (a
// route, or why it is skipped). The agent applies the session's peer events
// here and hands the dataplane the difference; the dataplane reads the table
// when it must see every peer (a full sync, a reconcile), and the status
// socket reads it too. Nothing else keeps a copy of the peers.
//
// A lease is decided in three steps: the lease policy (lease-policy.ts: is it
// sane at all), then the subnet's holder (two live leases for one subnet: the
// first created keeps it, the newcomer is refused until the first goes), then
// the backend (can it serve this peer).
import type { PeerDecision, SkipReason } from '../backend/types.js';
import type { IPNet } from '../core/ipnet.js';
import type { PeerRoute } from '../core/model.js';
import type { PeerSource } from '../dataplane/types.js';
import type { Lease } from '../subnet/lease.js';
import type { PeerEvent } from '../subnet/session.js';

export interface Peer {
  lease: Lease;
  /** What the dataplane programs for it; absent when skipped. */
  route?: PeerRoute;
  /** Why it is not programmed. */
  skipped?: string;
  /** Why, in one word (weft_peers' reason label). */
  skipReason?: SkipReason;
  /** Skipped because the lease itself is refused (policy or a subnet held by another), not because the backend cannot serve it. */
  refused?: boolean;
}

/** What a lease event means for the dataplane. */
export type PeerChange =
  | { kind: 'upsert'; route: PeerRoute; previous?: PeerRoute }
  | { kind: 'remove'; route: PeerRoute }
  | { kind: 'none' };

/** The policy the table holds every lease to (LeasePolicy); null: sane. */
export interface LeaseCheck {
  check(lease: Lease): string | null;
}

/** What one event did: each peer whose decision it touched (as it now stands; absent once removed), and the dataplane's changes. */
export interface Applied {
  peers: Peer[];
  changes: PeerChange[];
}

/** Older first: the lease created first holds a subnet two leases claim. */
function older(a: Lease, b: Lease): boolean {
  const ra = a.createRevision;
  const rb = b.createRevision;
  return ra !== rb ? ra < rb : a.name < b.name;
}

/**
 * A subnet's key in the table. An IPv4 subnet of /24 or wider is a small
 * integer (network / 256 * 32 + length, under 2^29), which V8 keeps in the
 * map's slot itself; a number past 2^31 would be a heap object for each of
 * 65,536 keys, and a string a rope each, kept for the table's life. Others
 * (longer IPv4 prefixes, IPv6) are strings, which no number equals.
 */
function subnetKey(s: IPNet): number | string {
  if (s.family === 4 && s.prefixLen <= 24) return (s.network4 / 256) * 32 + s.prefixLen;
  return s.toString();
}

export class PeerTable implements PeerSource {
  private readonly byName = new Map<string, Peer>();
  /**
   * The lease names claiming each subnet: one name, or a set when two or more
   * do (rare: a Set for each of 65,536 subnets was 16 MB). Leases that pass
   * the policy all have the SubnetLen, so two of them overlap only when their
   * subnets are equal.
   */
  private readonly bySubnet = new Map<number | string, string | Set<string>>();

  constructor(
    private readonly decide: (lease: Lease) => PeerDecision,
    private readonly policy: LeaseCheck = { check: () => null },
  ) {}

  private claimants(key: number | string): Iterable<string> {
    const c = this.bySubnet.get(key);
    return c === undefined ? [] : typeof c === 'string' ? [c] : c;
  }

  private claim(key: number | string, name: string): void {
    const c = this.bySubnet.get(key);
    if (c === undefined) this.bySubnet.set(key, name);
    else if (typeof c === 'string') {
      if (c !== name) this.bySubnet.set(key, new Set([c, name]));
    } else c.add(name);
  }

  private unclaim(key: number | string, name: string): void {
    const c = this.bySubnet.get(key);
    if (c === undefined) return;
    if (typeof c === 'string') {
      if (c === name) this.bySubnet.delete(key);
      return;
    }
    c.delete(name);
    if (c.size === 1) this.bySubnet.set(key, c.values().next().value as string);
  }

  /** Applies one event and re-decides the leases that share its subnet. */
  apply(e: PeerEvent): Applied {
    const name = e.lease.name;
    const key = subnetKey(e.lease.subnet);
    const claimed = this.bySubnet.get(key);
    if (claimed === undefined || claimed === name) return this.applySole(e, key, claimed === name);
    const before: Array<[string, PeerRoute | undefined]> = [];
    for (const n of this.claimants(key)) before.push([n, this.byName.get(n)?.route]);
    if (!before.some(([n]) => n === name)) before.push([name, this.byName.get(name)?.route]);

    if (e.type === 'removed') {
      this.byName.delete(name);
      this.unclaim(key, name);
    } else {
      // The route stays until the new lease is decided, so that an unchanged route is recognised as unchanged.
      this.byName.set(name, { lease: e.lease, route: this.byName.get(name)?.route });
      this.claim(key, name);
    }
    this.decideSubnet(key, e.lease.subnet);

    const out: Applied = { peers: [], changes: [] };
    for (const [n, was] of before) {
      const peer = this.byName.get(n);
      const now = peer?.route;
      if (peer && (n === name || was !== now)) out.peers.push(peer);
      // A removal is listed first, so that the dataplane never holds two routes for one subnet.
      if (was && !now) out.changes.unshift({ kind: 'remove', route: was });
      else if (now && now !== was) out.changes.push({ kind: 'upsert', route: now, previous: was });
    }
    return out;
  }

  /**
   * apply() for a subnet that no other lease claims, before or after: every
   * lease of a sane cluster, and all 65,536 of a start. The same decisions
   * as decideSubnet's for one claimant, without its lists.
   */
  private applySole(e: PeerEvent, key: number | string, wasClaimed: boolean): Applied {
    const name = e.lease.name;
    const was = this.byName.get(name)?.route;
    if (e.type === 'removed') {
      this.byName.delete(name);
      if (wasClaimed) this.bySubnet.delete(key);
      return { peers: [], changes: was ? [{ kind: 'remove', route: was }] : [] };
    }
    if (!wasClaimed) this.bySubnet.set(key, name);
    const peer = this.decideHolder(e.lease, was);
    this.byName.set(name, peer);
    const now = peer.route;
    if (now && now !== was) return { peers: [peer], changes: [{ kind: 'upsert', route: now, previous: was }] };
    return { peers: [peer], changes: was && !now ? [{ kind: 'remove', route: was }] : [] };
  }

  /** The peer for a lease that holds its subnet (or would, were it sane): the policy, then the backend; `was` is its route until now. */
  private decideHolder(lease: Lease, was: PeerRoute | undefined): Peer {
    const reason = this.policy.check(lease);
    if (reason) return { lease, skipped: reason, skipReason: 'lease_refused', refused: true };
    return this.routeFor(lease, was);
  }

  /** The backend's decision for a sane lease that holds its subnet. */
  private routeFor(lease: Lease, was: PeerRoute | undefined): Peer {
    const decision = this.decide(lease);
    if ('skip' in decision) return { lease, skipped: decision.skip, skipReason: decision.reason };
    // Keep the same route object when nothing changed, so that callers can tell "no change" by identity.
    return { lease, route: was && sameRoute(was, decision) ? was : decision };
  }

  /** Decides every lease of one subnet: the policy, then who holds it, then the backend. */
  private decideSubnet(key: number | string, subnet: IPNet): void {
    const names = [...this.claimants(key)];
    const sane: Peer[] = [];
    for (const n of names) {
      const peer = this.byName.get(n)!;
      const reason = this.policy.check(peer.lease);
      if (reason) this.byName.set(n, { lease: peer.lease, skipped: reason, skipReason: 'lease_refused', refused: true });
      else sane.push(peer);
    }
    if (sane.length === 0) return;
    const holder = sane.length === 1 ? sane[0] : sane.reduce((a, b) => (older(b.lease, a.lease) ? b : a));
    for (const p of sane) {
      if (p === holder) {
        this.byName.set(p.lease.name, this.routeFor(p.lease, this.byName.get(p.lease.name)!.route));
        continue;
      }
      const h = holder.lease;
      this.byName.set(p.lease.name, {
        lease: p.lease,
        refused: true,
        skipReason: 'subnet_held',
        skipped: `subnet ${subnet} is held by ${h.attrs.PublicIP} (key ${h.name}, written first, at revision ${h.createRevision}); this newer lease for it is refused while that one lives`,
      });
    }
  }

  *routes(): IterableIterator<PeerRoute> {
    for (const p of this.byName.values()) if (p.route) yield p.route;
  }

  values(): IterableIterator<Peer> {
    return this.byName.values();
  }

  get size(): number {
    return this.byName.size;
  }

  /** Peers in the table, those with a route, those skipped (refused ones among them). */
  counts(): { total: number; routed: number; skipped: number; refused: number } {
    let routed = 0;
    let refused = 0;
    for (const p of this.byName.values()) {
      if (p.route) routed++;
      else if (p.refused) refused++;
    }
    return { total: this.byName.size, routed, skipped: this.byName.size - routed, refused };
  }
}

function sameRoute(a: PeerRoute, b: PeerRoute): boolean {
  return (
    a.subnet.equals(b.subnet) &&
    a.publicIP.equals(b.publicIP) &&
    a.encap === b.encap &&
    a.directRouting === b.directRouting &&
    a.vni === b.vni &&
    a.vtepMAC === b.vtepMAC
  );
}
