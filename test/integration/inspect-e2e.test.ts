// The inspection commands against real agents running the eBPF dataplane in
// lab hosts with real peers and pods: each command's JSON is checked against
// what etcd (etcdctl), the kernel (ip, TC filter dumps, the pinned maps) and
// the agents (subnet.env, their process) hold; counters rise after pings, and
// drops rise after traffic to a peer that left.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, subnetOf, type ClusterNode } from '../../lab/cluster.js';
import { CLI, statusSocket } from '../../lab/agent.js';
import { waitFor, type RunResult } from '../../lab/exec.js';
import { withNetns } from 'weft/native/addon.js';
import { progInfo, tcFilters, tcxPrograms, tcxSupported } from 'weft/native/bpf.js';
import { NetlinkHandle } from 'weft/native/netlink.js';
import { openPinnedMaps } from 'weft/dataplane/ebpf/loader.js';
import { decodePeer } from 'weft/dataplane/ebpf/maps.js';

let c: Cluster;
let h1: ClusterNode;
let h2: ClusterNode;
let h3: ClusterNode;

before(async () => {
  // DirectRouting: h2 shares h1's segment (routed directly), h3 sits behind the router (vxlan).
  c = await Cluster.start({
    config: JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan', DirectRouting: true } }),
    dataplane: 'ebpf',
    hosts: [{ name: 'h1', octet: 11 }, { name: 'h2', octet: 12 }, { name: 'h3', octet: 13, segment: 1 }],
  });
  [h1, h2, h3] = [c.node('h1'), c.node('h2'), c.node('h3')];
  // Each agent has seen both others before the tests look.
  for (const n of c.nodes) await n.agent!.waitForLog('two peers', () => n.agent!.lines.filter((l) => l.msg === 'peer added').length >= 2, 15_000);
});
after(() => c?.destroy());

function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FLANNELD_')));
}

/** weft in a host's network namespace (its TC filters), with that host's pin dir and status socket. */
function weft(n: ClusterNode, args: string[]): Promise<RunResult> {
  return n.host.exec([process.execPath, CLI, ...args], { allowFail: true, env: cleanEnv(), timeoutMs: 20_000 });
}

async function json<T>(n: ClusterNode, args: string[]): Promise<T> {
  const extra = args[0] === 'bpf' ? ['--pin-dir', n.host.pinDir] : args[0] === 'status' ? ['--status-socket', statusSocket(n.host)] : [];
  const r = await weft(n, [...args, ...extra, '-o', 'json']);
  assert.equal(r.code, 0, `weft ${args.join(' ')} on ${n.spec.name}: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}


/** The lease value in etcd, read with etcdctl. */
async function leaseValue(n: ClusterNode): Promise<{ PublicIP: string; BackendData: { VNI: number; VtepMAC: string } }> {
  return JSON.parse(await c.etcd.etcdctl(['get', '--print-value-only', `${c.prefix}/subnets/${subnetOf(n).replace('/', '-')}`]));
}

/** The VtepMAC as the kernel has it: the MAC of the host's vxlan device. */
async function deviceMAC(n: ClusterNode): Promise<string> {
  return (JSON.parse(await n.host.ip('-j', 'link', 'show', 'weft.vxlan')) as Array<{ address: string }>)[0].address;
}

/** Remote subnets in the pinned weft_peers map, read with the dataplane's own loader. */
function kernelPeers(n: ClusterNode): string[] {
  const maps = openPinnedMaps(n.host.pinDir);
  try {
    return maps.peers.entries().map(([k, v]) => decodePeer(k, v)).filter((d) => !d.local).map((d) => d.route.subnet.toString()).sort();
  } finally {
    Object.values(maps).forEach((m) => m.close());
  }
}

interface Peer { subnet: string; local: boolean; backend: string | null; encap: string; publicIP: string; vni: number | null; vtepMAC: string | null; directRouting: boolean }
interface Counters { counters: Array<{ direction: string; encap: string; packets: number }> }
interface Drops { drops: Array<{ reason: string; packets: number }> }

test('weft leases: one lease per agent, as etcd holds it, VtepMAC as the kernel has it', async () => {
  const r = await weft(h1, ['leases', '--etcd-endpoints', c.etcd.endpoint, '--etcd-prefix', c.prefix, '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as { leases: Array<{ subnet: string; publicIP: string; backend: string; vni: number; vtepMAC: string; reservation: boolean; ttlSeconds: number }> };
  assert.equal(rep.leases.length, 3);
  for (const n of [h1, h2, h3]) {
    const row = rep.leases.find((l) => l.subnet === subnetOf(n))!;
    const v = await leaseValue(n);
    assert.deepEqual([row.publicIP, row.backend, row.vni, row.vtepMAC, row.reservation], [n.host.address, 'vxlan', v.BackendData.VNI, v.BackendData.VtepMAC, false]);
    assert.equal(row.vtepMAC, await deviceMAC(n), `${n.spec.name}: the lease's VtepMAC is its vxlan device's MAC`);
    assert.ok(row.ttlSeconds > 86_000);
  }
});

test('weft status: the eBPF dataplane, its peers in the view and in the maps', async () => {
  const s = await json<{ pid: number; ready: boolean; lease: { subnet: string }; dataplane: { kind: string; reason: string; pinDir: string }; peers: { inView: number; routed: number; inMaps: number }; mtu: number; errors: unknown[] }>(h1, ['status']);
  assert.equal(s.pid, h1.agent!.pid);
  assert.equal(s.ready, true);
  assert.equal(s.lease.subnet, subnetOf(h1));
  assert.deepEqual({ ...s.dataplane, reason: '' }, { requested: 'ebpf', kind: 'ebpf', reason: '', pinDir: h1.host.pinDir });
  assert.match(s.dataplane.reason, /^--dataplane=ebpf/);
  assert.deepEqual([s.peers.inView, s.peers.routed, s.peers.inMaps], [2, 2, kernelPeers(h1).length]);
  assert.equal(s.peers.inMaps, 2);
  assert.equal(s.mtu, Number(h1.env.FLANNEL_MTU));
  assert.deepEqual(s.errors, []);
});

test('weft bpf peers: the local subnet, a DirectRouting peer and a vxlan peer, as in etcd', async () => {
  const out = await json<{ config: { subnet: string; backend: string; overlayIfindex: number }; peers: Peer[] }>(h1, ['bpf', 'peers']);
  assert.equal(out.config.subnet, subnetOf(h1));
  assert.equal(out.config.overlayIfindex, (JSON.parse(await h1.host.ip('-j', 'link', 'show', 'weft.vxlan')) as Array<{ ifindex: number }>)[0].ifindex);
  const by = new Map(out.peers.map((p) => [p.subnet, p]));
  assert.deepEqual([...by.keys()].sort(), [subnetOf(h1), subnetOf(h2), subnetOf(h3)].sort());
  assert.equal(by.get(subnetOf(h1))!.local, true);
  const v2 = await leaseValue(h2);
  const v3 = await leaseValue(h3);
  assert.deepEqual(by.get(subnetOf(h2)), { subnet: subnetOf(h2), local: false, backend: 'vxlan', encap: 'direct', publicIP: v2.PublicIP, vni: v2.BackendData.VNI, vtepMAC: v2.BackendData.VtepMAC, directRouting: true });
  assert.deepEqual(by.get(subnetOf(h3)), { subnet: subnetOf(h3), local: false, backend: 'vxlan', encap: 'vxlan', publicIP: v3.PublicIP, vni: v3.BackendData.VNI, vtepMAC: v3.BackendData.VtepMAC, directRouting: false });
});

test('weft bpf lookup: pods on each host, an address no lease holds, an underlay address', async () => {
  const look = (ip: string) => json<{ action: string; encap: string | null; via: string | null; vtepMAC: string | null; dropReason: string | null; kernelAgrees: boolean }>(h1, ['bpf', 'lookup', ip]);
  const [p1, p2, p3] = [h1.pods[0].ip, h2.pods[0].ip, h3.pods[0].ip];
  const local = await look(p1);
  assert.equal(local.action, 'local');
  const direct = await look(p2);
  assert.deepEqual([direct.action, direct.via], ['forward', '192.0.2.12']);
  const tunnel = await look(p3);
  assert.deepEqual([tunnel.action, tunnel.encap, tunnel.via, tunnel.vtepMAC], ['encapsulate', 'vxlan', '198.51.100.13', await deviceMAC(h3)]);
  const none = await look('10.244.250.1');
  assert.deepEqual([none.action, none.dropReason], ['drop', 'no_peer']);
  assert.equal((await look('192.0.2.12')).action, 'pass');
  for (const r of [local, direct, tunnel, none]) assert.equal(r.kernelAgrees, true);
});

test('weft bpf programs: the loader\'s three programs and from_pod on the pod\'s port, as the kernel lists them, nothing stale', async () => {
  const r = await json<{ filters: Array<{ ifname: string; hook: string; role: string; name: string; progId: number; tag: string; attach: string }>; findings: unknown[]; pins: Array<{ name: string }> }>(h1, ['bpf', 'programs']);
  assert.deepEqual(r.findings, []);
  const tcx = tcxSupported();
  const links = tcx ? ['link_overlay_egress', 'link_overlay_ingress', 'link_underlay_decap'] : [];
  // from_pod's link on h1's pod's port is pinned by the port's ifindex.
  const ports = r.pins.map((p) => p.name).filter((n) => /^link_from_pod_\d+$/.test(n));
  assert.equal(ports.length, tcx ? 1 : 0, r.pins.map((p) => p.name).join(', '));
  assert.deepEqual(r.pins.map((p) => p.name).filter((n) => !ports.includes(n)), [...links, 'weft_config', 'weft_drops', 'weft_events', 'weft_monitor', 'weft_peers', 'weft_stats']);
  const kernel = withNetns(`/run/netns/${h1.host.name}`, () => {
    const nl = NetlinkHandle.open();
    try {
      // And from_pod on the port of h1's pod (vp1).
      return ([['eth0', 'ingress'], ['weft.vxlan', 'ingress'], ['weft.vxlan', 'egress'], ['vp1', 'ingress']] as const).map(([dev, hook]) => {
        const ix = nl.link(dev)!.index;
        // With tcx, a link per hook and no classic filter; without, one filter.
        const ids = tcx ? tcxPrograms(ix, hook).map((e) => e.progId) : tcFilters(ix, hook).map((f) => f.progId!);
        assert.equal(ids.length, 1, `${dev} ${hook}: one program`);
        if (tcx) assert.deepEqual(tcFilters(ix, hook), [], `${dev} ${hook}: no classic filter beside the link`);
        const info = progInfo(ids[0]);
        return [dev, hook, info.name, ids[0], info.tag];
      });
    } finally {
      nl.close();
    }
  });
  assert.deepEqual(r.filters.map((f) => [f.ifname, f.hook, f.name, f.progId, f.tag]).sort(), kernel.sort());
  assert.deepEqual(r.filters.map((f) => [f.name, f.role, f.attach]).sort(), [['from_pod', null], ['overlay_egress', 'overlay'], ['overlay_ingress', 'overlay'], ['underlay_decap', 'underlay']].map((x) => [...x, tcx ? 'tcx' : 'tc']));
});

function counter(j: Counters, direction: string, encap: string): number {
  return j.counters.find((r) => r.direction === direction && r.encap === encap)!.packets;
}

test('counters rise after pings: vxlan to h3, direct to h2, both ways', async () => {
  const before = await json<Counters>(h1, ['bpf', 'counters']);
  const pod = h1.pods[0].ns;
  await pod.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', h3.pods[0].ip]);
  await pod.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', h2.pods[0].ip]);
  const after = await json<Counters>(h1, ['bpf', 'counters']);
  for (const [dir, encap] of [['egress', 'vxlan'], ['ingress', 'vxlan'], ['egress', 'direct'], ['ingress', 'direct']]) {
    const rise = counter(after, dir, encap) - counter(before, dir, encap);
    assert.ok(rise >= 3, `${dir} ${encap}: +${rise} after 3 echoes and their replies`);
  }
});

test('drops rise after traffic to a removed peer; status and lookup follow; the bpf commands work with the agent stopped', async () => {
  // h3 leaves: its agent stops (the lease stays), then its lease is deleted.
  await h3.agent!.stop();
  await c.etcd.etcdctl(['del', `${c.prefix}/subnets/${subnetOf(h3).replace('/', '-')}`]);
  await h1.agent!.waitForLog('h3 removed', (l) => l.msg === 'peer removed' && l.subnet === subnetOf(h3));
  await waitFor('h3 to leave h1\'s map', () => !kernelPeers(h1).includes(subnetOf(h3)));
  const s = await json<{ peers: { inView: number; inMaps: number } }>(h1, ['status']);
  assert.deepEqual([s.peers.inView, s.peers.inMaps], [1, 1]);
  const peers = await json<{ peers: Peer[] }>(h1, ['bpf', 'peers']);
  assert.equal(peers.peers.some((p) => p.subnet === subnetOf(h3)), false);
  const look = await json<{ action: string; dropReason: string }>(h1, ['bpf', 'lookup', h3.pods[0].ip]);
  assert.deepEqual([look.action, look.dropReason], ['drop', 'no_peer']);

  const noPeer = async () => (await json<Drops>(h1, ['bpf', 'drops'])).drops.find((d) => d.reason === 'no_peer')!.packets;
  const before = await noPeer();
  const r = await h1.pods[0].ns.exec(['ping', '-c', '3', '-i', '0.2', '-W', '1', h3.pods[0].ip], { allowFail: true });
  assert.notEqual(r.code, 0, 'no route to a departed peer');
  assert.ok((await noPeer()) - before >= 3, 'each echo to the departed peer is dropped as no_peer');

  // With h1's agent stopped the maps stay pinned: bpf answers, status says there is no agent.
  await h1.agent!.stop();
  const stopped = await json<{ peers: Peer[] }>(h1, ['bpf', 'peers']);
  assert.deepEqual(stopped.peers.map((p) => p.subnet).sort(), [subnetOf(h1), subnetOf(h2)].sort());
  const st = await weft(h1, ['status', '--status-socket', statusSocket(h1.host)]);
  assert.equal(st.code, 3);
  assert.match(st.stderr, /no weft agent is running \(nothing listens on/);
});
