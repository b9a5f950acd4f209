// What the kernel must hold for one peer, in flannel's shapes (FLANNEL.md,
// "What each backend programs"), and how that is compared with what the
// kernel holds. Pure: no handle, no I/O, so it can be checked without a kernel.
import type { Fdb, FdbSpec, Neigh, NeighSpec, Route, RouteSpec } from '../../native/netlink.js';
import { RTPROT_WEFT } from '../types.js';
import type { PeerRoute } from '../../core/model.js';

/** Device indexes the entries point at; they change when a device is recreated. */
export interface Devices {
  /** flannel.<VNI> or flannel.ipip; absent for host-gw. */
  overlay?: number;
  underlay: number;
}

export interface PeerEntries {
  route: RouteSpec;
  /** vxlan peers: `<peer>.0 lladdr <VtepMAC> nud permanent` on the overlay device. */
  neigh?: NeighSpec;
  /** vxlan peers: `<VtepMAC> dst <PublicIP> self permanent` on the overlay device. */
  fdb?: FdbSpec;
}

export function peerEntries(p: PeerRoute, dev: Devices): PeerEntries {
  const dst = p.subnet.toString();
  const direct = p.encap === 'direct';
  if (direct) {
    // host-gw, and DirectRouting peers of vxlan and ipip: the peer's PublicIP is the next hop on the underlay.
    return { route: { dst, gateway: p.publicIP.toString(), index: dev.underlay, protocol: RTPROT_WEFT } };
  }
  if (dev.overlay === undefined) throw new Error(`peer ${p.subnet}: encap ${p.encap} needs an overlay device`);
  if (p.encap === 'vxlan') {
    if (!p.vtepMAC) throw new Error(`peer ${p.subnet}: vxlan without a VtepMAC`);
    // `<peer subnet>.0`, the address flannel routes a tunnelled peer's subnet through.
    const gw = p.subnet.hostAt(0n);
    return {
      route: { dst, gateway: gw, index: dev.overlay, onlink: true, protocol: RTPROT_WEFT },
      neigh: { index: dev.overlay, ip: gw, mac: p.vtepMAC, permanent: true },
      fdb: { index: dev.overlay, mac: p.vtepMAC, dst: p.publicIP.toString() },
    };
  }
  if (p.encap === 'ipip') {
    return { route: { dst, gateway: p.publicIP.toString(), index: dev.overlay, onlink: true, protocol: RTPROT_WEFT } };
  }
  throw new Error(`peer ${p.subnet}: the netlink dataplane has no kernel mechanism for encap ${p.encap}`);
}

export function routeMatches(have: Route, want: RouteSpec): boolean {
  return (
    have.dst === want.dst &&
    have.table === 254 &&
    have.nhid === null &&
    have.gateway === (want.gateway ?? null) &&
    have.index === (want.index ?? null) &&
    have.onlink === (want.onlink ?? false) &&
    have.protocol === (want.protocol ?? RTPROT_WEFT)
  );
}

export function neighMatches(have: Neigh, want: NeighSpec): boolean {
  return have.index === want.index && have.ip === want.ip && have.mac === want.mac && have.state.includes('PERMANENT');
}

export const fdbKey = (mac: string, dst: string): string => `${mac} ${dst}`;

/** An FDB entry weft would have made: a permanent unicast remote, not the all-zeros default. */
export function isPeerFdb(f: Fdb): f is Fdb & { dst: string } {
  return f.dst !== null && f.permanent && f.self && f.mac !== '00:00:00:00:00:00';
}

export function describeRoute(r: RouteSpec, names: (index: number | undefined) => string): string {
  return `route ${r.dst} via ${r.gateway} dev ${names(r.index)}${r.onlink ? ' onlink' : ''}`;
}

export function describeNeigh(n: NeighSpec, names: (index: number | undefined) => string): string {
  return `neighbour ${n.ip} lladdr ${n.mac} dev ${names(n.index)}`;
}

export function describeFdb(f: FdbSpec, names: (index: number | undefined) => string): string {
  return `fdb ${f.mac} dst ${f.dst} dev ${names(f.index)}`;
}
