// A lab host with weft's BPF objects loaded (not attached) under the host's
// pin directory, for BPF_PROG_TEST_RUN packet tests. Test runs execute inside
// the host's network namespace, so the programs' FIB and neighbour lookups
// see the host's routes: the underlay 192.0.2.0/24 on eth0, the router
// 192.0.2.1 as gateway to 198.51.100.0/24, and one resolved peer 192.0.2.21.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, type LabHost } from '../../lab/netns.js';
import { BpfObject, type BpfMap } from 'weft/native/bpf.js';
import { withNetns } from 'weft/native/addon.js';
import {
  CONFIG_KEY,
  MAP_CONFIG,
  MAP_DROPS,
  MAP_PEERS,
  MAP_PORTS,
  MAP_STATS,
  decodeCounter,
  dropKey,
  encodeConfig,
  encodeLocalPeer,
  encodeLpmKey,
  encodePeer,
  encodePort,
  encodePortKey,
  statsIndex,
  u32Key,
  type Counter,
  type DirName,
  type DropReason,
  type EncapName,
} from 'weft/dataplane/ebpf/maps.js';
import type { BackendType, LocalNetwork } from 'weft/core/model.js';
import { TRANSIENT_MAPS, type ProgramName } from 'weft/dataplane/ebpf/loader.js';
import { addr, localNetwork, net, route, type RouteText } from '../../lab/model.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const OVERLAY_O = path.join(root, 'build/bpf/overlay.o');
export const UNDERLAY_O = path.join(root, 'build/bpf/underlay.o');

export const PEER_IP = '192.0.2.21';
export const PEER_MAC = '02:00:00:00:21:21';
/** On the underlay segment, but never answers ARP. */
export const UNRESOLVED_IP = '192.0.2.31';
/** Behind the router, on the other segment. */
export const FAR_IP = '198.51.100.21';
export const VTEP_MAC = '02:00:00:00:01:01';
export const PEER_VTEP_MAC = '02:00:00:00:02:01';
export const VNI = 1;
/** The lease configure() writes for PEER_IP: the subnet the tests' received pod traffic comes from. */
export const SENDER_SUBNET = '10.244.2.0/24';

export interface Fixture {
  lab: Lab;
  host: LabHost;
  overlay: BpfObject;
  underlay: BpfObject;
  ethMAC: string;
  ethIfindex: number;
  routerMAC: string;
  overlayMAC: string;
  overlayIfindex: number;
  run(obj: BpfObject, prog: ProgramName, data: Buffer): { retval: number; data: Buffer };
  configure(backend: BackendType, opts?: { ready?: boolean; udpPort?: number; podForward?: boolean; decapPort?: number; anySender?: boolean; ctFollows?: boolean; ctTimeoutMs?: number }): void;
  local(backend: BackendType, udpPort?: number): LocalNetwork;
  setPeer(route: RouteText): void;
  deletePeer(subnet: string): void;
  drops(reason: DropReason): Counter;
  stats(dir: DirName, encap: EncapName): Counter;
  destroy(): Promise<void>;
}

async function link(ns: { ip: (...a: string[]) => Promise<string> }, dev: string): Promise<{ ifindex: number; address: string }> {
  const [info] = JSON.parse(await ns.ip('-j', 'link', 'show', dev)) as Array<{ ifindex: number; address: string }>;
  return info;
}

export async function makeFixture(): Promise<Fixture> {
  const lab = await Lab.create();
  try {
    const host = await lab.addHost('h1', { octet: 11 });
    // The overlay device of the veth backends; only its ifindex and MAC matter here.
    await host.ip('link', 'add', 'weft0', 'type', 'veth', 'peer', 'name', 'weft0p');
    await host.ip('neigh', 'replace', PEER_IP, 'lladdr', PEER_MAC, 'dev', 'eth0', 'nud', 'permanent');
    const router = await link(lab.router, 'seg0');
    await host.ip('neigh', 'replace', '192.0.2.1', 'lladdr', router.address, 'dev', 'eth0', 'nud', 'permanent');
    const eth0 = await link(host, 'eth0');
    const weft0 = await link(host, 'weft0');
    const overlay = BpfObject.load(OVERLAY_O, { pinRoot: host.pinDir });
    const underlay = BpfObject.load(UNDERLAY_O, { pinRoot: host.pinDir });
    // As the loader does: weft_ports, weft_ct_wanted, weft_ct_wake and weft_pod_ports are shared through their pins at load time, then unpinned.
    for (const m of TRANSIENT_MAPS) fs.rmSync(path.join(host.pinDir, m), { force: true });
    const map = (name: string): BpfMap => overlay.map(name);
    const nsPath = `/run/netns/${host.name}`;

    const fx: Fixture = {
      lab,
      host,
      overlay,
      underlay,
      ethMAC: eth0.address,
      ethIfindex: eth0.ifindex,
      routerMAC: router.address,
      overlayMAC: weft0.address,
      overlayIfindex: weft0.ifindex,
      run(obj, prog, data) {
        const p = obj.program(prog);
        return withNetns(nsPath, () => p.testRun({ data }));
      },
      local(backend, udpPort) {
        return localNetwork({
          backend,
          network: '10.244.0.0/16',
          subnet: '10.244.1.0/24',
          publicIP: host.address,
          iface: { name: 'eth0', index: eth0.ifindex, mtu: 1500, address: host.address, mac: eth0.address, networks: ['192.0.2.0/24'] },
          mtu: backend === 'vxlan' ? 1450 : backend === 'ipip' ? 1480 : backend === 'udp' ? 1472 : 1500,
          vxlan: backend === 'vxlan' ? { vni: VNI, port: 0, gbp: false, vtepMAC: VTEP_MAC, learning: false } : undefined,
          udp: backend === 'udp' ? { port: udpPort ?? 0 } : undefined,
          pinDir: host.pinDir,
        });
      },
      configure(backend, opts = {}) {
        const dev = { overlayIfindex: weft0.ifindex, overlayMAC: weft0.address, podForward: opts.podForward, decapPort: opts.decapPort, anySender: opts.anySender, ctFollows: opts.ctFollows, ctTimeoutMs: opts.ctTimeoutMs };
        const value = encodeConfig(fx.local(backend, opts.udpPort), dev, opts.ready ?? true);
        map(MAP_CONFIG).update(CONFIG_KEY, value);
        map(MAP_PEERS).update(encodeLpmKey(net('10.244.1.0/24')), encodeLocalPeer(addr(host.address)));
        // The peer whose pods the tests' tunnel packets come from: admitted only from its PublicIP.
        fx.setPeer({ subnet: SENDER_SUBNET, publicIP: PEER_IP, encap: 'vxlan', directRouting: false, vni: VNI, vtepMAC: PEER_VTEP_MAC });
      },
      setPeer(text) {
        const r = route(text);
        map(MAP_PEERS).update(encodeLpmKey(r.subnet), encodePeer(r));
      },
      deletePeer(subnet) {
        map(MAP_PEERS).delete(encodeLpmKey(net(subnet)));
      },
      drops(reason) {
        return decodeCounter(map(MAP_DROPS).lookup(dropKey(reason)) ?? Buffer.alloc(0));
      },
      stats(dir, encap) {
        return decodeCounter(map(MAP_STATS).lookup(u32Key(statsIndex(dir, encap))) ?? Buffer.alloc(0));
      },
      async destroy() {
        overlay.close();
        underlay.close();
        await lab.destroy();
      },
    };
    return fx;
  } catch (err) {
    await lab.destroy();
    throw err;
  }
}

/** Runs fn and returns how much the counter grew meanwhile. */
export function delta(read: () => Counter, fn: () => void): Counter {
  const before = read();
  fn();
  const after = read();
  return { packets: after.packets - before.packets, bytes: after.bytes - before.bytes };
}

export const POD = '10.244.1.3';
export const POD_MAC = '02:00:00:00:13:03';

/**
 * A docker0-style bridge (br0) holding our subnet's gateway, with a port so
 * that it has carrier, and one resolved pod (POD) whose MAC the agent has
 * learned behind that port (pp0).
 */
export async function addPodBridge(fx: Fixture, mtu: number): Promise<{ bridge: { ifindex: number; address: string }; port: number }> {
  const h = fx.host;
  await h.ip('link', 'add', 'br0', 'mtu', String(mtu), 'type', 'bridge');
  await h.ip('link', 'add', 'pp0', 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'pp1');
  await h.ip('link', 'set', 'pp0', 'master', 'br0', 'up');
  await h.ip('link', 'set', 'pp1', 'up');
  await h.ip('addr', 'add', '10.244.1.1/24', 'dev', 'br0');
  await h.ip('link', 'set', 'br0', 'up');
  await h.ip('neigh', 'replace', POD, 'lladdr', POD_MAC, 'dev', 'br0', 'nud', 'permanent');
  const bridge = await link(h, 'br0');
  const port = (await link(h, 'pp0')).ifindex;
  fx.overlay.map(MAP_PORTS).update(encodePortKey(bridge.ifindex, POD_MAC), encodePort({ ifindex: port, peer: false }));
  return { bridge, port };
}
