// Dataplane selection with real agents in a lab host: --dataplane=auto probes
// the kernel and falls back to netlink with the reason (forced here with
// WEFT_PROBE_FAIL, since this kernel passes), --dataplane=ebpf fails with it,
// backends netlink mode cannot run fail with the documented message, and a
// host switched between dataplanes keeps nothing of the first one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Lab, type LabHost } from '../../lab/netns.js';
import { LabEtcd } from '../../lab/etcd.js';
import { CLI, startAgent, statusSocket, subnetFile, type LabAgent } from '../../lab/agent.js';
import { run } from '../../lab/exec.js';

let lab: Lab;
let etcd: LabEtcd;
let h1: LabHost;
let n = 0;

const config = (backend: string): string => JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: backend } });
const PEER = { subnet: '10.244.99.0/24', ip: '192.0.2.99', mac: '02:00:00:00:00:99' };
/** The nexthop object the netlink dataplane routes PEER through, named after its subnet's address (10.244.99.0). */
const PEER_NHID = 0x0af46300;

before(async () => {
  lab = await Lab.create();
  h1 = await lab.addHost('h1', { octet: 11 });
  etcd = await LabEtcd.start({ netns: lab.router });
});
after(async () => {
  await etcd?.destroy();
  await lab?.destroy();
});

/** A fresh prefix per test, with one peer lease so that netlink mode has entries to program. */
async function setup(backend = 'vxlan'): Promise<string> {
  const prefix = `/sel${n++}/network`;
  fs.rmSync(subnetFile(h1), { force: true });
  await etcd.etcdctl(['put', `${prefix}/config`, config(backend)]);
  const data = backend === 'vxlan' ? { BackendData: { VNI: 1, VtepMAC: PEER.mac } } : {};
  await etcd.etcdctl(['put', `${prefix}/subnets/${PEER.subnet.replace('/', '-')}`, JSON.stringify({ PublicIP: PEER.ip, PublicIPv6: null, BackendType: backend, ...data })]);
  return prefix;
}

function agent(prefix: string, dataplane: string, env: NodeJS.ProcessEnv = {}): LabAgent {
  return startAgent(h1, { etcdEndpoint: etcd.endpoint, dataplane, env, extra: ['--etcd-prefix', prefix] });
}

async function fatalOf(a: LabAgent): Promise<string> {
  assert.equal(await a.exited, 1, `the agent exits 1: ${a.transcript().slice(-1000)}`);
  const fatal = a.lines.find((l) => l.level === 60);
  assert.ok(fatal, `a fatal log line: ${a.transcript().slice(-1000)}`);
  return fatal.msg;
}

const qdiscs = async (): Promise<string> => (await h1.exec(['tc', 'qdisc', 'show', 'dev', 'eth0'])).stdout;
const weftRoutes = async (): Promise<string[]> => (await h1.ip('route')).split('\n').map((l) => l.trim()).filter((l) => / proto 87( |$)/.test(l));

test('auto with a forced probe failure at each step selects netlink and says which check failed, in the log and the status API', async () => {
  for (const step of ['bpf', 'verifier', 'clsact', 'bpffs']) {
    const prefix = await setup();
    const a = agent(prefix, 'auto', { WEFT_PROBE_FAIL: step });
    try {
      await a.waitForMsg('agent ready', 20_000);
      const warn = a.lines.find((l) => /^--dataplane=auto: eBPF ruled out/.test(l.msg));
      assert.ok(warn, `the fallback is logged: ${a.transcript().slice(-800)}`);
      assert.equal(warn.step, step);
      assert.match(warn.msg, new RegExp(`at the ${step} check: failed on purpose \\(WEFT_PROBE_FAIL=${step}, for testing the fallback\\); falling back to the netlink dataplane`));
      const sel = a.lines.find((l) => l.msg === 'dataplane selected')!;
      assert.equal(sel.dataplane, 'netlink');
      const status = await run([process.execPath, CLI, 'status', '--status-socket', statusSocket(h1), '-o', 'json']);
      const s = JSON.parse(status.stdout) as { dataplane: { kind: string; requested: string; reason: string } };
      assert.equal(s.dataplane.kind, 'netlink');
      assert.equal(s.dataplane.requested, 'auto');
      assert.equal(s.dataplane.reason, sel.reason);
      assert.match(s.dataplane.reason, new RegExp(`^auto: eBPF ruled out at the ${step} check: .*WEFT_PROBE_FAIL=${step}.*; using the netlink dataplane$`));
      // The checks before the forced one ran for real; the clsact qdisc the probe made is not left behind.
      assert.equal((warn.passed as string[]).length, ['bpf', 'verifier', 'clsact', 'bpffs'].indexOf(step));
      assert.doesNotMatch(await qdiscs(), /clsact/);
      assert.deepEqual(await weftRoutes(), [`${PEER.subnet} nhid ${PEER_NHID} via 10.244.99.0 dev flannel.1 proto 87 onlink`]);
    } finally {
      await a.stop();
    }
  }
});

test('--dataplane=ebpf with a forced probe failure exits with the reason instead of falling back', async () => {
  const prefix = await setup();
  await run(['ip', '-n', h1.name, 'link', 'del', 'flannel.1'], { allowFail: true });
  const a = agent(prefix, 'ebpf', { WEFT_PROBE_FAIL: 'verifier' });
  assert.match(await fatalOf(a), /^--dataplane=ebpf: eBPF ruled out at the verifier check: failed on purpose \(WEFT_PROBE_FAIL=verifier, for testing the fallback\) \(--dataplane=auto would fall back to the netlink dataplane\)$/);
  assert.doesNotMatch(await h1.ip('link'), /flannel\.1|weft/, 'nothing was programmed');
});

test('WEFT_PROBE_FAIL naming no step is an error, not silently ignored', async () => {
  const a = agent(await setup(), 'auto', { WEFT_PROBE_FAIL: 'verifyer' });
  assert.equal(await fatalOf(a), 'WEFT_PROBE_FAIL=verifyer: expected one of bpf, verifier, clsact, bpffs');
});

test('ipip and udp in netlink mode fail with the documented message, naming the eBPF dataplane', async () => {
  const ipip = agent(await setup('ipip'), 'netlink');
  const m = await fatalOf(ipip);
  assert.match(m, /^--dataplane=netlink: the ipip backend needs the kernel's ipip tunnel in netlink mode, and this kernel cannot make one: ip link add flannel\.ipip type ipip local 192\.0\.2\.11: /);
  assert.match(m, /no ipip module is loaded or built in/, 'this kernel has no ipip');
  assert.match(m, /The eBPF dataplane runs ipip without the module .*: run with --dataplane=ebpf \(or auto\)$/);
  const udp = agent(await setup('udp'), 'netlink');
  assert.match(await fatalOf(udp), /^--dataplane=netlink: chosen on the command line \(no eBPF probe\); but the udp backend has no kernel mechanism in netlink mode .*run with --dataplane=ebpf \(or auto, where the kernel supports eBPF\), or choose vxlan$/);
  assert.doesNotMatch(await h1.ip('link'), /flannel\./);
});

test('switching a host netlink -> eBPF -> netlink removes the other dataplane\'s devices, routes, filters and pins first', async () => {
  const prefix = await setup();
  const pins = (): string[] => (fs.existsSync(h1.pinDir) ? fs.readdirSync(h1.pinDir) : []);

  const nl = agent(prefix, 'netlink');
  await nl.waitForMsg('agent ready', 20_000);
  assert.match(await h1.ip('link'), /flannel\.1/);
  assert.equal((await weftRoutes()).length, 1);
  assert.equal(await nl.stop(), 0);
  assert.match(await h1.ip('link'), /flannel\.1/, 'stop() leaves the kernel state');

  const ebpf = agent(prefix, 'auto');
  try {
    await ebpf.waitForMsg('agent ready', 20_000);
    const sel = ebpf.lines.find((l) => l.msg === 'dataplane selected')!;
    assert.equal(sel.dataplane, 'ebpf');
    assert.match(String(sel.reason), /^auto: the kernel passed every eBPF check \(bpf\(\) permitted; sched_cls programs pass the verifier; clsact on eth0; bpffs at /);
    const removed = ebpf.lines.find((l) => l.msg === 'removed the netlink dataplane\'s state before programming the eBPF dataplane');
    assert.deepEqual(removed?.devices, ['flannel.1']);
    assert.doesNotMatch(await h1.ip('link'), /flannel\.1/);
    assert.deepEqual((await weftRoutes()).filter((l) => l.includes(' via ')), [], 'no per-peer route of netlink mode is left');
    assert.ok(pins().length > 0, 'the eBPF dataplane pinned its maps');
  } finally {
    await ebpf.stop();
  }

  const back = agent(prefix, 'netlink');
  try {
    await back.waitForMsg('agent ready', 20_000);
    const removed = back.lines.find((l) => l.msg === 'removed the eBPF dataplane\'s state before programming the netlink dataplane');
    assert.ok(removed, back.transcript().slice(-1500));
    assert.deepEqual(pins(), [], 'the pins are gone');
    assert.doesNotMatch(await h1.ip('link'), /weft/, 'the eBPF devices are gone');
    const filters = (await h1.exec(['tc', 'filter', 'show', 'dev', 'eth0', 'ingress'])).stdout;
    assert.doesNotMatch(filters, /underlay_decap/);
    assert.deepEqual(await weftRoutes(), [`${PEER.subnet} nhid ${PEER_NHID} via 10.244.99.0 dev flannel.1 proto 87 onlink`]);
  } finally {
    await back.stop();
  }
});
