// Compares what the kernel holds with what the peers need and turns the
// difference into one batch of netlink requests. Used by syncPeers (which also
// removes weft's stale entries) and by the reconcile loop (which only restores).
import type { BatchOp, FdbSpec, NeighSpec, NetlinkHandle, Route, RouteSpec } from '../../native/netlink.js';
import { IPNet, parseIP } from '../../core/ipnet.js';
import { RTPROT_WEFT } from '../types.js';
import { describeFdb, describeNeigh, describeRoute, fdbKey, isPeerFdb, neighMatches, routeMatches, type PeerEntries } from './entries.js';

export interface Change {
  kind: 'add' | 'change' | 'remove';
  what: string;
}

export interface Plan {
  ops: BatchOp[];
  /** One per op, in the same order. */
  changes: Change[];
}

/** A route of weft's netlink mode: marked with weft's protocol and sent to a next hop (the eBPF dataplane's Network route has none). */
export function isWeftPeerRoute(r: Route): boolean {
  return r.protocol === RTPROT_WEFT && r.table === 254 && r.gateway !== null;
}

export interface PlanInput {
  entries: PeerEntries[];
  /** The overlay device whose neighbours and FDB entries are ours (vxlan), if any. */
  overlay?: number;
  /** The cluster Network: stale permanent neighbours are looked for only inside it. */
  network: string;
  removeStale: boolean;
  names: (index: number | undefined) => string;
}

export function plan(nl: NetlinkHandle, p: PlanInput): Plan {
  const ops: BatchOp[] = [];
  const changes: Change[] = [];
  const push = (op: BatchOp, kind: Change['kind'], what: string): void => {
    ops.push(op);
    changes.push({ kind, what });
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
        const ip = parseIP(n.ip);
        const inNetwork = Boolean(ip && network?.containsIP(ip.value));
        if (n.state.includes('PERMANENT') && inNetwork && !wantNeigh.has(n.ip)) {
          push({ op: 'neighDel', arg: { index: n.index, ip: n.ip } }, 'remove', `neighbour ${n.ip} lladdr ${n.mac} dev ${p.names(n.index)}`);
        }
      }
    }
    for (const want of wantNeigh.values()) {
      const have = haveNeigh.get(want.ip);
      if (!have || !neighMatches(have, want)) push({ op: 'neighReplace', arg: want }, have ? 'change' : 'add', describeNeigh(want, p.names));
    }
    const fdbs = nl.fdbs(p.overlay).filter(isPeerFdb);
    const haveFdb = new Set(fdbs.map((f) => fdbKey(f.mac, f.dst)));
    if (p.removeStale) {
      for (const f of fdbs) {
        if (wantFdb.get(f.mac)?.dst !== f.dst) push({ op: 'fdbDel', arg: { index: f.index, mac: f.mac, dst: f.dst } }, 'remove', `fdb ${f.mac} dst ${f.dst} dev ${p.names(f.index)}`);
      }
    }
    for (const want of wantFdb.values()) {
      if (!haveFdb.has(fdbKey(want.mac, want.dst))) push({ op: 'fdbReplace', arg: want }, fdbs.some((f) => f.mac === want.mac) ? 'change' : 'add', describeFdb(want, p.names));
    }
  }

  const routes = nl.routes();
  const byDst = new Map<string, Route[]>();
  for (const r of routes) byDst.set(r.dst, [...(byDst.get(r.dst) ?? []), r]);
  const wantDst = new Set<string>();
  for (const e of p.entries) {
    const want: RouteSpec = e.route;
    wantDst.add(want.dst);
    const have = byDst.get(want.dst) ?? [];
    if (!have.some((r) => routeMatches(r, want))) push({ op: 'routeReplace', arg: want }, have.length ? 'change' : 'add', describeRoute(want, p.names));
  }
  if (p.removeStale) {
    for (const r of routes) {
      if (isWeftPeerRoute(r) && !wantDst.has(r.dst)) {
        push({ op: 'routeDel', arg: { dst: r.dst, index: r.index ?? undefined, gateway: r.gateway ?? undefined } }, 'remove', `route ${r.dst} via ${r.gateway} dev ${p.names(r.index ?? undefined)}`);
      }
    }
  }
  return { ops, changes };
}
