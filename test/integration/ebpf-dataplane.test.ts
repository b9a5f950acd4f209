// The eBPF dataplane end to end: real agents in lab hosts program real TC
// programs and pinned maps; pods on docker-style bridges built from subnet.env
// talk across hosts with real packets, in every backend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, connectivity, echoServer, failures, reach, subnetOf, type ClusterNode, type Pod } from '../../lab/cluster.js';
import { startAgent, CLI } from '../../lab/agent.js';
import { waitFor } from '../../lab/exec.js';
import { withNetns } from 'weft/native/addon.js';
import { tcFilters, tcxPrograms, tcxSupported, type TcHook } from 'weft/native/bpf.js';
import { NetlinkHandle } from 'weft/native/netlink.js';
import { openPinnedMaps } from 'weft/dataplane/ebpf/loader.js';
import { PINNED_MAPS, decodeCounter, decodePeer, dropKey, type DecodedPeer } from 'weft/dataplane/ebpf/maps.js';
import { PROBE } from '../../lab/probe.js';
import { rxStats, snmp, udpBurst } from '../bpf/traffic.js';

const config = (backend: string, extra: Record<string, unknown> = {}): string => JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: backend, ...extra } });

function peersOf(node: ClusterNode): Map<string, DecodedPeer> {
  const maps = openPinnedMaps(node.host.pinDir);
  try {
    return new Map(maps.peers.entries().map(([k, v]) => {
      const d = decodePeer(k, v);
      return [d.route.subnet.toString(), d];
    }));
  } finally {
    Object.values(maps).forEach((m) => m.close());
  }
}

function noPeerDrops(node: ClusterNode): bigint {
  const maps = openPinnedMaps(node.host.pinDir);
  try {
    return decodeCounter(maps.drops.lookup(dropKey('no_peer'))!).packets;
  } finally {
    Object.values(maps).forEach((m) => m.close());
  }
}

function filtersOn(node: ClusterNode, dev: string, hook: TcHook) {
  return withNetns(`/run/netns/${node.host.name}`, () => {
    const nl = NetlinkHandle.open();
    try {
      const link = nl.link(dev);
      return link ? tcFilters(link.index, hook) : [];
    } finally {
      nl.close();
    }
  });
}

/** Programs on a hook, tcx links and classic filters alike: "tcx <link id>" or "tc <handle>". */
function programsOn(node: ClusterNode, dev: string, hook: TcHook): string[] {
  return withNetns(`/run/netns/${node.host.name}`, () => {
    const nl = NetlinkHandle.open();
    try {
      const link = nl.link(dev);
      if (!link) return [];
      const tcx = tcxSupported() ? tcxPrograms(link.index, hook).map((e) => `tcx ${e.linkId}`) : [];
      return [...tcx, ...tcFilters(link.index, hook).map((f) => `tc ${f.handle}`)];
    } finally {
      nl.close();
    }
  });
}

for (const backend of ['vxlan', 'host-gw', 'ipip', 'udp']) {
  test(`${backend}: pods, hosts and host processes reach each other across three hosts`, async (t) => {
    // host-gw needs one L2 segment; the tunnels also cross the lab router to h3.
    const far = backend === 'host-gw' ? 0 : 1;
    const c = await Cluster.start({
      config: config(backend),
      dataplane: 'ebpf',
      hosts: [{ name: 'h1', octet: 11 }, { name: 'h2', octet: 12 }, { name: 'h3', octet: 13, segment: far }],
    });
    t.after(() => c.destroy());
    await c.addPod(c.node('h1'));
    const results = await connectivity(c);
    assert.equal(failures(results), '', `${results.filter((r) => !r.ok).length} of ${results.length} checks failed`);
    // The pods' MTU is FLANNEL_MTU: a full-size packet with DF passes, one byte more does not leave the pod.
    const [a, b] = [c.node('h1').pods[0], c.node('h2').pods[0]];
    const mtu = Number(c.node('h1').env.FLANNEL_MTU);
    await a.ns.exec(['ping', '-c', '1', '-W', '2', '-M', 'do', '-s', String(mtu - 28), b.ip]);
    const tooBig = await a.ns.exec(['ping', '-c', '1', '-W', '1', '-M', 'do', '-s', String(mtu - 27), b.ip], { allowFail: true });
    assert.notEqual(tooBig.code, 0);
    // A TCP stream through the overlay negotiates its MSS through it and does not stall.
    const rx0 = await rxStats(b.ns, 'eth0');
    const h2 = c.node('h2').host;
    const stripped = backend === 'ipip' || backend === 'udp';
    const dev0 = stripped ? await rxStats(h2, 'weft0') : { packets: 0, bytes: 0 };
    const srv = await b.ns.iperf3Server();
    const r = await a.ns.exec(['iperf3', '-c', b.ip, '-t', '2', '-J'], { timeoutMs: 20_000 });
    srv.kill('SIGKILL');
    const j = JSON.parse(r.stdout) as { end: { sum_received: { bytes: number } }; intervals: Array<{ sum: { bytes: number } }> };
    assert.ok(j.end.sum_received.bytes > 0);
    assert.ok(j.intervals.every((i) => i.sum.bytes > 0), 'no interval without traffic');
    const rx1 = await rxStats(b.ns, 'eth0');
    // TCP aggregates reach the pod whole: no software segmentation on the way (ipip's and udp's
    // decapsulated aggregates would be segmented by a Linux bridge: bpf/include/handoff.h, forward.h).
    const avg = (rx1.bytes - rx0.bytes) / (rx1.packets - rx0.packets);
    assert.ok(avg > mtu + 14, `the pod received ${Math.round(avg)} bytes a frame on average, no more than a full frame (${mtu + 14}): aggregates were segmented`);
    // ipip and udp: the programs strip the stream's packets for a pod themselves (bpf/include/decap.h); the
    // overlay device receives none of them (a connection's first packets, its SYN, go the kernel's way).
    if (stripped) {
      const viaDevice = (await rxStats(h2, 'weft0')).packets - dev0.packets;
      assert.ok(viaDevice < 20, `weft0 on h2 received ${viaDevice} packets of the stream; the programs should have taken them to the pod`);
    }
    // Peer traffic for a pod goes straight to its port (bpf/include/forward.h): h2's stack forwards none of it.
    const fwd = await snmp(h2, 'Ip', 'ForwDatagrams');
    assert.equal(await udpBurst(a.ns, b.ns, b.ip, 200), 200, 'every datagram reached the pod');
    const byStack = (await snmp(h2, 'Ip', 'ForwDatagrams')) - fwd;
    assert.ok(byStack < 100, `h2's stack forwarded ${byStack} of 200 datagrams; the programs should have`);
    // A datagram that arrives with TTL 1 is the stack's to answer: it never reaches the pod, and h2 says why.
    const exceeded = await snmp(h2, 'Icmp', 'OutTimeExcds');
    assert.equal(await udpBurst(a.ns, b.ns, b.ip, 3, { ttl: 2 }), 0, 'no datagram sent with TTL 2 reaches a pod two hops away');
    assert.ok((await snmp(h2, 'Icmp', 'OutTimeExcds')) > exceeded, 'h2 sent time exceeded');
    if (backend === 'udp') {
      // The udp backend's overlay device receives: a collect_md vxlan device on the backend's port.
      const [dev] = JSON.parse(await h2.ip('-d', '-j', 'link', 'show', 'weft0')) as Array<{ linkinfo: { info_kind: string; info_data: { external: boolean; port: number } } }>;
      assert.deepEqual([dev.linkinfo.info_kind, dev.linkinfo.info_data.external, dev.linkinfo.info_data.port], ['vxlan', true, 8285]);
    }
  });
}

const SERVICE_IP = '10.96.0.10';

/**
 * A kube-proxy-style service on `via` (DNAT of SERVICE_IP:80 to the pod b:7777), and one TCP exchange
 * from pod a through it: the reply reaches a as from the service address only if via's conntrack saw both ways.
 */
async function throughService(via: ClusterNode, a: Pod, b: Pod): Promise<void> {
  await via.host.exec(['iptables', '-t', 'nat', '-A', 'PREROUTING', '-d', SERVICE_IP, '-p', 'tcp', '--dport', '80', '-j', 'DNAT', '--to-destination', `${b.ip}:7777`]);
  const srv = await echoServer(b.ns, 'tcp', 7777);
  try {
    const r = await a.ns.exec([process.execPath, PROBE, 'send', 'tcp', SERVICE_IP, '80', 'through-a-service'], { allowFail: true, timeoutMs: 10_000 });
    assert.equal(r.code, 0, `TCP through the service address failed: ${r.stderr}`);
    assert.equal(r.stdout, 'through-a-service');
  } finally {
    srv.kill('SIGKILL');
  }
}

for (const backend of ['vxlan', 'host-gw']) {
  test(`${backend}: where conntrack follows pod traffic (kube-proxy's DNAT and INVALID drop), every flow stays on the stack's path, both ways`, async (t) => {
    const c = await Cluster.start({ config: config(backend), dataplane: 'ebpf', hosts: [{ name: 'h1', octet: 11 }, { name: 'h2', octet: 12 }] });
    t.after(() => c.destroy());
    const [a, b] = [c.node('h1').pods[0], c.node('h2').pods[0]];
    for (const n of c.nodes) await n.host.exec(['iptables', '-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', 'DROP']);
    // The reply from b:7777 must reach a as from the service address: only h1's conntrack can make it so.
    await throughService(c.node('h1'), a, b);
    // Pod to pod, each side starting: a packet conntrack missed would make the next one INVALID, and dropped.
    for (const [from, to] of [[a, b], [b, a]]) {
      const one = await reach(from.ns, to.ip, 'tcp', to.ns);
      assert.ok(one.ok, `tcp ${from.ip} -> ${to.ip}: ${one.detail}`);
    }
    const iperf = await b.ns.iperf3Server();
    const j = JSON.parse((await a.ns.exec(['iperf3', '-c', b.ip, '-t', '1', '-J'], { timeoutMs: 20_000 })).stdout) as { end: { sum_received: { bytes: number } } };
    iperf.kill('SIGKILL');
    assert.ok(j.end.sum_received.bytes > 1_000_000, `a TCP stream through INVALID-dropping hosts moved ${j.end.sum_received.bytes} bytes`);
  });
}

test('vxlan DirectRouting: a peer on our segment is forwarded directly, a routed one tunnelled', async (t) => {
  const c = await Cluster.start({
    config: config('vxlan', { DirectRouting: true }),
    dataplane: 'ebpf',
    hosts: [{ name: 'h1', octet: 11 }, { name: 'h2', octet: 12 }, { name: 'h3', octet: 13, segment: 1 }],
  });
  t.after(() => c.destroy());
  const peers = await waitFor('both peers in h1\'s map', () => {
    const p = peersOf(c.node('h1'));
    return p.has(subnetOf(c.node('h2'))) && p.has(subnetOf(c.node('h3'))) && p;
  });
  const h2 = peers.get(subnetOf(c.node('h2')))!;
  const h3 = peers.get(subnetOf(c.node('h3')))!;
  assert.equal(h2.route.directRouting, true);
  assert.equal(h2.route.publicIP.toString(), '192.0.2.12');
  assert.equal(h3.route.directRouting, false);
  assert.equal(h3.route.encap, 'vxlan');
  assert.equal(failures(await connectivity(c, ['icmp', 'tcp'])), '');
});

test('host-gw refuses a peer that is not on our L2 segment, and says why', async (t) => {
  const c = await Cluster.start({ config: config('host-gw'), dataplane: 'ebpf', hosts: [{ name: 'h1', octet: 11 }, { name: 'h3', octet: 13, segment: 1 }] });
  t.after(() => c.destroy());
  const log = await c.node('h1').agent!.waitForLog('the refusal', (l) => /cannot reach peer 198\.51\.100\.13/.test(l.msg));
  assert.match(log.msg, /not on our L2 segment.*use vxlan/);
  assert.deepEqual([...peersOf(c.node('h1')).values()].map((p) => p.local), [true], 'only our own subnet is in the map');
});

test('a peer that appears, changes, or leaves is reflected in the map; a departed peer\'s traffic is dropped and counted', async (t) => {
  const c = await Cluster.start({ config: config('vxlan'), dataplane: 'ebpf', hosts: [{ name: 'h1', octet: 11 }, { name: 'h2', octet: 12 }] });
  t.after(() => c.destroy());
  const h1 = c.node('h1');
  const key = `${c.prefix}/subnets/10.244.250.0-24`;
  const lease = (ip: string, mac: string): string => JSON.stringify({ PublicIP: ip, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: mac } });
  await c.etcd.etcdctl(['put', key, lease('192.0.2.250', '02:00:00:00:02:50')]);
  await waitFor('the new peer in the map', () => peersOf(h1).get('10.244.250.0/24')?.route.vtepMAC === '02:00:00:00:02:50');
  await c.etcd.etcdctl(['put', key, lease('192.0.2.251', '02:00:00:00:02:51')]);
  await waitFor('the changed peer in the map', () => {
    const p = peersOf(h1).get('10.244.250.0/24')?.route;
    return p?.publicIP.toString() === '192.0.2.251' && p.vtepMAC === '02:00:00:00:02:51';
  });
  await c.etcd.etcdctl(['del', key]);
  await waitFor('the peer gone from the map', () => !peersOf(h1).has('10.244.250.0/24'));
  const before = noPeerDrops(h1);
  await h1.pods[0].ns.exec(['ping', '-c', '3', '-i', '0.2', '-W', '1', '10.244.250.9'], { allowFail: true });
  assert.ok(noPeerDrops(h1) >= before + 3n, 'each packet to the departed peer counted as no_peer');
});

test('kill -9 during iperf3 loses no connection; the restarted agent adopts maps and programs, one filter per hook', async (t) => {
  const c = await Cluster.start({ config: config('vxlan'), dataplane: 'ebpf', hosts: [{ name: 'h1', octet: 11 }, { name: 'h2', octet: 12 }] });
  t.after(() => c.destroy());
  const [h1, h2] = [c.node('h1'), c.node('h2')];
  const mapId = openPinnedMaps(h1.host.pinDir).peers.id;
  const hooks = [['eth0', 'ingress'], ['weft.vxlan', 'egress'], ['weft.vxlan', 'ingress']] as const;
  const attached = hooks.map(([dev, hook]) => programsOn(h1, dev, hook));
  const srv = await h2.pods[0].ns.iperf3Server();
  const received = async (): Promise<number> => (await rxStats(h2.pods[0].ns, 'eth0')).bytes;
  const rx0 = await received();
  const client = h1.pods[0].ns.exec(['iperf3', '-c', h2.pods[0].ip, '-t', '6', '-i', '0.5', '-J'], { timeoutMs: 30_000 });
  // The agent dies while the stream runs, and the stream goes on without it before it is back.
  const streamStart = Date.now();
  await waitFor('the stream to be moving data', async () => (await received()) - rx0 > 10_000_000, 10_000, 20);
  await h1.agent!.kill9();
  const killedAt = Date.now() - streamStart;
  const rxKilled = await received();
  await waitFor('the stream to move data with the agent dead', async () => (await received()) - rxKilled > 10_000_000, 10_000, 20);
  const restartedAt = Date.now() - streamStart;
  h1.agent = startAgent(h1.host, { etcdEndpoint: c.etcd.endpoint, dataplane: 'ebpf' });
  await h1.agent.waitForMsg('agent ready', 20_000);
  const readyAt = Date.now() - streamStart;
  const j = JSON.parse((await client).stdout) as { end: { sum_received: { bytes: number } }; intervals: Array<{ sum: { start: number; bytes: number; retransmits?: number } }> };
  srv.kill('SIGKILL');
  assert.ok(j.end.sum_received.bytes > 0);
  const empty = j.intervals.filter((i) => i.sum.bytes === 0).length;
  const seen = j.intervals.map((i) => `${i.sum.start.toFixed(1)} s: ${i.sum.bytes} B, ${i.sum.retransmits ?? '?'} retransmits`).join('; ');
  assert.equal(empty, 0, `every half second of the stream moved data (${seen}; killed at ${killedAt} ms, restarted at ${restartedAt} ms, ready at ${readyAt} ms from the stream's start)`);
  assert.equal(openPinnedMaps(h1.host.pinDir).peers.id, mapId, 'the pinned map was adopted, not recreated');
  // One program per hook, in the same slot: the same tcx link (its program swapped), or the same filter handle.
  assert.deepEqual(hooks.map(([dev, hook]) => programsOn(h1, dev, hook)), attached);
  for (const a of attached) assert.equal(a.length, 1);
  assert.equal(failures(await connectivity(c, ['icmp'])), '');
});

test('weft uninstall removes every filter, pin and device weft created, and nothing else', async (t) => {
  const c = await Cluster.start({ config: config('ipip'), dataplane: 'ebpf', hosts: [{ name: 'h1', octet: 11 }, { name: 'h2', octet: 12 }] });
  t.after(() => c.destroy());
  const h1 = c.node('h1');
  assert.equal(await h1.agent!.stop(), 0);
  const routesBefore = (await h1.host.ip('-j', 'route')).length;
  assert.ok(routesBefore > 0);
  const r = await h1.host.exec([process.execPath, CLI, 'uninstall', '--bpf-pin-dir', h1.host.pinDir, '-o', 'json']);
  const report = JSON.parse(r.stdout) as { filters: string[]; links: string[]; devices: string[]; pins: string[] };
  assert.deepEqual(report.devices.sort(), ['weft0']);
  const pinnedMaps = report.pins.map((p) => p.split('/').pop()!).filter((n) => (PINNED_MAPS as readonly string[]).includes(n));
  assert.deepEqual(pinnedMaps.sort(), [...PINNED_MAPS].sort());
  if (tcxSupported()) {
    // from_pod on the pod's port (vp1) too.
    assert.deepEqual(report.links.sort(), ['eth0 ingress (underlay_decap)', 'vp1 ingress (from_pod)', 'weft0 egress (overlay_egress)', 'weft0 ingress (overlay_ingress)']);
    assert.deepEqual(report.filters, []);
    assert.equal(report.pins.length, PINNED_MAPS.length + 4, 'the pinned maps and four links');
  } else {
    assert.deepEqual(report.filters.sort(), ['eth0 ingress', 'vp1 ingress', 'weft0 egress', 'weft0 ingress']);
    assert.equal(report.pins.length, PINNED_MAPS.length);
  }
  assert.deepEqual(programsOn(h1, 'eth0', 'ingress'), []);
  assert.doesNotMatch(await h1.host.exec(['tc', 'qdisc', 'show', 'dev', 'eth0']).then((x) => x.stdout), /clsact/);
  assert.doesNotMatch(await h1.host.ip('link'), /weft/);
  const routes = await h1.host.ip('route');
  assert.match(routes, /default via 192\.0\.2\.1 dev eth0/);
  assert.match(routes, /docker0/, 'the bridge and its route are not weft\'s');
  await h1.host.exec(['ping', '-c', '1', '-W', '2', '192.0.2.12']);
  const again = await h1.host.exec([process.execPath, CLI, 'uninstall', '--bpf-pin-dir', h1.host.pinDir]);
  assert.match(again.stdout, /nothing of weft was found/);
});

test('vxlan: a weft host and a flannel host (kernel vxlan by plain ip commands) talk both ways', async (t) => {
  const c = await Cluster.start({
    config: config('vxlan'),
    dataplane: 'ebpf',
    hosts: [{ name: 'h1', octet: 11 }, { name: 'f2', octet: 12, kind: 'flannel', subnet: '10.244.200.0/24' }, { name: 'h3', octet: 13, segment: 1 }],
  });
  t.after(() => c.destroy());
  assert.equal(failures(await connectivity(c)), '');
});

test('WEFT_EBPF_GATEWAY=1: pods\' traffic to peers leaves from the gateway device, past the host\'s forward path; translated flows and TTL expiry do not', async (t) => {
  // The agents inherit the environment they are started with.
  process.env.WEFT_EBPF_GATEWAY = '1';
  let c: Cluster;
  try {
    c = await Cluster.start({ config: config('vxlan'), dataplane: 'ebpf', hosts: [{ name: 'h1', octet: 11 }, { name: 'h2', octet: 12 }] });
  } finally {
    delete process.env.WEFT_EBPF_GATEWAY;
  }
  t.after(() => c.destroy());
  const [h1, h2] = [c.node('h1'), c.node('h2')];
  const [a, b] = [h1.pods[0], h2.pods[0]];
  // The bridge appeared after the agent started: the agent found it by its address and hooked it.
  await waitFor('gateway_ingress on docker0', () => filtersOn(h1, 'docker0', 'ingress').some((f) => /^gateway_ingress/.test(f.name ?? '')));
  await a.ns.exec(['ping', '-c', '2', '-i', '0.2', '-W', '2', b.ip]);
  const fwd = await snmp(h1.host, 'Ip', 'ForwDatagrams');
  assert.equal(await udpBurst(a.ns, b.ns, b.ip, 200), 200, 'every datagram reached the pod');
  const byStack = (await snmp(h1.host, 'Ip', 'ForwDatagrams')) - fwd;
  assert.ok(byStack < 100, `h1's stack forwarded ${byStack} of 200 datagrams; gateway_ingress should have sent them`);
  // TTL 1 leaving a pod is h1's to answer; TTL 2 reaches h2 with 1 left, and h2 answers.
  for (const [ttl, host] of [[1, h1], [2, h2]] as const) {
    const before = await snmp(host.host, 'Icmp', 'OutTimeExcds');
    assert.equal(await udpBurst(a.ns, b.ns, b.ip, 3, { ttl }), 0, `TTL ${ttl}: nothing reaches the pod`);
    assert.ok((await snmp(host.host, 'Icmp', 'OutTimeExcds')) > before, `TTL ${ttl}: ${host.spec.name} sent time exceeded`);
  }
  // bridge-nf runs the service's DNAT before this hook sees the packet: conntrack holds it, and the stack must confirm it.
  await throughService(h1, a, b);
  // weft uninstall takes the hook off the bridge it does not own, and leaves the bridge.
  assert.equal(await h1.agent!.stop(), 0);
  const u = JSON.parse((await h1.host.exec([process.execPath, CLI, 'uninstall', '--bpf-pin-dir', h1.host.pinDir, '-o', 'json'])).stdout) as { filters: string[] };
  assert.ok(u.filters.includes('docker0 ingress'), u.filters.join(', '));
  assert.equal(filtersOn(h1, 'docker0', 'ingress').length, 0);
  assert.match(await h1.host.ip('link', 'show', 'docker0'), /docker0/);
});
