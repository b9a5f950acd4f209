// The dataplane contract: how the agent hands the kernel what the backends
// decided. Data flows one way: the local network once, then the peers. The
// agent's peer table is the one record of the peers; a dataplane reads it
// (PeerSource) when it must see them all (a full sync, a reconcile) and is
// otherwise told the differences, with the route a change replaces.
import type { DataplaneKind, LocalNetwork, PeerRoute } from '../core/model.js';

/** Route protocol number of the routes weft installs (`ip route` shows `proto 87`), so cleanup touches only its own. */
export const RTPROT_WEFT = 87;

/** The peers a dataplane must hold: the agent's peer table, read-only. */
export interface PeerSource {
  routes(): Iterable<PeerRoute>;
}

/** A PeerSource over a fixed list (tools, tests and the benchmark that program peers without an agent). */
export function fixedPeers(routes: Iterable<PeerRoute>): PeerSource & { routes(): PeerRoute[] } {
  const list = [...routes];
  return { routes: () => list };
}

export interface DataplaneStatus {
  /** Remote subnets the kernel holds (our own excluded). */
  peersInKernel: number;
  /** A dataplane with a reconcile loop (netlink): its runs since start, the entries it restored, the runs that failed. */
  reconciles?: { runs: number; repairs: number; failures: number };
  /**
   * The eBPF dataplane's fast path for flows conntrack follows: flows marked liberal since start, by how the
   * agent found them (woken by weft_ct_wake, or in its sweep of weft_ct_wanted), and marks that failed.
   */
  ctMarks?: { wake: number; sweep: number; failures: number };
}

export interface Dataplane {
  readonly kind: DataplaneKind;
  /** Creates or adopts devices, programs and maps for the local network. Idempotent across restarts. */
  start(local: LocalNetwork, peers: PeerSource): Promise<void>;
  /** Makes the kernel hold exactly the source's peers (differences only). */
  syncPeers(): Promise<void>;
  /**
   * Peers new to the dataplane, many at once, each as upsertPeer would write
   * it: the agent's first list, a slice at a time while it is applied. A
   * dataplane without it (netlink) hears of that list in its first sync.
   */
  addPeers?(routes: PeerRoute[]): Promise<void>;
  /** One peer added or changed; `previous` is the route it replaces, if any. */
  upsertPeer(route: PeerRoute, previous?: PeerRoute): Promise<void>;
  /** One peer gone (the source no longer holds it). */
  removePeer(route: PeerRoute): Promise<void>;
  status(): Promise<DataplaneStatus>;
  /** Stops the agent's side (timers, sockets) and leaves the kernel state in place for the next start. */
  stop(): Promise<void>;
  /** Removes every filter, pin, device, route and entry this dataplane created, and nothing else. */
  uninstall(): Promise<void>;
}
