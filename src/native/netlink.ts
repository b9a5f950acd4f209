// Typed wrapper over the addon's rtnetlink half (native/src/netlink*.cc, on
// libnl-route-3). A NetlinkHandle is one route socket bound to the network
// namespace it was opened in; every call is synchronous, and every failure is
// a NetlinkError naming the call, the object and the errno, e.g.
// "rtnl_route_add(10.244.3.0/24 via 10.244.3.0 dev flannel.1): ENETUNREACH
// (Network is unreachable): Nexthop has invalid gateway".
import { addon, withNetns } from './addon.js';

export interface VxlanInfo {
  vni: number;
  local: string | null;
  /** Underlay ifindex (`dev`), null when unset. */
  link: number | null;
  port: number;
  learning: boolean;
  gbp: boolean;
  /** collect_md: the VNI and remote come from each packet's tunnel key. */
  external: boolean;
}

export interface Link {
  index: number;
  name: string;
  /** IFLA_INFO_KIND: 'vxlan', 'veth', 'bridge', …; null for devices without one (lo, physical). */
  kind: string | null;
  mtu: number;
  mac: string | null;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** IFF_RUNNING: operstate UP, or UNKNOWN as vxlan devices report when up. */
  operUp: boolean;
  noarp: boolean;
  master: number | null;
  /** IFLA_LINK_NETNSID: set when the device's other end (a veth's peer) is in another network namespace. */
  linkNetnsid: number | null;
  vxlan?: VxlanInfo;
}

export interface Address {
  index: number;
  address: string;
  prefixLen: number;
}

export interface Route {
  /** '0.0.0.0/0' for the default route. */
  dst: string;
  gateway: string | null;
  index: number | null;
  src: string | null;
  onlink: boolean;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  /** The route's MTU metric, null when unset. */
  mtu: number | null;
  /** The nexthop object the route uses (RTA_NH_ID); gateway and index then describe that nexthop. */
  nhid: number | null;
}

/** A kernel nexthop object (`ip nexthop`), IPv4 only. */
export interface Nexthop {
  id: number;
  gateway: string | null;
  index: number | null;
  onlink: boolean;
  protocol: number;
}

export interface Neigh {
  index: number;
  ip: string;
  mac: string | null;
  /** NUD states as `ip -j neigh` spells them: 'PERMANENT', 'REACHABLE', 'STALE', … */
  state: string[];
}

export interface Fdb {
  index: number;
  mac: string;
  /** The remote VTEP (NDA_DST) of a vxlan entry. */
  dst: string | null;
  self: boolean;
  permanent: boolean;
}

export interface VxlanOptions {
  name: string;
  vni: number;
  local?: string;
  /** Underlay ifindex. */
  link?: number;
  port: number;
  learning: boolean;
  gbp?: boolean;
  /** collect_md; vni may then be 0. */
  external?: boolean;
  mtu?: number;
  mac?: string;
}

export interface LinkChanges {
  up?: boolean;
  mtu?: number;
  mac?: string;
  noarp?: boolean;
  /** BIG TCP for IPv4 (Linux 6.3+): the largest aggregate the stack builds for / assembles on this device; above 65536 only where the device's tsoMaxSize allows. */
  gsoIpv4MaxSize?: number;
  groIpv4MaxSize?: number;
}

/** A device's aggregate size limits as the kernel reports them (0: not reported by this kernel). */
export interface LinkSizes {
  gsoMaxSize: number;
  groMaxSize: number;
  /** The most the device (its driver) accepts as gsoMaxSize / gsoIpv4MaxSize. */
  tsoMaxSize: number;
  gsoIpv4MaxSize: number;
  groIpv4MaxSize: number;
}

/**
 * A route via gateway + index (as flannel installs them), or via a nexthop
 * object (nhid, without gateway and index). Per-peer routes through distinct
 * gateways on one device take O(N^2) kernel time to insert (the kernel hashes
 * them by device); routes through nexthop objects take O(N).
 */
export interface RouteSpec {
  dst: string;
  gateway?: string;
  index?: number;
  nhid?: number;
  onlink?: boolean;
  src?: string;
  mtu?: number;
  /** rtm_protocol; RTPROT_BOOT (3) by default, as `ip route` uses. */
  protocol?: number;
  /** Main (254) by default. */
  table?: number;
}

export interface RouteKey {
  dst: string;
  index?: number;
  gateway?: string;
  table?: number;
  nhid?: number;
}

export interface NexthopSpec {
  /** >= 1. */
  id: number;
  gateway?: string;
  index: number;
  onlink?: boolean;
  /** RTPROT_BOOT (3) by default. */
  protocol?: number;
}

export interface NeighSpec {
  index: number;
  ip: string;
  /** Required unless managed. */
  mac?: string;
  /** NUD_PERMANENT, else the entry starts REACHABLE and ages. */
  permanent?: boolean;
  /** `ip neigh replace IP dev X managed`: the kernel resolves the entry and keeps it resolved (no mac). */
  managed?: boolean;
}

export interface NeighKey {
  index: number;
  ip: string;
}

export interface FdbSpec {
  index: number;
  mac: string;
  dst: string;
}

export interface FdbKey {
  index: number;
  mac: string;
  /**
   * Delete only this remote; without it the whole entry goes. The kernel
   * acks a dst that matches none of the entry's remotes as a success and
   * deletes nothing, so with dst, true only says the MAC has an entry.
   */
  dst?: string;
}

/**
 * A change seen by monitor(). `own` marks changes made through the handle
 * that started the monitor. A deleted nexthop takes its routes with it
 * without a route event for each. 'overflow' means the kernel dropped
 * notifications: only a full resync is safe after it.
 */
export type NetlinkEvent =
  | { kind: 'link' | 'addr'; action: 'new' | 'del'; index: number | null; own: boolean }
  | { kind: 'route'; action: 'new' | 'del'; index: number | null; own: boolean; table: number }
  | { kind: 'nexthop'; action: 'new' | 'del'; index: null; own: boolean }
  | { kind: 'neigh'; action: 'new' | 'del'; index: number | null; own: boolean; fdb: boolean }
  | { kind: 'overflow' };

export interface Monitor {
  /** Stops watching; the monitor no longer keeps the process alive. */
  close(): void;
}

export type BatchOp =
  | { op: 'routeReplace'; arg: RouteSpec }
  | { op: 'routeDel'; arg: RouteKey }
  | { op: 'nexthopReplace'; arg: NexthopSpec }
  | { op: 'nexthopDel'; arg: { id: number } }
  | { op: 'neighReplace'; arg: NeighSpec }
  | { op: 'neighDel'; arg: NeighKey }
  | { op: 'fdbReplace'; arg: FdbSpec }
  | { op: 'fdbDel'; arg: FdbKey };

/** true: applied; false: a delete found nothing to delete; an error: the kernel refused this one. */
export type BatchResult = boolean | NetlinkError;

export interface NetlinkError extends Error {
  /** 'ENETUNREACH', 'EEXIST', … */
  code: string;
  errno: number;
  /** The libnl call, e.g. 'rtnl_route_add'. */
  syscall: string;
  /** The kernel's extended-ack text, when it gave one. */
  extack?: string;
}

export function isNetlinkError(e: unknown): e is NetlinkError {
  return e instanceof Error && typeof (e as Partial<NetlinkError>).errno === 'number' && typeof (e as Partial<NetlinkError>).code === 'string';
}

/** The native class's shape; only this module sees it. */
interface RawHandle {
  close(): void;
  links(): Link[];
  link(nameOrIndex: string | number): Link | null;
  linkAddVxlan(o: VxlanOptions): Link;
  linkAddVeth(name: string, peer: string, o?: { mtu?: number }): void;
  linkSet(index: number, o: LinkChanges): void;
  linkSizes(index: number): LinkSizes | null;
  linkDel(index: number): void;
  addrs(index?: number): Address[];
  addrAdd(index: number, cidr: string): void;
  addrDel(index: number, cidr: string): void;
  routes(o?: { table?: number }): Route[];
  routeReplace(r: RouteSpec): void;
  routeDel(r: RouteKey): boolean;
  nexthops(): Nexthop[];
  nexthopReplace(n: NexthopSpec): void;
  nexthopDel(id: number): boolean;
  neighs(index?: number): Neigh[];
  neighReplace(n: NeighSpec): void;
  neighDel(n: NeighKey): boolean;
  fdbs(index?: number): Fdb[];
  fdbReplace(f: FdbSpec): void;
  fdbDel(f: FdbKey): boolean;
  batch(ops: BatchOp[]): BatchResult[];
  monitor(cb: (e: NetlinkEvent) => void): Monitor;
}

export class NetlinkHandle {
  private constructor(private readonly raw: RawHandle) {}

  /** A route socket in the calling thread's current namespace. */
  static open(): NetlinkHandle {
    const ctor = addon().netlink.Handle as new () => RawHandle;
    return new NetlinkHandle(new ctor());
  }

  /** A route socket in the namespace at nsPath (e.g. /run/netns/NAME); it stays there. */
  static openIn(nsPath: string): NetlinkHandle {
    return withNetns(nsPath, () => NetlinkHandle.open());
  }

  close(): void {
    this.raw.close();
  }

  links(): Link[] {
    return this.raw.links();
  }

  /** null when there is no such device. */
  link(nameOrIndex: string | number): Link | null {
    return this.raw.link(nameOrIndex);
  }

  /** Creates a vxlan device (fails with EEXIST if the name is taken) and returns it as read back. */
  linkAddVxlan(o: VxlanOptions): Link {
    return this.raw.linkAddVxlan(o);
  }

  linkAddVeth(name: string, peer: string, o?: { mtu?: number }): void {
    this.raw.linkAddVeth(name, peer, o ?? {});
  }

  linkSet(index: number, o: LinkChanges): void {
    this.raw.linkSet(index, o);
  }

  /** null when there is no such device. */
  linkSizes(index: number): LinkSizes | null {
    return this.raw.linkSizes(index);
  }

  linkDel(index: number): void {
    this.raw.linkDel(index);
  }

  /** IPv4 addresses, of one device or all. */
  addrs(index?: number): Address[] {
    return index === undefined ? this.raw.addrs() : this.raw.addrs(index);
  }

  /** Adds "10.244.1.0/32" to a device; an address already there is not an error. */
  addrAdd(index: number, cidr: string): void {
    this.raw.addrAdd(index, cidr);
  }

  addrDel(index: number, cidr: string): void {
    this.raw.addrDel(index, cidr);
  }

  /** IPv4 routes of one table, main (254) by default. */
  routes(o?: { table?: number }): Route[] {
    return this.raw.routes(o ?? {});
  }

  /** `ip route replace`: creates the route or overwrites the one with the same dst, table and metric. */
  routeReplace(r: RouteSpec): void {
    this.raw.routeReplace(r);
  }

  /** false when no such route exists. */
  routeDel(r: RouteKey): boolean {
    return this.raw.routeDel(r);
  }

  /** IPv4 nexthop objects (groups are not listed). */
  nexthops(): Nexthop[] {
    return this.raw.nexthops();
  }

  /** `ip nexthop replace id ID via GW dev X [onlink]`. */
  nexthopReplace(n: NexthopSpec): void {
    this.raw.nexthopReplace(n);
  }

  /** Deletes a nexthop and, in the kernel, every route using it; false when absent. */
  nexthopDel(id: number): boolean {
    return this.raw.nexthopDel(id);
  }

  /** IPv4 ARP entries. */
  neighs(index?: number): Neigh[] {
    return index === undefined ? this.raw.neighs() : this.raw.neighs(index);
  }

  /** `ip neigh replace IP lladdr MAC dev X [nud permanent]`. */
  neighReplace(n: NeighSpec): void {
    this.raw.neighReplace(n);
  }

  /** false when no such entry exists. */
  neighDel(n: NeighKey): boolean {
    return this.raw.neighDel(n);
  }

  /** Bridge FDB entries (AF_BRIDGE), including a vxlan device's remotes. */
  fdbs(index?: number): Fdb[] {
    return index === undefined ? this.raw.fdbs() : this.raw.fdbs(index);
  }

  /** `bridge fdb replace MAC dev X dst IP self permanent`. */
  fdbReplace(f: FdbSpec): void {
    this.raw.fdbReplace(f);
  }

  /** false when the device has no entry for the MAC (see FdbKey.dst). */
  fdbDel(f: FdbKey): boolean {
    return this.raw.fdbDel(f);
  }

  /**
   * Sends many route / neighbour / FDB requests back to back and then
   * collects their acks: one result per op, in order. A malformed op throws a
   * TypeError before anything is sent; a refused op does not stop the rest.
   */
  batch(ops: BatchOp[]): BatchResult[] {
    return this.raw.batch(ops);
  }

  /**
   * Watches links, IPv4 addresses and routes, nexthops, ARP and FDB entries in this
   * handle's namespace, on Node's event loop. Keeps the process alive until
   * closed. An exception thrown by cb is reported as uncaught.
   */
  monitor(cb: (e: NetlinkEvent) => void): Monitor {
    return this.raw.monitor(cb);
  }
}

/** Throws the first error among batch results (with how many failed), else returns them. */
export function throwIfFailed(results: BatchResult[]): BatchResult[] {
  const failed = results.filter((r): r is NetlinkError => typeof r !== 'boolean');
  if (failed.length) {
    const first = failed[0];
    if (failed.length > 1) first.message += ` (and ${failed.length - 1} more failed in the same batch)`;
    throw first;
  }
  return results;
}
