// Compares what the kernel holds with what the peers need and turns the
// difference into one batch of netlink requests. Used by syncPeers (which also
// removes weft's stale entries) and by the reconcile loop (which only restores).
import type { BatchOp, FdbSpec, NeighSpec, NetlinkHandle, Nexthop, Route, RouteSpec } from '../../native/netlink.js';
import { IPNet, parseIP } from '../../core/ipnet.js';
import { RTPROT_WEFT } from '../types.js';
import {
  describeFdb,
  describeNeigh,
  describeNexthop,
  describeRoute,
  fdbKey,
  isPeerFdb,
  neighMatches,
  nexthopMatches,
  routeKeyOf,
  routeMatches,
  type PeerEntries,
} from './entries.js';

export interface Change {
  kind: 'add' | 'change' | 'remove';
  /** For the log; worded only when read (a sync of 65,535 peers makes 262,140 changes and logs none of them). */
  readonly what: string;
}

export interface Plan {
  ops: BatchOp[];
  /** One per op, in the same order. */
  changes: Change[];
}

/** A route of weft's netlink mode: marked with weft's protocol and sent to a next hop, named or through a nexthop object (the eBPF dataplane's Network route has neither). */
export function isWeftPeerRoute(r: Route): boolean {
  return r.protocol === RTPROT_WEFT && r.table === 254 && (r.gateway !== null || r.nhid !== null);
}

/** A nexthop object of weft's netlink mode (a peer's next hop). */
export function isWeftNexthop(n: Nexthop): boolean {
  return n.protocol === RTPROT_WEFT;
}

/** The nexthop objects the kernel holds, or null when it has none (before 5.3: the dump is refused). */
export function readNexthops(nl: NetlinkHandle): Nexthop[] | null {
  try {
    return nl.nexthops();
  } catch {
    return null;
  }
}

/**
 * Requests that delete weft's routes and then weft's nexthops (of one device,
 * or all): in that order, because the kernel answers a nexthop deleted (or
 * its device deleted) under routes with a walk of the whole FIB per nexthop,
 * O(N^2) for N peers (65,535: about 30 s holding the rtnl lock).
 */
export function weftEntriesGone(routes: Route[], nexthops: Nexthop[] | null, index?: number): BatchOp[] {
  const nhs = (nexthops ?? []).filter((n) => isWeftNexthop(n) && (index === undefined || n.index === index));
  const ids = new Set(nhs.map((n) => n.id));
  const rs = routes.filter((r) => isWeftPeerRoute(r) && (index === undefined || r.index === index || (r.nhid !== null && ids.has(r.nhid))));
  return [...rs.map((r): BatchOp => ({ op: 'routeDel', arg: routeKeyOf(r) })), ...nhs.map((n): BatchOp => ({ op: 'nexthopDel', arg: { id: n.id } }))];
}

export interface PlanInput {
  entries: PeerEntries[];
  /** The kernel's routes (the caller has dumped them for the guard already). */
  routes: Route[];
  /** The overlay device whose neighbours and FDB entries are ours (vxlan), if any. */
  overlay?: number;
  /** The cluster Network: stale permanent neighbours are looked for only inside it. */
  network: string;
  /** The kernel's nexthop objects (readNexthops), null when it has none. */
  nexthops: Nexthop[] | null;
  removeStale: boolean;
  names: (index: number | undefined) => string;
}

export function plan(nl: NetlinkHandle, p: PlanInput): Plan {
  const ops: BatchOp[] = [];
  const changes: Change[] = [];
  const push = (op: BatchOp, kind: Change['kind'], what: () => string): void => {
    ops.push(op);
    changes.push({
      kind,
      get what() {
        return what();
      },
    });
  };

  // Neighbours and FDB entries first, so a route never points at an unresolved next hop.
  if (p.overlay !== undefined) {
    const wantNeigh = new Map<string, NeighSpec>();
    // One remote per MAC, as `bridge fdb replace` keeps it; the last peer with a MAC wins.
    const wantFdb = new Map<string, FdbSpec>();
    for (const e of p.entries) {
      if (e.neigh) wantNeigh.set(e.neigh.ip, e.neigh);
      if (e.fdb) wantFdb.set(e.fdb.mac, e.fdb);
    }
    const network = IPNet.parse(p.network);
    const neighs = nl.neighs(p.overlay);
    const haveNeigh = new Map(neighs.map((n) => [n.ip, n]));
    if (p.removeStale) {
      for (const n of neighs) {
        const inNetwork = (): boolean => {
          const ip = parseIP(n.ip);
          return Boolean(ip && network?.containsIP(ip.value));
        };
        if (n.state.includes('PERMANENT') && !wantNeigh.has(n.ip) && inNetwork()) {
          push({ op: 'neighDel', arg: { index: n.index, ip: n.ip } }, 'remove', () => `neighbour ${n.ip} lladdr ${n.mac} dev ${p.names(n.index)}`);
        }
      }
    }
    for (const want of wantNeigh.values()) {
      const have = haveNeigh.get(want.ip);
      if (!have || !neighMatches(have, want)) push({ op: 'neighReplace', arg: want }, have ? 'change' : 'add', () => describeNeigh(want, p.names));
    }
    const fdbs = nl.fdbs(p.overlay).filter(isPeerFdb);
    const haveFdb = new Set(fdbs.map((f) => fdbKey(f.mac, f.dst)));
    const haveMac = new Set(fdbs.map((f) => f.mac));
    if (p.removeStale) {
      for (const f of fdbs) {
        if (wantFdb.get(f.mac)?.dst !== f.dst) push({ op: 'fdbDel', arg: { index: f.index, mac: f.mac, dst: f.dst } }, 'remove', () => `fdb ${f.mac} dst ${f.dst} dev ${p.names(f.index)}`);
      }
    }
    for (const want of wantFdb.values()) {
      if (!haveFdb.has(fdbKey(want.mac, want.dst))) push({ op: 'fdbReplace', arg: want }, haveMac.has(want.mac) ? 'change' : 'add', () => describeFdb(want, p.names));
    }
  }

  // Then the next hops the routes go through ("replace" changes one in place under its route).
  const haveNh = new Map((p.nexthops ?? []).map((n) => [n.id, n]));
  const wantNh = new Set<number>();
  for (const { nexthop: want } of p.entries) {
    if (!want) continue;
    wantNh.add(want.id);
    const have = haveNh.get(want.id);
    if (!have || !nexthopMatches(have, want)) push({ op: 'nexthopReplace', arg: want }, have ? 'change' : 'add', () => describeNexthop(want, p.names));
  }

  const routes = p.routes;
  const byDst = new Map<string, Route[]>();
  for (const r of routes) {
    const same = byDst.get(r.dst);
    if (same) same.push(r);
    else byDst.set(r.dst, [r]);
  }
  const wantDst = new Set<string>();
  for (const e of p.entries) {
    const want: RouteSpec = e.route;
    wantDst.add(want.dst);
    const have = byDst.get(want.dst) ?? [];
    if (!have.some((r) => routeMatches(r, want))) push({ op: 'routeReplace', arg: want }, have.length ? 'change' : 'add', () => describeRoute(want, p.names, e.nexthop));
  }
  if (p.removeStale) {
    for (const r of routes) {
      if (isWeftPeerRoute(r) && !wantDst.has(r.dst)) {
        const via = r.nhid !== null ? ` nhid ${r.nhid}` : '';
        push({ op: 'routeDel', arg: routeKeyOf(r) }, 'remove', () => `route ${r.dst}${via} via ${r.gateway} dev ${p.names(r.index ?? undefined)}`);
      }
    }
    // Only once no route uses them (see weftEntriesGone).
    for (const n of p.nexthops ?? []) {
      if (isWeftNexthop(n) && !wantNh.has(n.id)) push({ op: 'nexthopDel', arg: { id: n.id } }, 'remove', () => `nexthop id ${n.id} via ${n.gateway} dev ${p.names(n.index ?? undefined)}${n.onlink ? ' onlink' : ''}`);
    }
  }
  return { ops, changes };
}
