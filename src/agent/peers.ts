// The one table of peers: each peer lease with the backend's decision about
// it (a route, or why it is skipped). The agent applies the session's peer
// events here and hands the dataplane the difference; the dataplane reads
// the table when it must see every peer (a full sync, a reconcile), and the
// status socket reads it too. Nothing else keeps a copy of the peers.
import type { PeerDecision, SkipReason } from '../backend/types.js';
import type { PeerRoute } from '../core/model.js';
import type { PeerSource } from '../dataplane/types.js';
import type { Lease } from '../subnet/lease.js';
import type { PeerEvent } from '../subnet/session.js';

export interface Peer {
  lease: Lease;
  /** What the dataplane programs for it; absent when skipped. */
  route?: PeerRoute;
  /** Why the backend cannot serve it. */
  skipped?: string;
  skipReason?: SkipReason;
}

/** What a lease event means for the dataplane. */
export type PeerChange =
  | { kind: 'upsert'; route: PeerRoute; previous?: PeerRoute }
  | { kind: 'remove'; route: PeerRoute }
  | { kind: 'none' };

export class PeerTable implements PeerSource {
  private readonly byName = new Map<string, Peer>();

  constructor(private readonly decide: (lease: Lease) => PeerDecision) {}

  /** Applies one event; returns the peer as it now stands (absent once removed) and the dataplane's change. */
  apply(e: PeerEvent): { peer?: Peer; change: PeerChange } {
    const before = this.byName.get(e.lease.name);
    if (e.type === 'removed') {
      this.byName.delete(e.lease.name);
      return { change: before?.route ? { kind: 'remove', route: before.route } : { kind: 'none' } };
    }
    const decision = this.decide(e.lease);
    const peer: Peer = 'skip' in decision ? { lease: e.lease, skipped: decision.skip, skipReason: decision.reason } : { lease: e.lease, route: decision };
    this.byName.set(e.lease.name, peer);
    if (peer.route) return { peer, change: { kind: 'upsert', route: peer.route, previous: before?.route } };
    return { peer, change: before?.route ? { kind: 'remove', route: before.route } : { kind: 'none' } };
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

  /** Peers in the table, those with a route, those skipped. */
  counts(): { total: number; routed: number; skipped: number } {
    let routed = 0;
    for (const p of this.byName.values()) if (p.route) routed++;
    return { total: this.byName.size, routed, skipped: this.byName.size - routed };
  }
}
