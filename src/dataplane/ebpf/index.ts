// The eBPF dataplane: an overlay device the Network is routed to, TC programs
// on it and on the underlay, and pinned maps the agent keeps in step with the
// leases. Peers are map entries: applying a lease is one map update, and a
// full sync writes only the differences, so a map that traffic is using is
// never flushed.
import fs from 'node:fs';
import path from 'node:path';
import { NetlinkHandle } from '../../native/netlink.js';
import { BpfMap, tcFilters } from '../../native/bpf.js';
import type { Dataplane, DataplaneStatus, PeerSource } from '../types.js';
import { isDirect, type LocalNetwork, type PeerRoute } from '../../core/model.js';
import type { Logger } from '../../core/log.js';
import { CONFIG_KEY, decodeConfig, encodeConfig, encodeLpmKey, encodePeer, hostOrderCheck, lpmKeyId, LPM_KEY_SIZE, MAP_CONFIG, PEER_SIZE, writeLocalPeer, writeLpmKey, writePeer } from './maps.js';
import { ALL_PROGRAMS, closeLoaded, detach, loadObjects, unpinMaps, TC_HANDLE, type LoadedMaps } from './loader.js';
import { attachHook, attachMode, detachLinkById, linkPins, removeLinkPin, weftLinks } from './attach.js';
import { ConntrackFastPath } from './fastpath.js';
import { ensureOverlay, removeOverlays, writeSysctl, type OverlayDevice } from './device.js';
import { BridgePorts } from './ports.js';
import { GatewayHook } from './gateway.js';
import { PodPortHooks } from './podports.js';
import { HostWatch, type HostTask } from './watch.js';

/**
 * The eBPF dataplane's switches; the CLI reads them from WEFT_EBPF_* (README,
 * "What eBPF mode programs").
 */
export interface EbpfOptions {
  /**
   * The programs hand peer traffic for local pods to the pod's port
   * themselves (bpf/include/forward.h), skipping the host's FORWARD chain,
   * bridge-nf and the bridge's own transmit (WEFT_EBPF_POD_FORWARD, on).
   */
  podForward: boolean;
  /** gateway_ingress on the pods' gateway device (bpf/gateway.c; WEFT_EBPF_GATEWAY, off: see gateway.ts). */
  gateway: boolean;
  /** from_pod on each port of the pods' gateway bridge (bpf/gateway.c, podports.ts; WEFT_EBPF_FROM_POD, on). */
  fromPod: boolean;
  /** Tunnel packets are held to the lease holder of their inner source (admit.h admit_tunnel; WEFT_EBPF_SENDER_CHECK, on). */
  senderCheck: boolean;
  /** vxlan without GBP: headers pushed by the program (encap.h push_vxlan; WEFT_EBPF_VXLAN_PUSH, on). */
  vxlanPush: boolean;
  /** Programs held by pinned tcx links where the kernel has tcx (attach.ts; WEFT_EBPF_TCX, on), else classic TC filters. */
  tcx: boolean;
  /** Established flows conntrack follows skip the host's forward path once marked liberal (fastpath.ts; WEFT_EBPF_CT_FASTPATH, on). */
  ctFastPath: boolean;
}

/** An on/off switch from the environment, on unless set to 0, false, off or no. */
export function envSwitch(name: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const v = (env[name] ?? '').trim().toLowerCase();
  return !['0', 'false', 'off', 'no'].includes(v);
}

/** The switches as WEFT_EBPF_* set them (the gateway hook is off unless asked for). */
export function ebpfOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): EbpfOptions {
  return {
    podForward: envSwitch('WEFT_EBPF_POD_FORWARD', env),
    gateway: env.WEFT_EBPF_GATEWAY !== undefined && envSwitch('WEFT_EBPF_GATEWAY', env),
    fromPod: envSwitch('WEFT_EBPF_FROM_POD', env),
    senderCheck: envSwitch('WEFT_EBPF_SENDER_CHECK', env),
    vxlanPush: envSwitch('WEFT_EBPF_VXLAN_PUSH', env),
    tcx: envSwitch('WEFT_EBPF_TCX', env),
    ctFastPath: envSwitch('WEFT_EBPF_CT_FASTPATH', env),
  };
}

/** Whether this network's programs push the VXLAN headers themselves: vxlan without GBP, unless switched off. */
export function vxlanPushWanted(local: LocalNetwork, o: Pick<EbpfOptions, 'vxlanPush'>): boolean {
  return local.backend === 'vxlan' && !local.vxlan?.gbp && o.vxlanPush;
}

/**
 * Peer routes as weft_peers' keys and values laid end to end, as a batch
 * takes them (one allocation each for 65,536 entries), after `lead` entries
 * left for the caller to fill.
 */
function packPeers(routes: PeerRoute[], lead = 0): { keys: Buffer; values: Buffer; count: number } {
  const count = routes.length + lead;
  const keys = Buffer.alloc(count * LPM_KEY_SIZE);
  const values = Buffer.alloc(count * PEER_SIZE);
  for (let i = lead; i < count; i++) {
    const r = routes[i - lead];
    writeLpmKey(keys, i * LPM_KEY_SIZE, r.subnet);
    writePeer(values, i * PEER_SIZE, r);
  }
  return { keys, values, count };
}

export class EbpfDataplane implements Dataplane {
  readonly kind = 'ebpf' as const;
  private nl: NetlinkHandle | undefined;
  private maps: LoadedMaps | undefined;
  private local: LocalNetwork | undefined;
  private overlay: OverlayDevice | undefined;
  private ports: BridgePorts | undefined;
  private portsMap: BpfMap | undefined;
  private gateway: GatewayHook | undefined;
  private podPorts: PodPortHooks | undefined;
  private watch: HostWatch | undefined;
  private fastPath: ConntrackFastPath | undefined;
  private peers: PeerSource | undefined;
  /** stop() ran: a start() still loading its programs gives up. */
  private stopped = false;
  /** The managed neighbour entries this process added (the next hops of direct peers). */
  private readonly managed = new Set<string>();

  constructor(
    private readonly log: Logger,
    private readonly o: EbpfOptions,
  ) {}

  async start(local: LocalNetwork, peers: PeerSource): Promise<void> {
    hostOrderCheck();
    this.local = local;
    this.peers = peers;
    const nl = (this.nl = NetlinkHandle.open());
    this.overlay = ensureOverlay(nl, local, this.log);
    const podForward = this.o.podForward;
    const vxlanPush = vxlanPushWanted(local, this.o);
    const anySender = !this.o.senderCheck;
    const loaded = await loadObjects(local.pinDir, this.log, { gateway: this.o.gateway, fromPod: this.o.fromPod });
    if (this.stopped) {
      // Stopped while the kernel verified the programs: nothing is attached yet, and nothing will be.
      closeLoaded(loaded);
      throw new Error('eBPF dataplane stopped while it started');
    }
    this.maps = loaded.maps;
    this.portsMap = loaded.ports;
    const tasks: HostTask[] = [];
    if (podForward) {
      const ports = (this.ports = new BridgePorts(nl, loaded.ports, local.subnet, this.log));
      tasks.push({ name: 'bridge ports', run: () => void ports.sync() });
    }
    if (loaded.gateway) {
      const gw = (this.gateway = new GatewayHook(nl, loaded.gateway, local, [this.overlay.index, local.iface.index], this.log));
      tasks.push({ name: 'gateway hook', run: () => gw.sync() });
    }
    const mode = attachMode(this.o.tcx);
    if (loaded.fromPod) {
      const pp = (this.podPorts = new PodPortHooks(nl, loaded.fromPod, local, [this.overlay.index, local.iface.index], mode, this.log));
      tasks.push({ name: 'pod ports', run: () => void pp.sync() });
    }
    this.watch = new HostWatch(nl, tasks, this.log);
    // The bridges' ports before the programs that use them, so that a restart keeps the shortcut.
    this.ports?.sync();
    const devices = { overlayIfindex: this.overlay.index, overlayMAC: this.overlay.mac, podForward, decapPort: this.overlay.decapPort, vxlanPush, anySender };
    const config = this.maps.config;
    const fastPath = (this.fastPath = new ConntrackFastPath(loaded.ctWanted, loaded.ctWake, this.o.ctFastPath, (ct) => config.update(CONFIG_KEY, encodeConfig(local, { ...devices, ctFollows: ct.follows, ctTimeoutMs: ct.timeoutMs })), this.log));
    // The config first: programs attached before it is READY would drop what they see.
    config.update(CONFIG_KEY, encodeConfig(local, { ...devices, ctFollows: fastPath.current.follows, ctTimeoutMs: fastPath.current.timeoutMs }));
    const on = (ifindex: number, obj: typeof loaded.overlay, program: 'overlay_egress' | 'overlay_ingress' | 'underlay_decap'): number =>
      attachHook(local.pinDir, ifindex, program, obj.program(program).fd, mode).progId;
    const ids = {
      overlayEgress: on(this.overlay.index, loaded.overlay, 'overlay_egress'),
      overlayIngress: on(this.overlay.index, loaded.overlay, 'overlay_ingress'),
      underlay: on(local.iface.index, loaded.underlay, 'underlay_decap'),
    };
    loaded.overlay.close();
    loaded.underlay.close();
    this.watch.runNow();
    this.watch.start();
    this.relaxUnderlayRpFilter();
    this.log.info(
      {
        device: this.overlay.name,
        pinDir: local.pinDir,
        programs: ids,
        attach: mode,
        podForward,
        podPorts: this.ports?.size,
        vxlanPush,
        senderCheck: !anySender,
        ctFastPath: this.o.ctFastPath,
        decapPort: this.overlay.decapPort || undefined,
        gateway: this.gateway ? (this.gateway.device ?? 'none yet') : undefined,
        fromPod: this.podPorts ? this.podPorts.size : undefined,
      },
      'eBPF dataplane programmed',
    );
  }

  /**
   * Packets from direct (host-gw, DirectRouting) peers arrive on the underlay
   * from pod addresses whose route points at the overlay device; strict
   * reverse-path filtering would drop them, loose mode keeps its protection.
   */
  private relaxUnderlayRpFilter(): void {
    const dev = this.local!.iface.name;
    const read = (k: string): string => {
      try {
        return fs.readFileSync(`/proc/sys/net/ipv4/conf/${k}/rp_filter`, 'utf8').trim();
      } catch {
        // No such sysctl here (a minimal /proc): nothing strict to relax.
        return '0';
      }
    };
    if (read('all') === '1' || read(dev) === '1') {
      writeSysctl(`net/ipv4/conf/${dev}/rp_filter`, '2');
      this.log.info({ iface: dev }, 'set loose reverse-path filtering on the underlay (strict mode drops pod traffic from direct peers)');
    }
  }

  private get m(): LoadedMaps {
    if (!this.maps) throw new Error('eBPF dataplane used before start()');
    return this.maps;
  }

  /** Every entry weft_peers must hold, our own subnet's first, laid out for one batch. */
  private desired(): { keys: Buffer; values: Buffer; count: number } {
    const routes: PeerRoute[] = [];
    for (const r of this.peers!.routes()) routes.push(r);
    const want = packPeers(routes, 1);
    writeLpmKey(want.keys, 0, this.local!.subnet);
    writeLocalPeer(want.values, 0, this.local!.publicIP);
    return want;
  }

  async syncPeers(): Promise<void> {
    const want = this.desired();
    // What the kernel holds, read in a few calls: entry j of the read, by its key.
    const held = this.m.peers.entriesPacked();
    const have = new Map<number, number>();
    for (let j = 0; j < held.count; j++) have.set(lpmKeyId(held.keys, j * LPM_KEY_SIZE), j);
    let added = 0;
    let changed = 0;
    const write: number[] = [];
    for (let i = 0; i < want.count; i++) {
      const id = lpmKeyId(want.keys, i * LPM_KEY_SIZE);
      const j = have.get(id);
      // What is left in `have` afterwards is what no peer wants.
      if (j !== undefined) have.delete(id);
      if (j !== undefined && held.values.compare(want.values, i * PEER_SIZE, (i + 1) * PEER_SIZE, j * PEER_SIZE, (j + 1) * PEER_SIZE) === 0) continue;
      if (j !== undefined) changed++;
      else added++;
      write.push(i);
    }
    if (write.length === want.count) this.m.peers.updatePacked(want.keys, want.values, want.count);
    else if (write.length > 0) {
      const keys = Buffer.alloc(write.length * LPM_KEY_SIZE);
      const values = Buffer.alloc(write.length * PEER_SIZE);
      write.forEach((i, j) => {
        want.keys.copy(keys, j * LPM_KEY_SIZE, i * LPM_KEY_SIZE, (i + 1) * LPM_KEY_SIZE);
        want.values.copy(values, j * PEER_SIZE, i * PEER_SIZE, (i + 1) * PEER_SIZE);
      });
      this.m.peers.updatePacked(keys, values, write.length);
    }
    for (const j of have.values()) this.m.peers.delete(held.keys.subarray(j * LPM_KEY_SIZE, (j + 1) * LPM_KEY_SIZE));
    this.syncNeighbours();
    this.log.info({ peers: want.count - 1, added, changed, removed: have.size }, 'peer map synchronised');
  }

  /**
   * Peers new to the map, written in one batch: the agent's first list, a
   * slice at a time while it is applied (the sync after it then finds them
   * in place). Each entry is what upsertPeer writes.
   */
  async addPeers(routes: PeerRoute[]): Promise<void> {
    if (routes.length === 0) return;
    const { keys, values, count } = packPeers(routes);
    // Written on a libuv thread: the agent goes on applying the list meanwhile (its queue holds the next batch back).
    await this.m.peers.updatePackedAsync(keys, values, count);
    this.addNeighbours(routes);
  }

  async upsertPeer(route: PeerRoute, previous?: PeerRoute): Promise<void> {
    this.m.peers.update(encodeLpmKey(route.subnet), encodePeer(route));
    if (isDirect(route) || (previous && isDirect(previous))) this.syncNeighbours();
  }

  async removePeer(route: PeerRoute): Promise<void> {
    this.m.peers.delete(encodeLpmKey(route.subnet));
    if (isDirect(route)) this.syncNeighbours();
  }

  /**
   * A direct peer's next hop must be resolved before its first packet: the
   * program's redirect cannot queue behind an unresolved neighbour. Managed
   * neighbour entries make the kernel resolve them and keep them fresh.
   */
  private syncNeighbours(): void {
    const nl = this.nl!;
    const index = this.local!.iface.index;
    const wanted = new Set<string>();
    for (const r of this.peers!.routes()) if (isDirect(r)) wanted.add(r.publicIP.toString());
    for (const ip of this.managed) {
      if (wanted.has(ip)) continue;
      nl.neighDel({ index, ip });
      this.managed.delete(ip);
    }
    this.manage(wanted);
  }

  /** syncNeighbours for peers just added: their managed neighbours, without a pass over every peer. */
  private addNeighbours(routes: PeerRoute[]): void {
    const direct = new Set<string>();
    for (const r of routes) if (isDirect(r)) direct.add(r.publicIP.toString());
    if (direct.size > 0) this.manage(direct);
  }

  /** Managed neighbour entries for these direct peers' addresses, those not yet made. */
  private manage(ips: Iterable<string>): void {
    const nl = this.nl!;
    const index = this.local!.iface.index;
    for (const ip of ips) {
      if (this.managed.has(ip)) continue;
      try {
        nl.neighReplace({ index, ip, managed: true });
        this.managed.add(ip);
      } catch (err) {
        this.log.warn({ peer: ip, err: (err as Error).message }, 'cannot add a managed neighbour for a direct peer; its first packets may be lost');
      }
    }
  }

  async status(): Promise<DataplaneStatus> {
    // Still loading its programs (start() waits for the verifier): no map to count yet.
    if (!this.maps) return { peersInKernel: 0 };
    // Our own subnet's entry is not a peer.
    return { peersInKernel: Math.max(0, this.m.peers.count() - 1), ctMarks: this.fastPath?.marks };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.fastPath?.close();
    this.fastPath = undefined;
    this.watch?.close();
    this.watch = undefined;
    this.gateway?.close();
    this.gateway = undefined;
    this.podPorts?.close();
    this.podPorts = undefined;
    this.ports = undefined;
    this.portsMap?.close();
    this.portsMap = undefined;
    for (const map of Object.values(this.maps ?? {})) (map as BpfMap).close();
    this.maps = undefined;
    this.nl?.close();
    this.nl = undefined;
  }

  async uninstall(): Promise<void> {
    const pinDir = this.local?.pinDir;
    await this.stop();
    if (pinDir) uninstallEbpf(pinDir, this.log);
  }
}

export interface UninstallReport {
  filters: string[];
  /** tcx links detached, as "eth0 ingress (underlay_decap)". */
  links: string[];
  devices: string[];
  pins: string[];
}

/**
 * Removes every filter, pin and device the eBPF dataplane created, and
 * nothing else: usable without a running agent (weft uninstall), from the pin
 * dir and the devices' names alone.
 */
export function uninstallEbpf(pinDir: string, log: Logger): UninstallReport {
  const report: UninstallReport = { filters: [], links: [], devices: [], pins: [] };
  const weftFilter = new RegExp(`^(${ALL_PROGRAMS.join('|')})`);
  const nl = NetlinkHandle.open();
  try {
    // weft's filters sit in weft's TC slot; look on every interface (the underlay may have been renamed).
    for (const link of nl.links()) {
      for (const hook of ['ingress', 'egress'] as const) {
        const ours = tcFilters(link.index, hook).some((f) => f.handle === TC_HANDLE && weftFilter.test(f.name ?? ''));
        if (ours && detach(link.index, hook)) report.filters.push(`${link.name} ${hook}`);
      }
      // A weft link whose pin is gone (or another pin dir's) is still weft's: found by its program's name.
      for (const l of weftLinks(link.index)) {
        detachLinkById(l.linkId);
        report.links.push(`${link.name} ${l.hook} (${l.program})`);
      }
    }
    report.devices = removeOverlays(nl, log);
  } finally {
    nl.close();
  }
  const configPin = path.join(pinDir, MAP_CONFIG);
  if (fs.existsSync(configPin)) {
    try {
      const cfg = decodeConfig(BpfMap.fromPin(configPin).lookup(CONFIG_KEY)!);
      log.info({ subnet: cfg.subnet, backend: cfg.backend }, 'removing the pinned maps');
    } catch {
      /* a pin of another layout: remove it all the same */
    }
  }
  for (const pin of linkPins(pinDir)) if (removeLinkPin(pin)) report.pins.push(pin);
  report.pins.push(...unpinMaps(pinDir));
  for (const f of report.filters) log.info({ filter: f }, 'detached');
  return report;
}
