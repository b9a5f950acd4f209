// Real packets through the programs attached by hand (the loader will do this
// for the agent): two lab hosts, a bridge and a pod on each, the overlay
// device made with ip commands, the maps written with the codecs. For each
// backend: pod <-> pod both ways, a host to a remote pod, and TCP transfers
// whose GSO aggregates must survive encapsulation and decapsulation. For
// vxlan: the VNI and port on the wire, and a flannel host on the other side.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Lab, type LabHost, type Netns } from '../../lab/netns.js';
import { BpfObject, tcAttach, tcHookCreate } from 'weft/native/bpf.js';
import { withNetns } from 'weft/native/addon.js';
import {
  CONFIG_KEY,
  MAP_CONFIG,
  MAP_PEERS,
  MAP_STATS,
  decodeCounter,
  encodeConfig,
  encodeLocalPeer,
  encodeLpmKey,
  encodePeer,
  statsIndex,
  u32Key,
} from 'weft/dataplane/ebpf/maps.js';
import type { BackendType, LocalNetwork, PeerRoute } from 'weft/core/model.js';
import { addr, localNetwork, net, route } from '../../lab/model.js';
import { OVERLAY_O, UNDERLAY_O } from './fixture.js';

const NETWORK = '10.244.0.0/16';
const POD_MTU: Record<BackendType, number> = { vxlan: 1450, ipip: 1480, udp: 1472, 'host-gw': 1500 };

interface Node {
  host: LabHost;
  n: number;
  pod: Netns;
  podIP: string;
  vtepMAC: string;
  objects: BpfObject[];
}

async function ifinfo(ns: Netns, dev: string): Promise<{ ifindex: number; address: string }> {
  const [info] = JSON.parse(await ns.ip('-j', 'link', 'show', dev)) as Array<{ ifindex: number; address: string }>;
  return info;
}

async function addNode(lab: Lab, name: string, octet: number, n: number, mtu: number): Promise<Node> {
  const host = await lab.addHost(name, { octet });
  await host.addBridge('cni0', `10.244.${n}.1/24`, mtu);
  const pod = await host.addPod('p', { bridge: 'cni0', cidr: `10.244.${n}.2/24`, gateway: `10.244.${n}.1`, mtu });
  return { host, n, pod, podIP: `10.244.${n}.2`, vtepMAC: `02:00:00:00:00:${String(n).padStart(2, '0')}`, objects: [] };
}

function peerRoute(backend: BackendType, to: Node): PeerRoute {
  const encap = backend === 'host-gw' ? 'direct' : backend;
  return route({ subnet: `10.244.${to.n}.0/24`, publicIP: to.host.address, encap, directRouting: false, vni: 1, vtepMAC: to.vtepMAC });
}

/** What the loader will do: the overlay device, the Network route, the programs, the maps. */
async function startWeft(node: Node, backend: BackendType, peers: Node[]): Promise<void> {
  const { host } = node;
  const mtu = POD_MTU[backend];
  const dev = backend === 'vxlan' ? 'weft.1' : 'weft0';
  if (backend === 'vxlan') {
    await host.ip('link', 'add', dev, 'address', node.vtepMAC, 'mtu', String(mtu), 'type', 'vxlan', 'external', 'dstport', '8472', 'nolearning');
  } else {
    await host.ip('link', 'add', dev, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'weft0p', 'mtu', String(mtu));
    await host.ip('link', 'set', 'weft0p', 'up');
  }
  await host.ip('link', 'set', dev, 'arp', 'off', 'up');
  await host.ip('addr', 'add', `10.244.${node.n}.0/32`, 'dev', dev);
  await host.ip('route', 'add', NETWORK, 'dev', dev);
  // Managed neighbours keep the next hops resolved, so no first packet waits for ARP.
  for (const p of peers) await host.ip('neigh', 'replace', p.host.address, 'dev', 'eth0', 'managed', 'extern_learn');

  const eth0 = await ifinfo(host, 'eth0');
  const ov = await ifinfo(host, dev);
  const overlay = BpfObject.load(OVERLAY_O, { pinRoot: host.pinDir });
  const underlay = BpfObject.load(UNDERLAY_O, { pinRoot: host.pinDir });
  node.objects.push(overlay, underlay);
  const local: LocalNetwork = localNetwork({
    backend,
    network: NETWORK,
    subnet: `10.244.${node.n}.0/24`,
    publicIP: host.address,
    iface: { name: 'eth0', index: eth0.ifindex, mtu: 1500, address: host.address, mac: eth0.address, networks: ['192.0.2.0/24'] },
    mtu,
    vxlan: { vni: 1, port: 0, gbp: false, vtepMAC: node.vtepMAC, learning: false },
    udp: { port: 0 },
    pinDir: host.pinDir,
  });
  overlay.map(MAP_CONFIG).update(CONFIG_KEY, encodeConfig(local, { overlayIfindex: ov.ifindex, overlayMAC: ov.address }));
  const peersMap = overlay.map(MAP_PEERS);
  peersMap.update(encodeLpmKey(local.subnet), encodeLocalPeer(addr(host.address)));
  for (const p of peers) peersMap.update(encodeLpmKey(net(`10.244.${p.n}.0/24`)), encodePeer(peerRoute(backend, p)));

  withNetns(`/run/netns/${host.name}`, () => {
    tcHookCreate(ov.ifindex);
    tcHookCreate(eth0.ifindex);
    tcAttach({ ifindex: ov.ifindex, hook: 'egress', handle: 1, priority: 1, progFd: overlay.program('overlay_egress').fd });
    if (backend === 'vxlan') tcAttach({ ifindex: ov.ifindex, hook: 'ingress', handle: 1, priority: 1, progFd: overlay.program('overlay_ingress').fd });
    tcAttach({ ifindex: eth0.ifindex, hook: 'ingress', handle: 1, priority: 1, progFd: underlay.program('underlay_decap').fd });
  });
}

/** flannel's vxlan backend, programmed the way flanneld does it (FLANNEL.md). */
async function startFlannelVxlan(node: Node, peer: Node): Promise<void> {
  const h = node.host;
  await h.ip('link', 'add', 'flannel.1', 'address', node.vtepMAC, 'type', 'vxlan', 'id', '1', 'local', h.address, 'dev', 'eth0', 'dstport', '8472', 'nolearning');
  await h.ip('link', 'set', 'flannel.1', 'mtu', '1450', 'up');
  await h.ip('addr', 'add', `10.244.${node.n}.0/32`, 'dev', 'flannel.1');
  await h.ip('neigh', 'replace', `10.244.${peer.n}.0`, 'lladdr', peer.vtepMAC, 'dev', 'flannel.1', 'nud', 'permanent');
  await h.exec(['bridge', 'fdb', 'add', peer.vtepMAC, 'dev', 'flannel.1', 'self', 'dst', peer.host.address]);
  await h.ip('route', 'add', `10.244.${peer.n}.0/24`, 'via', `10.244.${peer.n}.0`, 'dev', 'flannel.1', 'onlink');
}

async function ping(from: Netns, to: string): Promise<void> {
  await from.exec(['ping', '-c', '2', '-i', '0.2', '-W', '2', to], { timeoutMs: 10_000 });
}

const SINK = `const s = require('net').createServer((c) => { let n = 0; c.on('data', (d) => (n += d.length)); c.on('end', () => { c.end(String(n)); s.close(); }); });
s.listen(5201, () => console.log('listening'));`;
const SOURCE = `const [ip, mb] = process.argv.slice(1); const c = require('net').connect(5201, ip, () => {
  const chunk = Buffer.alloc(1 << 20, 7); let i = 0;
  const w = () => { while (i < Number(mb)) { i++; if (!c.write(chunk)) return c.once('drain', w); } c.end(); }; w(); });
let r = ''; c.on('data', (d) => (r += d)); c.on('close', () => console.log(r));`;

/**
 * A TCP transfer of a known size, counted by the receiver: 1 MiB writes make
 * the sender's stack build GSO aggregates far larger than the MTU, which must
 * survive encapsulation and decapsulation. Bounded by the byte count and a timeout.
 */
async function tcpTransfer(client: Netns, server: Netns, serverIP: string, mb = 30): Promise<void> {
  const srv = server.spawn(['node', '-e', SINK]);
  try {
    await new Promise<void>((resolve, reject) => {
      srv.stdout!.on('data', (d: Buffer) => d.toString().includes('listening') && resolve());
      srv.once('exit', (code) => reject(new Error(`sink exited (${code}) before listening`)));
    });
    const out = await client.exec(['node', '-e', SOURCE, serverIP, String(mb)], { timeoutMs: 30_000 });
    assert.equal(out.stdout.trim(), String(mb << 20), 'bytes the receiver counted');
  } finally {
    await server.stopAll();
  }
}

function egressPackets(node: Node, backend: BackendType): bigint {
  const encap = backend === 'host-gw' ? 'direct' : backend;
  const v = node.objects[0].map(MAP_STATS).lookup(u32Key(statsIndex('egress', encap)));
  return decodeCounter(v ?? Buffer.alloc(0)).packets;
}

describe('datapath: programs attached in lab hosts', () => {
  for (const backend of ['vxlan', 'ipip', 'udp', 'host-gw'] as const) {
    it(`${backend}: pods reach each other both ways, a host reaches a remote pod, TCP crosses with GSO`, async (t) => {
      const lab = await Lab.create();
      t.after(() => lab.destroy());
      const a = await addNode(lab, 'a', 11, 1, POD_MTU[backend]);
      const b = await addNode(lab, 'b', 21, 2, POD_MTU[backend]);
      t.after(() => [...a.objects, ...b.objects].forEach((o) => o.close()));
      await startWeft(a, backend, [b]);
      await startWeft(b, backend, [a]);

      await ping(a.pod, b.podIP);
      await ping(b.pod, a.podIP);
      await ping(a.host, b.podIP);
      await ping(a.pod, b.host.address);
      // The largest packet the pod MTU allows, DF set: the encapsulated packet must fit the underlay.
      await a.pod.exec(['ping', '-c', '1', '-W', '2', '-M', 'do', '-s', String(POD_MTU[backend] - 28), b.podIP]);
      await tcpTransfer(a.pod, b.pod, b.podIP);
      await tcpTransfer(b.pod, a.pod, a.podIP);
      assert.ok(egressPackets(a, backend) > 0n && egressPackets(b, backend) > 0n, 'both hosts counted their egress');
    });
  }

  it('vxlan: the VNI and port on the wire, and traffic both ways with a flannel host', async (t) => {
    const lab = await Lab.create();
    t.after(() => lab.destroy());
    const a = await addNode(lab, 'a', 11, 1, 1450);
    const b = await addNode(lab, 'b', 21, 2, 1450);
    t.after(() => a.objects.forEach((o) => o.close()));
    await startWeft(a, 'vxlan', [b]);
    await startFlannelVxlan(b, a);

    const capture = b.host.start(['tcpdump', '-i', 'eth0', '-c', '1', '-nn', '-x', 'udp dst port 8472 and src host 192.0.2.11'], { timeoutMs: 10_000 });
    // tcpdump says so on stderr once its filter is attached: from then on it sees the packet.
    await capture.output.waitFor('tcpdump to capture on eth0', /^listening on eth0/m);
    await ping(a.pod, b.podIP);
    const hex = (await capture.result).stdout
      .split('\n')
      .filter((l) => /^\s+0x[0-9a-f]+:/.test(l))
      .map((l) => l.replace(/^\s+0x[0-9a-f]+:\s+/, '').replace(/\s+/g, ''))
      .join('');
    const pkt = Buffer.from(hex, 'hex'); // starts at the outer IPv4 header
    assert.equal(pkt.readUInt16BE(22), 8472, 'UDP destination port');
    assert.equal(pkt.readUInt16BE(26), 0, 'UDP checksum 0, as flannel sends it');
    assert.equal(pkt[28], 0x08, 'vxlan flags: VNI present');
    assert.equal(pkt.readUIntBE(32, 3), 1, 'VNI');
    assert.equal(pkt.subarray(36, 42).toString('hex'), b.vtepMAC.replace(/:/g, ''), 'inner destination: the peer VtepMAC');
    assert.equal(pkt.subarray(42, 48).toString('hex'), a.vtepMAC.replace(/:/g, ''), 'inner source: our VtepMAC');

    await ping(b.pod, a.podIP);
    await tcpTransfer(a.pod, b.pod, b.podIP);
    await tcpTransfer(b.pod, a.pod, a.podIP);
  });
});
