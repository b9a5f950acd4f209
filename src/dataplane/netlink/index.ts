// The netlink dataplane: the kernel programmed exactly as flannel programs it
// (flannel.<VNI> with permanent ARP + FDB + onlink route per peer; host-gw
// routes via each PublicIP), so weft and flannel hosts are interchangeable on
// the wire and in `ip` output. Peers are applied as differences in netlink
// batches; a reconcile loop (every 10 s, and on every foreign netlink change)
// puts back what someone deleted. No peer route ever covers the host's own
// addresses, connected networks, gateways or etcd (guard.ts); a weft route
// found doing so (an older agent's) is removed, and the connected route it
// displaced put back, so the reconcile only ever repairs.
import { NetlinkHandle, throwIfFailed, type BatchOp, type Monitor, type NetlinkEvent, type Route } from '../../native/netlink.js';
import { RouteGuard } from '../guard.js';
import { IPNet } from '../../core/ipnet.js';
import type { Dataplane, DataplaneStatus, PeerSource } from '../types.js';
import type { LocalNetwork, PeerRoute } from '../../core/model.js';
import type { Logger } from '../../core/log.js';
import { parseIP } from '../../core/ipnet.js';
import { ensureIpipDevice, ensureVxlanDevice, overlayDeviceName, UDP_UNSUPPORTED, type EnsureResult } from './device.js';
import { WeftError } from '../../core/errors.js';
import { describeFdb, describeNeigh, describeRoute, nexthopUse, peerEntries, routeKeyOf, routeKeyOfSpec, type Devices, type NexthopUse, type PeerEntries } from './entries.js';
import { isWeftPeerRoute, plan, readNexthops, type Change } from './plan.js';
import { uninstallNetlink } from './uninstall.js';

export { UDP_UNSUPPORTED } from './device.js';
export { uninstallNetlink, findNetlinkState, type NetlinkUninstallReport } from './uninstall.js';

/** The most of one CPU the periodic reconcile may take: its period is at least its last run's time over this. */
const PERIODIC_SHARE = 0.01;

export interface NetlinkDataplaneOptions {
  /** Network namespace file to program (tests, the benchmark); default: the process's own. */
  netns?: string;
  /** Period of the reconcile loop (default 10 s), lengthened where a reconcile itself is long (see PERIODIC_SHARE). */
  reconcileMs?: number;
  /** Quiet time after a foreign netlink change before reconciling (default 100 ms). */
  debounceMs?: number;
}

/** rtm_protocol of the connected routes the kernel makes for an address. */
const RTPROT_KERNEL = 2;

/** Repairs logged one by one per reconcile; the rest are counted (a deleted device takes 3 entries per peer with it). */
const REPAIRS_LOGGED = 20;

export class NetlinkDataplane implements Dataplane {
  readonly kind = 'netlink' as const;
  private nl: NetlinkHandle | undefined;
  private local: LocalNetwork | undefined;
  private dev: Devices | undefined;
  private overlayName: string | null = null;
  private peers: PeerSource | undefined;
  private synced = false;
  private monitor: Monitor | undefined;
  private timer: NodeJS.Timeout | undefined;
  private pending: NodeJS.Timeout | undefined;
  /** What status() reports of the reconcile loop (the agent's metrics read it). */
  private readonly reconciles = { runs: 0, repairs: 0, failures: 0 };
  private guard = new RouteGuard([]);
  /** Which nexthop ids peers may use, as of the last read of the kernel's nexthops (start, every plan). */
  private nexthops: NexthopUse = nexthopUse(null);
  /** Refusals already logged (subnet and reason), so that a reconcile every 10 s does not repeat them. */
  private readonly refusals = new Set<string>();

  constructor(
    private readonly log: Logger,
    private readonly o: NetlinkDataplaneOptions = {},
  ) {}

  async start(local: LocalNetwork, peers: PeerSource): Promise<void> {
    if (local.backend === 'udp') throw new WeftError(UDP_UNSUPPORTED);
    this.local = local;
    this.peers = peers;
    this.overlayName = overlayDeviceName(local);
    const nl = (this.nl = this.o.netns ? NetlinkHandle.openIn(this.o.netns) : NetlinkHandle.open());
    try {
      const r = this.ensureDevice();
      if (r) this.log.info({ device: this.overlayName, changes: r.changes }, r.changes.length ? 'netlink dataplane device ready' : 'netlink dataplane reusing its device');
      this.guard = RouteGuard.read(nl, local, nl.routes());
      this.nexthops = nexthopUse(readNexthops(nl));
      this.monitor = nl.monitor((e) => this.onEvent(e));
    } catch (err) {
      nl.close();
      this.nl = undefined;
      throw err;
    }
    this.schedulePeriodic(0);
    this.log.info({ backend: local.backend, device: this.overlayName ?? local.iface.name }, 'netlink dataplane started');
  }

  private get handle(): NetlinkHandle {
    if (!this.nl) throw new Error('netlink dataplane used before start() or after stop()');
    return this.nl;
  }

  /** Creates, adopts or repairs the overlay device and notes the indexes entries point at. */
  private ensureDevice(): EnsureResult | null {
    const local = this.local!;
    let r: EnsureResult | null = null;
    if (local.backend === 'vxlan') r = ensureVxlanDevice(this.handle, local);
    else if (local.backend === 'ipip') r = ensureIpipDevice(this.handle, local, this.o.netns);
    this.dev = { underlay: local.iface.index, overlay: r?.link.index };
    return r;
  }

  private names = (index: number | undefined): string => {
    if (index !== undefined && index === this.dev?.overlay) return this.overlayName!;
    if (index === this.local?.iface.index) return this.local!.iface.name;
    return `if${index}`;
  };

  private entriesOf(p: PeerRoute): PeerEntries | null {
    try {
      return peerEntries(p, this.dev!, this.nexthops);
    } catch (err) {
      this.log.error({ subnet: p.subnet.toString(), peer: p.publicIP.toString() }, `netlink dataplane cannot program this peer: ${(err as Error).message}`);
      return null;
    }
  }

  /** Whether the guard refuses this peer's route (logged once per subnet and reason). */
  private refused(p: PeerRoute): boolean {
    const why = this.guard.refuse(p.subnet);
    if (!why) return false;
    const id = `${p.subnet} ${why}`;
    if (!this.refusals.has(id)) {
      this.refusals.add(id);
      this.log.warn({ subnet: p.subnet.toString(), peer: p.publicIP.toString(), reason: why }, 'netlink dataplane refuses a peer route that would shadow the host\'s own');
    }
    return true;
  }

  private allEntries(): PeerEntries[] {
    return [...this.peers!.routes()].flatMap((p) => (this.refused(p) ? [] : (this.entriesOf(p) ?? [])));
  }

  /**
   * weft routes that shadow what the guard protects (left by an agent without
   * the guard): removed, and where one had replaced the kernel's connected
   * route of an address, that route put back as the kernel made it.
   */
  private repairs(routes: Route[], entries: PeerEntries[]): { ops: BatchOp[]; changes: Change[] } {
    const ops: BatchOp[] = [];
    const changes: Change[] = [];
    const addrs = this.handle.addrs();
    // The peers' routes have passed the guard already (allEntries): only the rest are parsed and checked.
    const passed = new Set(entries.map((e) => e.route.dst));
    for (const r of routes) {
      if (!isWeftPeerRoute(r) || passed.has(r.dst)) continue;
      const dst = IPNet.parse(r.dst);
      if (!dst) continue;
      const why = this.guard.refuse(dst);
      if (!why) continue;
      ops.push({ op: 'routeDel', arg: routeKeyOf(r) });
      changes.push({ kind: 'remove', what: `route ${r.dst} via ${r.gateway} dev ${this.names(r.index ?? undefined)} (${why})` });
      const owner = addrs.find((a) => {
        const net = IPNet.parse(`${a.address}/${a.prefixLen}`);
        return net?.family === 4 && a.prefixLen < 32 && net.canonical().equals(dst);
      });
      if (owner && !routes.some((x) => x !== r && x.dst === r.dst)) {
        ops.push({ op: 'routeReplace', arg: { dst: r.dst, index: owner.index, src: owner.address, protocol: RTPROT_KERNEL } });
        changes.push({ kind: 'add', what: `route ${r.dst} dev ${this.names(owner.index)} proto kernel scope link src ${owner.address} (the connected route it had replaced)` });
      }
    }
    return { ops, changes };
  }

  private runPlan(removeStale: boolean): Change[] {
    const routes = this.handle.routes();
    this.guard = RouteGuard.read(this.handle, this.local!, routes);
    const nexthops = readNexthops(this.handle);
    this.nexthops = nexthopUse(nexthops);
    const entries = this.allEntries();
    const fix = this.repairs(routes, entries);
    for (const c of fix.changes) this.log.warn({ repair: c.what }, 'netlink dataplane: repaired a weft route that shadowed the host\'s own');
    const p = plan(this.handle, {
      entries,
      routes,
      overlay: this.local!.backend === 'vxlan' ? this.dev!.overlay : undefined,
      network: this.local!.network.toString(),
      nexthops,
      removeStale,
      names: this.names,
    });
    const ops = [...fix.ops, ...p.ops];
    const all = [...fix.changes, ...p.changes];
    if (!ops.length) return [];
    const results = this.handle.batch(ops);
    const failed = results.flatMap((r, i) => (typeof r === 'boolean' ? [] : [`${all[i].what}: ${r.message}`]));
    if (failed.length) throw new Error(`netlink dataplane: ${failed.length} of ${ops.length} changes failed: ${failed.slice(0, 5).join('; ')}`);
    return all;
  }

  async syncPeers(): Promise<void> {
    const t0 = process.hrtime.bigint();
    this.synced = true;
    const r = this.ensureDevice();
    if (r?.changes.length) this.log.info({ device: this.overlayName, changes: r.changes }, 'netlink dataplane device repaired');
    const changes = this.runPlan(true);
    const count = (k: Change['kind']): number => changes.filter((c) => c.kind === k).length;
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    this.log.info({ peers: [...this.peers!.routes()].length, added: count('add'), changed: count('change'), removed: count('remove'), ms: Math.round(ms) }, 'netlink dataplane synchronised');
  }

  /** Whether another peer still needs this FDB entry (hosts that keep their VtepMAC across a subnet change). */
  private fdbNeeded(mac: string, dst: string, except: PeerRoute): boolean {
    for (const p of this.peers!.routes()) {
      if (!p.subnet.equals(except.subnet) && p.encap === 'vxlan' && p.vtepMAC === mac && p.publicIP.toString() === dst) return true;
    }
    return false;
  }

  async upsertPeer(route: PeerRoute, previous?: PeerRoute): Promise<void> {
    // The host may have gained an address since the last reconcile read it: a quick read (addresses only) first.
    this.guard = RouteGuard.read(this.handle, this.local!, undefined, this.guard);
    if (this.refused(route)) {
      if (previous && !this.refused(previous)) await this.removePeer(previous);
      return;
    }
    const next = peerEntries(route, this.dev!, this.nexthops);
    const prev = previous ? this.entriesOf(previous) : null;
    const ops: BatchOp[] = [];
    if (prev?.neigh && (prev.neigh.ip !== next.neigh?.ip || prev.neigh.index !== next.neigh?.index)) ops.push({ op: 'neighDel', arg: { index: prev.neigh.index, ip: prev.neigh.ip } });
    if (prev?.fdb && (prev.fdb.mac !== next.fdb?.mac || prev.fdb.dst !== next.fdb?.dst) && !this.fdbNeeded(prev.fdb.mac, prev.fdb.dst, route)) {
      ops.push({ op: 'fdbDel', arg: { index: prev.fdb.index, mac: prev.fdb.mac, dst: prev.fdb.dst } });
    }
    if (next.neigh) ops.push({ op: 'neighReplace', arg: next.neigh });
    if (next.fdb) ops.push({ op: 'fdbReplace', arg: next.fdb });
    // Replacing a nexthop under its route moves the route with it (between the overlay and the underlay, to a new gateway).
    if (next.nexthop) ops.push({ op: 'nexthopReplace', arg: next.nexthop });
    // Same dst, table and metric: replace swaps whatever route the subnet had for this one.
    ops.push({ op: 'routeReplace', arg: next.route });
    throwIfFailed(this.handle.batch(ops));
    this.log.debug({ subnet: route.subnet.toString(), route: describeRoute(next.route, this.names, next.nexthop) }, 'netlink dataplane: peer programmed');
  }

  async removePeer(route: PeerRoute): Promise<void> {
    // Never installed; and its route's destination is the host's, not ours to delete.
    if (this.refused(route)) return;
    const e = this.entriesOf(route);
    if (!e) return;
    const ops: BatchOp[] = [{ op: 'routeDel', arg: routeKeyOfSpec(e.route) }];
    // After its route: a nexthop deleted under a route costs the kernel a walk of the whole FIB.
    if (e.nexthop) ops.push({ op: 'nexthopDel', arg: { id: e.nexthop.id } });
    if (e.neigh) ops.push({ op: 'neighDel', arg: { index: e.neigh.index, ip: e.neigh.ip } });
    if (e.fdb && !this.fdbNeeded(e.fdb.mac, e.fdb.dst, route)) ops.push({ op: 'fdbDel', arg: { index: e.fdb.index, mac: e.fdb.mac, dst: e.fdb.dst } });
    // false: already gone (someone else deleted it); that is the state we want.
    throwIfFailed(this.handle.batch(ops));
    const removed = [describeRoute(e.route, this.names, e.nexthop), e.neigh && describeNeigh(e.neigh, this.names), e.fdb && describeFdb(e.fdb, this.names)].filter(Boolean);
    this.log.debug({ subnet: route.subnet.toString(), removed }, 'netlink dataplane: peer removed');
  }

  /**
   * The next periodic reconcile: after reconcileMs, or later when the last
   * one took long, so that the loop never takes more than PERIODIC_SHARE of a
   * CPU. It is a safety net under the netlink monitor, which repairs every
   * foreign change within debounceMs; at 65,535 peers one reconcile reads
   * every route, neighbour and FDB entry (about 2.6 s here), which every 10 s
   * was a quarter of a CPU for an idle agent.
   */
  private schedulePeriodic(lastMs: number): void {
    const period = Math.max(this.o.reconcileMs ?? 10_000, lastMs / PERIODIC_SHARE);
    this.timer = setTimeout(() => {
      const t = performance.now();
      this.reconcile('periodic');
      if (this.nl) this.schedulePeriodic(performance.now() - t);
    }, period);
    this.timer.unref();
  }

  /** Restores what is missing or was changed; never removes (only syncPeers knows what is stale). */
  reconcile(trigger: string): void {
    if (!this.nl) return;
    this.reconciles.runs++;
    try {
      const r = this.ensureDevice();
      const device: Change[] = (r?.changes ?? []).map((c) => ({ kind: 'change', what: `device ${this.overlayName}: ${c}` }));
      // concat, not push(...): a recreated device brings back 4 entries per peer, more than a call's arguments may hold.
      const repairs = device.concat(this.synced ? this.runPlan(false) : []);
      this.reconciles.repairs += repairs.length;
      const worded = (c: Change, i: number): string => (i < device.length ? c.what : `${c.what} (${c.kind === 'add' ? 'was missing' : 'was changed'})`);
      repairs.slice(0, REPAIRS_LOGGED).forEach((c, i) => this.log.warn({ repair: worded(c, i), trigger }, 'reconcile: restored what the kernel lost'));
      if (repairs.length > REPAIRS_LOGGED) this.log.warn({ more: repairs.length - REPAIRS_LOGGED, trigger }, 'reconcile: restored more entries than logged one by one');
    } catch (err) {
      this.reconciles.failures++;
      this.log.error({ trigger }, `reconcile failed: ${(err as Error).message}`);
    }
  }

  private relevant(e: NetlinkEvent): boolean {
    if (e.kind === 'overflow') return true;
    if (e.own) return false;
    switch (e.kind) {
      case 'link':
        // Our devices only: pods' veths come and go all the time on a busy host.
        return e.index === null || e.index === this.dev?.overlay || e.index === this.dev?.underlay;
      case 'addr':
        return e.index === null || e.index === this.dev?.overlay;
      case 'route':
        return e.table === 254;
      case 'neigh':
        return e.index === null || e.index === this.dev?.overlay;
      case 'nexthop':
        // Someone else's: a deleted nexthop takes its routes with it, and the kernel says so only for the nexthop.
        return true;
      default:
        return false;
    }
  }

  /** Foreign changes are batched: one reconcile per quiet period, however many events arrive. */
  private onEvent(e: NetlinkEvent): void {
    if (!this.relevant(e) || this.pending) return;
    const trigger = e.kind === 'overflow' ? 'netlink overflow (full resync)' : `netlink ${e.kind} ${e.action}`;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.reconcile(trigger);
    }, this.o.debounceMs ?? 100);
    this.pending.unref();
  }

  async status(): Promise<DataplaneStatus> {
    const net = this.local!.network;
    const n = this.handle.routes().filter((r) => {
      const ip = parseIP(r.dst.split('/')[0]);
      return isWeftPeerRoute(r) && ip !== null && net.containsIP(ip.value);
    }).length;
    return { peersInKernel: n, reconciles: { ...this.reconciles } };
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    clearTimeout(this.pending);
    this.timer = this.pending = undefined;
    this.monitor?.close();
    this.monitor = undefined;
    this.nl?.close();
    this.nl = undefined;
  }

  async uninstall(): Promise<void> {
    await this.stop();
    uninstallNetlink(this.log, { netns: this.o.netns, devices: this.overlayName ? [this.overlayName] : [] });
    this.synced = false;
  }
}

export function createNetlinkDataplane(log: Logger, o?: NetlinkDataplaneOptions): NetlinkDataplane {
  return new NetlinkDataplane(log, o);
}
