// `weft monitor` against real agents (eBPF dataplane, vxlan) in lab hosts,
// with real packets: a forwarded flow's trace event, and drop events with
// the right reason and 5-tuples for traffic to a departed peer, a packet
// with a VNI the network does not use, and a packet too big for the
// underlay once encapsulated. Its JSON lines parse; a second monitor is
// refused; the table output works with the agent stopped.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { Cluster, subnetOf, type ClusterNode } from '../../lab/cluster.js';
import { CLI } from '../../lab/agent.js';
import { stopProcess, waitFor } from '../../lab/exec.js';
import type { Netns } from '../../lab/netns.js';

let c: Cluster;
let h1: ClusterNode;
let h2: ClusterNode;
let h3: ClusterNode;

before(async () => {
  c = await Cluster.start({
    config: JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } }),
    dataplane: 'ebpf',
    hosts: [{ name: 'h1', octet: 11 }, { name: 'h2', octet: 12 }, { name: 'h3', octet: 13 }],
  });
  [h1, h2, h3] = [c.node('h1'), c.node('h2'), c.node('h3')];
  await h1.agent!.waitForLog('two peers', () => h1.agent!.lines.filter((l) => l.msg === 'peer added').length >= 2, 15_000);
});
after(() => c?.destroy());

interface Tuple {
  proto: string;
  src: string;
  dst: string;
  sport: number | null;
  dport: number | null;
}

interface Event {
  time: string;
  type: 'drop' | 'trace';
  reason: string | null;
  action: string | null;
  program: string;
  direction: string;
  device: string;
  length: number;
  encap: string | null;
  vni: number | null;
  peer: string | null;
  outer: Tuple | null;
  inner: Tuple | null;
}

/** `weft monitor` running in a host's namespace, its stdout lines kept (each must be JSON with -o json). */
class Monitor {
  readonly lines: string[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  private rest = '';

  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      const parts = (this.rest + d).split('\n');
      this.rest = parts.pop() ?? '';
      this.lines.push(...parts.filter((p) => p.trim()));
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  static start(n: ClusterNode, args: string[]): Monitor {
    return new Monitor(n.host.spawn([process.execPath, CLI, 'monitor', '--bpf-pin-dir', n.host.pinDir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  listening(): Promise<unknown> {
    return waitFor('weft monitor to listen', () => {
      if (this.child.exitCode !== null) throw new Error(`weft monitor exited ${this.child.exitCode}: ${this.stderr}`);
      return this.stderr.includes('listening for');
    });
  }

  events(): Event[] {
    return this.lines.map((l) => JSON.parse(l) as Event);
  }

  /** The first event that satisfies pred, waiting for it. */
  waitEvent(what: string, pred: (e: Event) => boolean, timeoutMs = 10_000): Promise<Event> {
    return waitFor(`weft monitor to show ${what}`, () => this.events().find(pred), timeoutMs).catch((err: Error) => {
      err.message += `\nevents so far:\n${this.lines.slice(-10).join('\n')}\nstderr: ${this.stderr}`;
      throw err;
    });
  }

  stop(): Promise<void> {
    return stopProcess(this.child, 3000, 'SIGINT');
  }
}

/** One UDP datagram with known ports (python3, as any host has it): the 5-tuple the events must show. */
async function sendUdp(ns: Netns, o: { src?: string; sport: number; dst: string; dport: number; size?: number; df?: boolean; count?: number }): Promise<void> {
  const py = [
    'import socket',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    // IP_MTU_DISCOVER = IP_PMTUDISC_DO: DF set, the kernel neither fragments it nor shrinks it.
    o.df ? 's.setsockopt(socket.IPPROTO_IP, 10, 2)' : '',
    `s.bind((${JSON.stringify(o.src ?? '')}, ${o.sport}))`,
    `for _ in range(${o.count ?? 1}): s.sendto(b"w" * ${o.size ?? 16}, (${JSON.stringify(o.dst)}, ${o.dport}))`,
  ];
  const r = await ns.exec(['python3', '-c', py.filter(Boolean).join('\n')], { allowFail: true });
  assert.equal(r.code, 0, `sending from ${ns.name}: ${r.stderr}`);
}

let mon: Monitor;

test('weft monitor: listens on the pinned ring buffer; a second monitor is refused', async () => {
  mon = Monitor.start(h1, ['--type', 'all', '-o', 'json']);
  await mon.listening();
  const second = await h1.host.exec([process.execPath, CLI, 'monitor', '--bpf-pin-dir', h1.host.pinDir, '--duration', '1'], { allowFail: true });
  assert.equal(second.code, 3, second.stderr);
  assert.match(second.stderr, /^weft: another weft monitor \(pid \d+\) is reading these events, and a ring buffer has one reader; stop it first\n$/);
});

test('a forwarded flow: a trace event with the shortcut taken, the peer, and both headers', async () => {
  const [from, to] = [h1.pods[0], h2.pods[0]];
  await sendUdp(from.ns, { sport: 40001, dst: to.ip, dport: 5001 });
  const e = await mon.waitEvent('the trace of 40001 -> 5001', (x) => x.type === 'trace' && x.inner?.sport === 40001);
  assert.deepEqual(
    { action: e.action, program: e.program, direction: e.direction, device: e.device, peer: e.peer, encap: e.encap, vni: e.vni },
    // Sent from the pod's port (vp1, the lab's host end of p1) by from_pod, before the bridge and the host's forward path.
    { action: 'encap', program: 'from_pod', direction: 'egress', device: 'vp1', peer: h2.host.address, encap: 'vxlan', vni: 1 },
  );
  assert.deepEqual(e.inner, { proto: 'udp', src: from.ip, sport: 40001, dst: to.ip, dport: 5001 });
  assert.deepEqual({ ...e.outer!, sport: null }, { proto: 'udp', src: h1.host.address, dst: h2.host.address, sport: null, dport: 8472 });
  assert.ok(e.outer!.sport! >= 32768 && e.outer!.sport! <= 60999, `outer source port ${e.outer!.sport} from the flow hash`);
  assert.ok(Math.abs(Date.parse(e.time) - Date.now()) < 10_000, `time ${e.time} is now`);
});

test('a VNI the network does not use: a wrong_vni drop with the outer addresses, the VNI and the inner 5-tuple', async () => {
  const router = c.lab.router;
  const target = h1.pods[0];
  const [dev] = JSON.parse(await h1.host.ip('-j', 'link', 'show', 'weft.vxlan')) as Array<{ address: string }>;
  const src = h2.pods[0].ip.replace(/\.\d+$/, '.77');
  // A vxlan device in the router namespace, VNI 2, aimed at h1 (as test/integration/ebpf-admit.test.ts builds it).
  await router.ip('link', 'add', 'wvx2', 'type', 'vxlan', 'id', '2', 'remote', h1.host.address, 'local', '192.0.2.1', 'dstport', '8472', 'nolearning');
  try {
    await router.ip('addr', 'add', `${src}/32`, 'dev', 'wvx2');
    await router.ip('link', 'set', 'wvx2', 'up');
    await router.ip('route', 'replace', subnetOf(h1), 'dev', 'wvx2', 'src', src);
    await router.ip('neigh', 'replace', target.ip, 'lladdr', dev.address, 'dev', 'wvx2', 'nud', 'permanent');
    await sendUdp(router, { src, sport: 40002, dst: target.ip, dport: 5002 });
    const e = await mon.waitEvent('the wrong_vni drop', (x) => x.reason === 'wrong_vni' && x.inner?.sport === 40002);
    assert.deepEqual(
      { program: e.program, direction: e.direction, device: e.device, vni: e.vni, peer: e.peer },
      { program: 'overlay_ingress', direction: 'ingress', device: 'weft.vxlan', vni: 2, peer: '192.0.2.1' },
    );
    // The kernel's vxlan device decapsulated it: the outer addresses come from its tunnel metadata, which has no source port.
    assert.deepEqual(e.outer, { proto: 'udp', src: '192.0.2.1', dst: h1.host.address, sport: null, dport: 8472 });
    assert.deepEqual(e.inner, { proto: 'udp', src, sport: 40002, dst: target.ip, dport: 5002 });
  } finally {
    await router.ip('link', 'del', 'wvx2');
  }
});

test('a packet too big for the underlay once encapsulated: a too_big drop with its length and 5-tuple', async () => {
  // The classic MTU mistake: the overlay device raised to the underlay's MTU, leaving no room for vxlan's 50 bytes.
  await h1.host.ip('link', 'set', 'weft.vxlan', 'mtu', '1500');
  try {
    const to = h2.pods[0];
    await sendUdp(h1.host, { sport: 40004, dst: to.ip, dport: 5004, size: 1500 - 28, df: true });
    const e = await mon.waitEvent('the too_big drop', (x) => x.reason === 'too_big' && x.inner?.sport === 40004);
    assert.deepEqual(
      { program: e.program, direction: e.direction, device: e.device, length: e.length, peer: e.peer, outer: e.outer },
      { program: 'overlay_egress', direction: 'egress', device: 'weft.vxlan', length: 14 + 1500, peer: h2.host.address, outer: null },
    );
    assert.deepEqual(e.inner, { proto: 'udp', src: subnetOf(h1).replace(/\/\d+$/, ''), sport: 40004, dst: to.ip, dport: 5004 });
  } finally {
    await h1.host.ip('link', 'set', 'weft.vxlan', 'mtu', h1.env.FLANNEL_MTU);
  }
});

test('traffic to a departed peer: a no_peer drop with the inner 5-tuple', async () => {
  await h3.agent!.stop();
  await c.etcd.etcdctl(['del', `${c.prefix}/subnets/${subnetOf(h3).replace('/', '-')}`]);
  await h1.agent!.waitForLog('h3 removed', (l) => l.msg === 'peer removed' && l.subnet === subnetOf(h3));
  const from = h1.pods[0];
  const gone = h3.pods[0];
  await sendUdp(from.ns, { sport: 40003, dst: gone.ip, dport: 5003, count: 3 });
  const e = await mon.waitEvent('the no_peer drop', (x) => x.reason === 'no_peer' && x.inner?.sport === 40003);
  assert.deepEqual(
    { program: e.program, direction: e.direction, device: e.device, peer: e.peer, outer: e.outer },
    { program: 'overlay_egress', direction: 'egress', device: 'weft.vxlan', peer: null, outer: null },
  );
  assert.deepEqual(e.inner, { proto: 'udp', src: from.ip, sport: 40003, dst: gone.ip, dport: 5003 });
  await waitFor('all three', () => mon.events().filter((x) => x.reason === 'no_peer' && x.inner?.sport === 40003).length === 3);
});

test('every line of -o json is one JSON event; Ctrl-C ends the monitor with 0', async () => {
  await mon.stop();
  assert.equal(await mon.exited, 0, mon.stderr);
  assert.ok(mon.lines.length >= 6, `${mon.lines.length} lines`);
  for (const l of mon.lines) {
    const e = JSON.parse(l) as Event;
    assert.ok(['drop', 'trace'].includes(e.type) && typeof e.program === 'string' && typeof e.device === 'string', l);
  }
});

test('with the agent stopped: table lines, filtered by reason and address, --count ends it', async () => {
  await h1.agent!.stop();
  const gone = h3.pods[0];
  const m = Monitor.start(h1, ['--reason', 'no_peer', '--address', subnetOf(h3), '--count', '1']);
  await m.listening();
  // Not shown: a drop of another reason is not asked for (nothing else is sent here anyway).
  await sendUdp(h1.pods[0].ns, { sport: 40005, dst: gone.ip, dport: 5005 });
  assert.equal(await m.exited, 0, m.stderr);
  assert.match(m.lines[0], /^TIME\s+EVENT\s+REASON\/ACTION\s+PROGRAM\s+DEVICE\s+DIR\s+PACKET$/);
  assert.equal(m.lines.length, 2, m.lines.join('\n'));
  assert.match(m.lines[1], new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{6}\\s+drop\\s+no_peer\\s+overlay_egress\\s+weft\\.vxlan\\s+egress\\s+udp ${h1.pods[0].ip.replace(/\./g, '\\.')}:40005 > ${gone.ip.replace(/\./g, '\\.')}:5005, \\d+ B$`));
});
