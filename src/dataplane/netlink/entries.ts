// What the kernel must hold for one peer, in flannel's shapes (FLANNEL.md,
// "What each backend programs"), and how that is compared with what the
// kernel holds. Pure: no handle, no I/O, so it can be checked without a kernel.
//
// A peer's next hop (flannel's `via <gw> dev <dev> [onlink]`) lives in a
// nexthop object and the route names it (`nhid`): the kernel hashes a classic
// route's fib_info by device, protocol and metric but not by gateway, so N
// peer routes through one device all land in one hash chain and inserting
// them costs O(N^2) (65,535 peers: over 2 minutes of kernel time, all in
// fib_find_info); a route through a nexthop hashes by the nexthop's id.
// Packets take the same path either way (same gateway, device, onlink).
import type { Fdb, FdbSpec, Neigh, NeighSpec, Nexthop, NexthopSpec, Route, RouteKey, RouteSpec } from '../../native/netlink.js';
import { RTPROT_WEFT } from '../types.js';
import type { PeerRoute } from '../../core/model.js';
import type { IPNet } from '../../core/ipnet.js';

/** Device indexes the entries point at; they change when a device is recreated. */
export interface Devices {
  /** flannel.<VNI> or flannel.ipip; absent for host-gw. */
  overlay?: number;
  underlay: number;
}

export interface PeerEntries {
  /** Through `nexthop` when there is one (`dst nhid <id>`), else flannel's `dst via <gw> dev <dev> [onlink]`. */
  route: RouteSpec;
  /** The next hop as an object of its own: `id <nexthopId> via <gw> dev <dev> [onlink] proto weft`. */
  nexthop?: NexthopSpec;
  /** vxlan peers: `<peer>.0 lladdr <VtepMAC> nud permanent` on the overlay device. */
  neigh?: NeighSpec;
  /** vxlan peers: `<VtepMAC> dst <PublicIP> self permanent` on the overlay device. */
  fdb?: FdbSpec;
}

/**
 * The id of a peer's nexthop object: its subnet's address (10.244.3.0/24 is
 * 0x0af40300), so every agent, restart and resync names the same peer's next
 * hop alike without keeping a table; subnets of one Network never share an
 * address. Null where no id fits (not IPv4, or 0.0.0.0).
 */
export function nexthopId(subnet: IPNet): number | null {
  if (subnet.family !== 4 || subnet.network === 0n) return null;
  return Number(subnet.network);
}

/**
 * Which nexthop ids the dataplane may use: none where the kernel has no
 * nexthop objects (before 5.3), and never one someone else's nexthop holds
 * (another protocol's); such a peer gets flannel's classic route instead.
 */
export interface NexthopUse {
  usable(id: number): boolean;
}

/** Nexthop ids in use by others (any protocol but weft's), and whether the kernel has nexthops at all. */
export function nexthopUse(have: Nexthop[] | null): NexthopUse {
  if (have === null) return { usable: () => false };
  const foreign = new Set(have.filter((n) => n.protocol !== RTPROT_WEFT).map((n) => n.id));
  return { usable: (id) => !foreign.has(id) };
}

type Hop = Required<Pick<RouteSpec, 'gateway' | 'index'>> & { onlink?: boolean };

function routeThrough(p: PeerRoute, hop: Hop, nh: NexthopUse): Pick<PeerEntries, 'route' | 'nexthop'> {
  const dst = p.subnet.toString();
  const id = nexthopId(p.subnet);
  if (id === null || !nh.usable(id)) return { route: { dst, ...hop, protocol: RTPROT_WEFT } };
  return { route: { dst, nhid: id, protocol: RTPROT_WEFT }, nexthop: { id, ...hop, protocol: RTPROT_WEFT } };
}

export function peerEntries(p: PeerRoute, dev: Devices, nh: NexthopUse): PeerEntries {
  const direct = p.encap === 'direct';
  if (direct) {
    // host-gw, and DirectRouting peers of vxlan and ipip: the peer's PublicIP is the next hop on the underlay.
    return routeThrough(p, { gateway: p.publicIP.toString(), index: dev.underlay }, nh);
  }
  if (dev.overlay === undefined) throw new Error(`peer ${p.subnet}: encap ${p.encap} needs an overlay device`);
  if (p.encap === 'vxlan') {
    if (!p.vtepMAC) throw new Error(`peer ${p.subnet}: vxlan without a VtepMAC`);
    // `<peer subnet>.0`, the address flannel routes a tunnelled peer's subnet through.
    const gw = p.subnet.hostAt(0n);
    return {
      ...routeThrough(p, { gateway: gw, index: dev.overlay, onlink: true }, nh),
      neigh: { index: dev.overlay, ip: gw, mac: p.vtepMAC, permanent: true },
      fdb: { index: dev.overlay, mac: p.vtepMAC, dst: p.publicIP.toString() },
    };
  }
  if (p.encap === 'ipip') {
    return routeThrough(p, { gateway: p.publicIP.toString(), index: dev.overlay, onlink: true }, nh);
  }
  throw new Error(`peer ${p.subnet}: the netlink dataplane has no kernel mechanism for encap ${p.encap}`);
}

export function routeMatches(have: Route, want: RouteSpec): boolean {
  const same = have.dst === want.dst && have.table === 254 && have.protocol === (want.protocol ?? RTPROT_WEFT);
  if (want.nhid !== undefined) return same && have.nhid === want.nhid;
  return (
    same &&
    have.nhid === null &&
    have.gateway === (want.gateway ?? null) &&
    have.index === (want.index ?? null) &&
    have.onlink === (want.onlink ?? false)
  );
}

export function nexthopMatches(have: Nexthop, want: NexthopSpec): boolean {
  return (
    have.id === want.id &&
    have.gateway === (want.gateway ?? null) &&
    have.index === want.index &&
    have.onlink === (want.onlink ?? false) &&
    have.protocol === (want.protocol ?? RTPROT_WEFT)
  );
}

/** How to delete a route the kernel reported: by its nexthop id, or by gateway and device (the kernel refuses a gateway for a route through a nexthop). */
export function routeKeyOf(r: Route): RouteKey {
  if (r.nhid !== null) return { dst: r.dst, nhid: r.nhid };
  return { dst: r.dst, index: r.index ?? undefined, gateway: r.gateway ?? undefined };
}

/** The delete request for a route weft asked for. */
export function routeKeyOfSpec(r: RouteSpec): RouteKey {
  return r.nhid !== undefined ? { dst: r.dst, nhid: r.nhid } : { dst: r.dst, index: r.index, gateway: r.gateway };
}

export function neighMatches(have: Neigh, want: NeighSpec): boolean {
  return have.index === want.index && have.ip === want.ip && have.mac === want.mac && have.state.includes('PERMANENT');
}

export const fdbKey = (mac: string, dst: string): string => `${mac} ${dst}`;

/** An FDB entry weft would have made: a permanent unicast remote, not the all-zeros default. */
export function isPeerFdb(f: Fdb): f is Fdb & { dst: string } {
  return f.dst !== null && f.permanent && f.self && f.mac !== '00:00:00:00:00:00';
}

/** A route as flannel would print it: through its nexthop's gateway and device when it has one. */
export function describeRoute(r: RouteSpec, names: (index: number | undefined) => string, nexthop?: NexthopSpec): string {
  const hop = nexthop ?? r;
  return `route ${r.dst} via ${hop.gateway} dev ${names(hop.index)}${hop.onlink ? ' onlink' : ''}`;
}

export function describeNexthop(n: NexthopSpec, names: (index: number | undefined) => string): string {
  return `nexthop id ${n.id} via ${n.gateway} dev ${names(n.index)}${n.onlink ? ' onlink' : ''}`;
}

export function describeNeigh(n: NeighSpec, names: (index: number | undefined) => string): string {
  return `neighbour ${n.ip} lladdr ${n.mac} dev ${names(n.index)}`;
}

export function describeFdb(f: FdbSpec, names: (index: number | undefined) => string): string {
  return `fdb ${f.mac} dst ${f.dst} dev ${names(f.index)}`;
}
