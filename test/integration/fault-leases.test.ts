// Leases nobody should trust: anyone with write access to the prefix can put
// a lease, and a weft host must not let one cut it off. Real agents (h1 on the
// netlink dataplane, h2 on eBPF) see a table of malicious leases while they
// run, then again in the initial list after a restart; each is refused and
// logged, nothing is programmed for it, and both hosts still reach etcd and
// each other's pods.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, reach, subnetOf, type ClusterNode } from '../../lab/cluster.js';
import { CLI, startAgent, statusSocket, type LogLine } from '../../lab/agent.js';
import { waitFor } from '../../lab/exec.js';
import { openPinnedMaps } from 'weft/dataplane/ebpf/loader.js';
import { decodePeer } from 'weft/dataplane/ebpf/maps.js';

const NETWORK = '10.244.0.0/16';
let c: Cluster;
let h1: ClusterNode;
let h2: ClusterNode;

interface Bad {
  /** The key's last element. */
  key: string;
  value: string;
  /** The subnet that must not be programmed anywhere. */
  subnet: string;
  /** What the refusal says. */
  why: RegExp;
}

const vxlan = (ip: string, mac = '02:00:00:00:aa:01'): string => JSON.stringify({ PublicIP: ip, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: mac } });

/** Leases that are wrong whoever reads them; the table below adds the ones that depend on the reader. */
const BEFORE: Bad[] = [
  { key: '10.244.90.0-24', value: vxlan('127.0.0.1'), subnet: '10.244.90.0/24', why: /PublicIP 127\.0\.0\.1 is a loopback address/ },
  { key: '10.99.0.0-24', value: vxlan('192.0.2.50'), subnet: '10.99.0.0/24', why: /outside the Network 10\.244\.0\.0\/16/ },
  { key: '0.0.0.0-0', value: vxlan('192.0.2.50'), subnet: '0.0.0.0/0', why: /outside the Network|not a \/24/ },
  { key: '10.244.0.0-16', value: vxlan('192.0.2.50'), subnet: '10.244.0.0/16', why: /not a \/24/ },
  { key: '192.0.2.0-24', value: vxlan('192.0.2.50'), subnet: '192.0.2.0/24', why: /outside the Network/ },
  { key: '192.0.2.1-32', value: vxlan('192.0.2.50'), subnet: '192.0.2.1/32', why: /outside the Network/ },
  { key: '10.244.91.0-24', value: vxlan('0.0.0.0'), subnet: '10.244.91.0/24', why: /PublicIP 0\.0\.0\.0 is the unspecified address/ },
  { key: '10.244.92.0-24', value: vxlan('224.0.0.5'), subnet: '10.244.92.0/24', why: /PublicIP 224\.0\.0\.5 is a multicast address/ },
  { key: '10.244.93.0-24', value: vxlan('255.255.255.255'), subnet: '10.244.93.0/24', why: /PublicIP 255\.255\.255\.255 is the broadcast address/ },
  { key: '10.244.94.0-24', value: vxlan('169.254.1.1'), subnet: '10.244.94.0/24', why: /PublicIP 169\.254\.1\.1 is a link-local address/ },
  { key: '10.244.95.0-24', value: vxlan('10.244.5.5'), subnet: '10.244.95.0/24', why: /PublicIP 10\.244\.5\.5 is inside the Network/ },
  {
    key: '10.244.96.0-24',
    value: JSON.stringify({ PublicIP: '192.0.2.50', PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: '02:00:00:00:aa:01' }, Padding: 'x'.repeat(70_000) }),
    subnet: '10.244.96.0/24',
    why: /over 64 KiB/,
  },
];

before(async () => {
  c = await Cluster.start({
    // The hosts lease below 10.244.64.0, so that the table's subnets (10.244.90.0 and up) are never their own.
    config: JSON.stringify({ Network: NETWORK, SubnetMax: '10.244.63.0', Backend: { Type: 'vxlan' } }),
    hosts: [
      { name: 'h1', octet: 11, dataplane: 'netlink' },
      { name: 'h2', octet: 12, dataplane: 'ebpf' },
    ],
  });
  [h1, h2] = [c.node('h1'), c.node('h2')];
});
after(() => c?.destroy());

const put = (key: string, value: string): Promise<string> => c.etcd.etcdctl(['put', `${c.prefix}/subnets/${key}`, '--', value]);

/** The subnets h1's netlink dataplane routes (proto 87) and h2's eBPF map holds. */
async function programmed(): Promise<{ routes: string[]; map: string[] }> {
  const routes = (await h1.host.ip('route'))
    .split('\n')
    .filter((l) => / proto 87( |$)/.test(l))
    .map((l) => l.split(' ')[0]);
  // The pinned map itself (the test process shares the host's bpffs), as weft bpf peers reads it.
  const maps = openPinnedMaps(h2.host.pinDir);
  let map: string[];
  try {
    map = maps.peers.entries().map(([k, v]) => decodePeer(k, v)).filter((p) => !p.local).map((p) => p.route.subnet.toString());
  } finally {
    Object.values(maps).forEach((m) => m.close());
  }
  return { routes: routes.sort(), map: map.sort() };
}

/** `ip route` prints a /32 without its length and the default route as "default". */
function norm(subnet: string): string {
  if (subnet === '0.0.0.0/0') return 'default';
  return subnet.endsWith('/32') ? subnet.slice(0, -3) : subnet;
}

async function restartAgents(): Promise<void> {
  await Promise.all([h1, h2].map((n) => n.agent!.stop()));
  for (const n of [h1, h2]) {
    n.agent = startAgent(n.host, { etcdEndpoint: c.etcd.endpoint, dataplane: n.spec.dataplane, extra: ['--etcd-prefix', c.prefix] });
  }
  await Promise.all([h1, h2].map((n) => n.agent!.waitForMsg('agent ready', 30_000)));
}

async function refusalsLogged(table: Array<Bad & { refusedBy: ClusterNode[] }>): Promise<void> {
  for (const b of table) {
    for (const n of b.refusedBy) {
      const says = (l: LogLine): boolean =>
        (l.msg === 'lease refused' || l.msg === 'skipping malformed lease written by someone else') && String(l.key).endsWith(`/subnets/${b.key}`) && b.why.test(String(l.reason));
      await n.agent!.waitForLog(`the refusal of ${b.key}`, says, 10_000);
    }
  }
}

test('malicious leases are refused and logged, nothing is programmed for them, and the hosts still reach etcd and each other', async () => {
  const own1 = subnetOf(h1);
  const own2 = subnetOf(h2);
  const half = own1.replace('.0/24', '.128/25');
  const table = [
    ...BEFORE.map((b) => ({ ...b, refusedBy: [h1, h2] })),
    // A /25 inside h1's own /24.
    { key: half.replace('/', '-'), value: vxlan('192.0.2.50'), subnet: half, why: /not a \/24/, refusedBy: [h1, h2] },
    // h1's own address as another subnet's PublicIP: h1 refuses it; for h2 it is a second lease of h1's (a stale one, say).
    { key: '10.244.97.0-24', value: vxlan(h1.host.address), subnet: '10.244.97.0/24', why: /PublicIP 192\.0\.2\.11 is this host's own address/, refusedBy: [h1] },
    // A second key for h2's subnet (dual-stack form): h2, its first holder, keeps it.
    { key: `${own2.replace('/', '-')}&fd00:10:244:99::-64`, value: vxlan('192.0.2.51', '02:00:00:00:aa:51'), subnet: own2, why: /is held by 192\.0\.2\.12|overlaps our subnet/, refusedBy: [h1, h2] },
  ];
  for (const b of table) await put(b.key, b.value);
  await refusalsLogged(table);

  const check = async (when: string): Promise<void> => {
    const { routes, map } = await programmed();
    assert.deepEqual(routes, [own2], `${when}: h1 routes h2's subnet and nothing else: ${routes.join(', ')}`);
    assert.deepEqual(map, [own1, '10.244.97.0/24'].sort(), `${when}: h2 maps h1's subnet (and h1's second lease) only: ${map.join(', ')}`);
    for (const b of table) if (b.subnet !== own2) assert.ok(!routes.includes(norm(b.subnet)), `${when}: h1 routes ${b.subnet}`);
    // h2's real lease is routed via h2: the dual-stack newcomer did not take it.
    assert.match(await h1.host.ip('route', 'show', own2), new RegExp(`via ${own2.split('/')[0].replace(/\./g, '\\.')} dev flannel\\.1`));
    // The underlay's connected route and the default route are intact; etcd and the peers are reachable.
    assert.match(await h1.host.ip('route', 'show', '192.0.2.0/24'), /dev eth0 proto kernel scope link src 192\.0\.2\.11/);
    assert.match(await h1.host.ip('route', 'show', 'default'), /default via 192\.0\.2\.1 dev eth0/);
    for (const n of [h1, h2]) {
      const health = await n.host.exec(['etcdctl', '--endpoints', c.etcd.endpoint, '--command-timeout=3s', 'endpoint', 'health'], { env: { ...process.env, ETCDCTL_API: '3' }, allowFail: true });
      assert.match(health.stdout + health.stderr, /is healthy/, `${when}: ${n.spec.name} reaches etcd`);
    }
    for (const [a, b] of [[h1, h2], [h2, h1]]) {
      const r = await reach(a.pods[0].ns, b.pods[0].ip, 'icmp');
      assert.ok(r.ok, `${when}: ${a.spec.name}'s pod reaches ${b.spec.name}'s: ${r.detail}`);
    }
  };
  await check('while running');

  // Counted: the status says how many leases were refused.
  const st = await h1.host.exec([process.execPath, CLI, 'status', '--status-socket', statusSocket(h1.host), '-o', 'json']);
  const peers = (JSON.parse(st.stdout) as { peers: { routed: number; skipped: number } }).peers;
  assert.equal(peers.routed, 1);
  assert.equal(peers.skipped, table.length - 1, 'every refused lease but the malformed one (not a lease at all) is counted as skipped');

  // The same table met in the initial list of a restarted agent.
  await restartAgents();
  await refusalsLogged(table);
  await check('after a restart');

  // A sane lease put afterwards is programmed on both: the watch and the dataplanes carry on.
  await put('10.244.98.0-24', vxlan('192.0.2.60', '02:00:00:00:aa:60'));
  await waitFor('h1 to route the sane lease', async () => (await programmed()).routes.includes('10.244.98.0/24'), 10_000);
  await waitFor('h2 to map the sane lease', async () => (await programmed()).map.includes('10.244.98.0/24'), 10_000);
});

test('a sane lease over a network the host holds is refused by both dataplanes\' guard', async () => {
  // A bridge with an address inside the Network (a stale docker0 of another subnet, say): a peer route there would shadow it.
  for (const n of [h1, h2]) {
    await n.host.ip('link', 'add', 'br9', 'type', 'bridge');
    await n.host.ip('addr', 'add', '10.244.77.1/24', 'dev', 'br9');
    await n.host.ip('link', 'set', 'br9', 'up');
  }
  try {
    const marks = [h1, h2].map((n) => n.agent!.lines.length);
    await put('10.244.77.0-24', vxlan('192.0.2.77', '02:00:00:00:aa:77'));
    for (const [i, n] of [h1, h2].entries()) {
      await n.agent!.waitForLog('the guard\'s refusal', (l) => /refuses a peer route that would shadow the host's own/.test(l.msg) && l.subnet === '10.244.77.0/24' && /10\.244\.77\.0\/24, the connected network of br9|10\.244\.77\.1, an address of br9/.test(String(l.reason)), 10_000, marks[i]);
    }
    // A sane lease put after it is programmed: the events before it were handled.
    await put('10.244.78.0-24', vxlan('192.0.2.78', '02:00:00:00:aa:78'));
    await waitFor('both to program the next lease', async () => {
      const p = await programmed();
      return p.routes.includes('10.244.78.0/24') && p.map.includes('10.244.78.0/24');
    }, 10_000);
    const { routes, map } = await programmed();
    assert.ok(!routes.includes('10.244.77.0/24') && !map.includes('10.244.77.0/24'), `${routes} / ${map}`);
    assert.match(await h1.host.ip('route', 'show', '10.244.77.0/24'), /dev br9 proto kernel scope link src 10\.244\.77\.1/);
  } finally {
    for (const n of [h1, h2]) await n.host.ip('link', 'del', 'br9');
  }
});

test('a weft route left shadowing the underlay (an older agent\'s) is removed by the reconcile, and the connected route put back', async () => {
  // What an agent without the guard did with a lease named after the underlay's subnet: the connected route replaced.
  const mark = h1.agent!.lines.length;
  await h1.host.ip('route', 'replace', '192.0.2.0/24', 'via', '192.0.2.0', 'dev', 'flannel.1', 'onlink', 'proto', '87');
  await h1.agent!.waitForLog('the repair', (l) => /repaired a weft route that shadowed the host's own/.test(l.msg), 15_000, mark);
  await waitFor('the connected route back', async () => /dev eth0 proto kernel scope link src 192\.0\.2\.11/.test(await h1.host.ip('route', 'show', '192.0.2.0/24')), 5000);
  assert.doesNotMatch(await h1.host.ip('route', 'show', '192.0.2.0/24'), /flannel\.1/);
  const r = await reach(h1.pods[0].ns, h2.pods[0].ip, 'icmp');
  assert.ok(r.ok, `h1's pod reaches h2's after the repair: ${r.detail}`);
});
