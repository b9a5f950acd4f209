// `weft leases` and `weft status` against a real etcd in the lab's router
// namespace and real agents (--dataplane none) in lab hosts: every field the
// commands print is checked against what etcd (read with etcdctl) and the
// agent (its log, its process) hold.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Lab, type LabHost } from '../../lab/netns.js';
import { LabEtcd } from '../../lab/etcd.js';
import { CLI, startAgent, statusSocket, type LabAgent } from '../../lab/agent.js';
import { run, waitFor, type RunResult } from '../../lab/exec.js';

let lab: Lab;
let etcd: LabEtcd;
let hosts: LabHost[];
let n = 0;
const CONFIG = '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}';

before(async () => {
  lab = await Lab.create();
  hosts = [await lab.addHost('h1', { octet: 11 }), await lab.addHost('h2', { octet: 12 }), await lab.addHost('h3', { octet: 13 })];
  etcd = await LabEtcd.start({ netns: lab.router });
});
after(async () => {
  await etcd?.destroy();
  await lab?.destroy();
});

async function setup(config: string | null = CONFIG): Promise<string> {
  const prefix = `/i${n++}/network`;
  if (config !== null) await etcd.etcdctl(['put', `${prefix}/config`, config]);
  return prefix;
}

/** The test's environment without FLANNELD_ variables, so only what a test sets reaches the CLI. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FLANNELD_')));
  return { ...env, ...extra };
}

function weft(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return run([process.execPath, CLI, ...args], { allowFail: true, env: cleanEnv(env), timeoutMs: 20_000 });
}

async function weftJson<T>(args: string[], env: NodeJS.ProcessEnv = {}): Promise<T> {
  const r = await weft([...args, '-o', 'json'], env);
  assert.equal(r.code, 0, `weft ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

function agent(h: LabHost, prefix: string, extra: string[] = []): LabAgent {
  return startAgent(h, { etcdEndpoint: etcd.endpoint, extra: ['--etcd-prefix', prefix, ...extra] });
}

interface LeaseRow {
  key: string; subnet: string; subnetV6: string | null; publicIP: string; publicIPv6: string | null; backend: string | null;
  vni: number | null; vtepMAC: string | null; reservation: boolean; leaseId: string | null; ttlSeconds: number | null;
  grantedTTLSeconds: number | null; expiresAt: string | null; expired: boolean;
}
interface LeasesJson { prefix: string; network: string | null; revision: string; leases: LeaseRow[]; malformed: Array<{ key: string; reason: string; subnet: string | null }> }

/** etcdctl's own view of an etcd lease: granted TTL, remaining TTL, attached keys. */
async function etcdLease(decimalId: string): Promise<{ granted: number; remaining: number; keys: string[] }> {
  const hex = BigInt(decimalId).toString(16);
  const out = await etcd.etcdctl(['lease', 'timetolive', hex, '--keys']);
  const m = /granted with TTL\((\d+)s\), remaining\((-?\d+)s\)(?:, attached keys\(\[(.*)\]\))?/.exec(out);
  assert.ok(m, `etcdctl lease timetolive ${hex}: ${out}`);
  return { granted: Number(m[1]), remaining: Number(m[2]), keys: (m[3] ?? '').split(' ').filter(Boolean) };
}

test('weft leases lists agents\' leases, etcdctl leases, reservations and malformed keys, field by field', async () => {
  const prefix = await setup();
  const subnets = `${prefix}/subnets`;
  // Written before the agents start: these subnets are among the 100 an agent picks from, and a put after
  // its pick could overwrite its lease.
  await etcd.etcdctl(['put', `${subnets}/10.244.70.0-24&fd00:10:244:70::-64`, '{"PublicIP":"192.0.2.15","PublicIPv6":"2001:db8::15","BackendType":"host-gw"}']);
  await etcd.etcdctl(['put', `${subnets}/10.244.66.0-24`, '{"PublicIP": 5}']);
  await etcd.etcdctl(['put', `${subnets}/not-a-subnet`, '{}']);
  const [a1, a2] = [agent(hosts[0], prefix), agent(hosts[1], prefix)];
  try {
    const l1 = await a1.waitForMsg('lease acquired');
    const l2 = await a2.waitForMsg('lease acquired');
    await etcd.etcdctl(['put', `${subnets}/10.244.200.0-24`, '{"PublicIP":"192.0.2.13"}']);
    const grant = await etcd.etcdctl(['lease', 'grant', '600']);
    const hex = /lease ([0-9a-f]+) granted/.exec(grant)![1];
    await etcd.etcdctl(['put', `--lease=${hex}`, `${subnets}/10.244.201.0-24`, '{"PublicIP":"198.51.100.14","PublicIPv6":null}']);

    const rep = await weftJson<LeasesJson>(['leases', '--etcd-endpoints', etcd.clientEndpoint, '--etcd-prefix', prefix]);
    assert.equal(rep.prefix, prefix);
    assert.equal(rep.network, '10.244.0.0/16');
    const bySubnet = new Map(rep.leases.map((r) => [r.subnet, r]));
    assert.deepEqual([...bySubnet.keys()].sort(), [String(l1.subnet), String(l2.subnet), '10.244.200.0/24', '10.244.201.0/24', '10.244.70.0/24'].sort());

    // The agents' leases: value as stored, etcd lease and TTL as etcdctl sees them.
    for (const [l, ip] of [[l1, '192.0.2.11'], [l2, '192.0.2.12']] as const) {
      const r = bySubnet.get(String(l.subnet))!;
      const key = `${subnets}/${String(l.subnet).replace('/', '-')}`;
      const stored = JSON.parse(await etcd.etcdctl(['get', '--print-value-only', key])) as { PublicIP: string; BackendType: string; BackendData: { VNI: number; VtepMAC: string } };
      assert.equal(r.key, key);
      assert.equal(r.publicIP, ip);
      assert.equal(stored.PublicIP, ip);
      assert.equal(r.backend, stored.BackendType);
      assert.equal(r.backend, 'vxlan');
      assert.equal(r.vni, stored.BackendData.VNI);
      assert.equal(r.vtepMAC, stored.BackendData.VtepMAC);
      assert.equal(r.reservation, false);
      assert.equal(r.expired, false);
      assert.match(r.leaseId!, /^\d+$/);
      const e = await etcdLease(r.leaseId!);
      assert.deepEqual(e.keys, [key], 'the lease id printed is the one etcd attached to the key');
      assert.equal(r.grantedTTLSeconds, e.granted);
      assert.equal(e.granted, 86400);
      assert.ok(Math.abs(r.ttlSeconds! - e.remaining) <= 2, `ttl ${r.ttlSeconds} vs etcdctl ${e.remaining}`);
      assert.ok(Math.abs(Date.parse(r.expiresAt!) - (Date.now() + e.remaining * 1000)) <= 3000);
    }
    const res = bySubnet.get('10.244.200.0/24')!;
    assert.deepEqual(
      { publicIP: res.publicIP, backend: res.backend, reservation: res.reservation, leaseId: res.leaseId, ttl: res.ttlSeconds, expiresAt: res.expiresAt, vni: res.vni },
      { publicIP: '192.0.2.13', backend: null, reservation: true, leaseId: null, ttl: null, expiresAt: null, vni: null },
    );
    const byCtl = bySubnet.get('10.244.201.0/24')!;
    assert.equal(BigInt(byCtl.leaseId!).toString(16), hex);
    assert.equal(byCtl.backend, null, 'udp-style lease: no BackendType');
    assert.equal(byCtl.grantedTTLSeconds, 600);
    assert.ok(byCtl.ttlSeconds! <= 600 && byCtl.ttlSeconds! > 590, String(byCtl.ttlSeconds));
    const dual = bySubnet.get('10.244.70.0/24')!;
    assert.equal(dual.subnetV6, 'fd00:10:244:70::/64');
    assert.equal(dual.publicIPv6, '2001:db8::15');
    assert.equal(dual.backend, 'host-gw');

    assert.deepEqual(
      rep.malformed.map((m) => [m.key, m.subnet]).sort(),
      [[`${subnets}/10.244.66.0-24`, '10.244.66.0/24'], [`${subnets}/not-a-subnet`, null]],
    );
    assert.match(rep.malformed.find((m) => m.subnet)!.reason, /PublicIP 5 is not an IPv4 address/);

    // The table says the same for people.
    const t = await weft(['leases', '--etcd-endpoints', etcd.clientEndpoint, '--etcd-prefix', prefix]);
    assert.equal(t.code, 0, t.stderr);
    const line = (subnet: string): string => t.stdout.split('\n').find((x) => x.startsWith(subnet + ' ')) ?? '';
    assert.match(line(String(l1.subnet)), new RegExp(`192\\.0\\.2\\.11 +- +vxlan +1 +${bySubnet.get(String(l1.subnet))!.vtepMAC} +2[34]h\\d+m +${bySubnet.get(String(l1.subnet))!.leaseId}$`));
    assert.match(line('10.244.200.0/24'), /192\.0\.2\.13 .*reservation +-$/);
    assert.match(t.stdout, /2 malformed/);
    assert.match(t.stdout, /not-a-subnet +- +key is not a subnet/);
  } finally {
    await Promise.all([a1.stop(), a2.stop()]);
  }
});

test('weft leases takes FLANNELD_ variables like the agent; unreachable etcd exits 3 naming the endpoint', async () => {
  const prefix = await setup();
  await etcd.etcdctl(['put', `${prefix}/subnets/10.244.9.0-24`, '{"PublicIP":"192.0.2.19","BackendType":"host-gw"}']);
  const rep = await weftJson<LeasesJson>(['leases'], { FLANNELD_ETCD_ENDPOINTS: etcd.clientEndpoint, FLANNELD_ETCD_PREFIX: prefix });
  assert.deepEqual(rep.leases.map((l) => [l.subnet, l.publicIP, l.backend, l.reservation]), [['10.244.9.0/24', '192.0.2.19', 'host-gw', true]]);
  // A flag beats the variable, as for flanneld.
  const empty = await weftJson<LeasesJson>(['leases', '--etcd-prefix', '/nothing/here'], { FLANNELD_ETCD_ENDPOINTS: etcd.clientEndpoint, FLANNELD_ETCD_PREFIX: prefix });
  assert.deepEqual(empty.leases, []);
  const r = await weft(['leases', '--etcd-endpoints', 'http://127.0.0.1:1', '--etcd-prefix', prefix]);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /etcd at http:\/\/127\.0\.0\.1:1 is unreachable or failing .*Check --etcd-endpoints/);
  const bad = await weft(['leases', '--etcd-endpoints', 'ftp://x']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--etcd-endpoints: ftp:\/\/x has scheme ftp:/);
});

interface StatusJson {
  socket: string; pid: number; phase: string; ready: boolean; uptimeMs: number; startedAtMs: number; nowMs: number;
  lease: { subnet: string; reservation: boolean; expiresAtMs: number; leaseId: string; publicIP: string } | null;
  backend: { type: string; vni: number; port: number; vtepMAC: string; directRouting: boolean };
  dataplane: { requested: string; kind: string; reason: string; pinDir: string };
  etcd: { endpoints: string[]; prefix: string; connected: boolean; revision: number };
  peers: { inView: number; routed: number; skipped: number; inMaps: number | null; inMapsNote: string };
  iface: { name: string; index: number; address: string; mtu: number };
  errors: Array<{ atMs: number; message: string }>;
  network: string; mtu: number;
}

test('weft status round-trips over the socket: each field against etcd and the agent', async () => {
  const prefix = await setup();
  await etcd.etcdctl(['put', `${prefix}/subnets/10.244.200.0-24`, '{"PublicIP":"192.0.2.13"}']);
  // h3 first: it rewrites the reservation with its backend, so the others see two routable peers from the start.
  const a3 = agent(hosts[2], prefix);
  await a3.waitForMsg('agent ready');
  const [a1, a2] = [agent(hosts[0], prefix), agent(hosts[1], prefix)];
  try {
    for (const a of [a1, a2]) await a.waitForMsg('agent ready');
    await a1.waitForLog('both peers', () => a1.lines.filter((l) => l.msg === 'peer added').length === 2);
    const sock = statusSocket(hosts[0]);
    assert.equal(fs.statSync(sock).mode & 0o777, 0o600, 'the socket is root\'s alone');
    const s = await weftJson<StatusJson>(['status', '--status-socket', sock]);
    const own = a1.lines.find((l) => l.msg === 'lease acquired')!;
    const key = `${prefix}/subnets/${String(own.subnet).replace('/', '-')}`;
    const stored = JSON.parse(await etcd.etcdctl(['get', '--print-value-only', key])) as { BackendData: { VNI: number; VtepMAC: string } };
    const kv = JSON.parse(await etcd.etcdctl(['get', key, '-w', 'json'])) as { header: { revision: number } };

    assert.equal(s.socket, sock);
    assert.equal(s.pid, a1.pid);
    assert.equal(s.ready, true);
    assert.equal(s.phase, 'ready');
    assert.ok(s.uptimeMs > 0 && s.uptimeMs < 120_000, String(s.uptimeMs));
    assert.equal(s.lease!.subnet, own.subnet);
    assert.equal(s.lease!.reservation, false);
    assert.equal(s.lease!.publicIP, '192.0.2.11');
    const e = await etcdLease(s.lease!.leaseId);
    assert.deepEqual(e.keys, [key]);
    assert.ok(Math.abs(s.lease!.expiresAtMs - (Date.now() + e.remaining * 1000)) <= 3000, 'expiry as etcd counts it');
    assert.deepEqual(s.backend, { type: 'vxlan', vni: stored.BackendData.VNI, port: 8472, vtepMAC: stored.BackendData.VtepMAC, directRouting: false });
    assert.equal(s.dataplane.requested, 'none');
    assert.equal(s.dataplane.kind, 'none');
    assert.match(s.dataplane.reason, /--dataplane=none/);
    assert.deepEqual(s.etcd.endpoints, [etcd.endpoint]);
    assert.equal(s.etcd.prefix, prefix);
    assert.equal(s.etcd.connected, true);
    assert.ok(s.etcd.revision > 0 && s.etcd.revision <= kv.header.revision, `revision ${s.etcd.revision} vs etcd ${kv.header.revision}`);
    assert.deepEqual({ ...s.peers, inMapsNote: '' }, { inView: 2, routed: 2, skipped: 0, inMaps: null, inMapsNote: '' });
    assert.match(s.peers.inMapsNote, /no dataplane/);
    assert.deepEqual({ name: s.iface.name, address: s.iface.address, mtu: s.iface.mtu }, { name: 'eth0', address: '192.0.2.11', mtu: 1500 });
    assert.equal(s.network, '10.244.0.0/16');
    assert.equal(s.mtu, 1450);
    assert.deepEqual(s.errors, []);

    // The reservation holder says so, and has no expiry.
    const s3 = await weftJson<StatusJson>(['status', '--status-socket', statusSocket(hosts[2])]);
    assert.equal(s3.pid, a3.pid);
    assert.deepEqual([s3.lease!.subnet, s3.lease!.reservation, s3.lease!.expiresAtMs, s3.lease!.leaseId], ['10.244.200.0/24', true, 0, '0']);

    // The table, for people.
    const t = await weft(['status', '--status-socket', sock]);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, new RegExp(`^agent +pid ${a1.pid} .*, up \\d+s, ready$`, 'm'));
    assert.match(t.stdout, new RegExp(`^lease +${String(own.subnet).replace(/\./g, '\\.')}, expires in 2[34]h\\d+m`, 'm'));
    assert.match(t.stdout, /^peers +2 in the agent's view \(2 routed, 0 skipped\); in the dataplane: unknown/m);
    assert.match(t.stdout, /^etcd +http:\/\/192\.0\.2\.1:2379, prefix .*, watch connected, revision \d+$/m);
    assert.match(await weft(['status', '--status-socket', statusSocket(hosts[2])]).then((r) => r.stdout), /a reservation \(no TTL, never expires\)/);

    // FLANNELD_STATUS_SOCKET names the socket too.
    const viaEnv = await weftJson<StatusJson>(['status'], { FLANNELD_STATUS_SOCKET: statusSocket(hosts[1]) });
    assert.equal(viaEnv.pid, a2.pid);
  } finally {
    await Promise.all([a1.stop(), a2.stop(), a3.stop()]);
  }
});

test('weft status while the agent waits for its config: the phase and the error, no lease', async () => {
  const prefix = await setup(null);
  const a = agent(hosts[0], prefix);
  try {
    await a.waitForLog('the missing config', (l) => /no network config at/.test(l.msg));
    const s = await weftJson<StatusJson>(['status', '--status-socket', statusSocket(hosts[0])]);
    assert.equal(s.ready, false);
    assert.equal(s.phase, 'waiting for the network config in etcd');
    assert.equal(s.lease, null);
    assert.equal(s.backend.type, '');
    assert.equal(s.errors.length, 1);
    assert.match(s.errors[0].message, new RegExp(`no network config at ${prefix}/config`));
    const t = await weft(['status', '--status-socket', statusSocket(hosts[0])]);
    assert.match(t.stdout, /^lease +none yet$/m);
  } finally {
    await a.stop();
  }
});

test('no agent: exit 3 and a plain sentence; a killed agent\'s socket file is taken over by the next agent', async () => {
  const prefix = await setup();
  const sock = statusSocket(hosts[0]);
  fs.rmSync(sock, { force: true });
  const none = await weft(['status', '--status-socket', sock]);
  assert.equal(none.code, 3);
  assert.equal(none.stdout, '');
  assert.equal(none.stderr.trim(), `weft: no weft agent is running (nothing listens on ${sock}); start one with weft agent --etcd-endpoints URL ..., or, if it runs with another socket, name it with --status-socket`);

  const a = agent(hosts[0], prefix);
  await a.waitForMsg('agent ready');
  assert.equal((await weft(['status', '--status-socket', sock])).code, 0);
  // A second agent on the same socket does not steal it: it is refused at start, naming the first, which keeps answering.
  const b = agent(hosts[1], prefix, ['--status-socket', sock]);
  assert.equal(await b.exited, 1);
  assert.match(b.stderr, new RegExp(`another weft agent \\(pid ${a.pid}\\).* already uses the status socket`));
  assert.equal((await weftJson<StatusJson>(['status', '--status-socket', sock])).pid, a.pid);
  await a.stop();
  assert.equal(fs.existsSync(sock), false, 'a clean stop removes the socket');
  assert.equal((await weft(['status', '--status-socket', sock])).code, 3);

  const c = agent(hosts[0], prefix);
  await c.waitForMsg('agent ready');
  await c.kill9();
  assert.equal(fs.existsSync(sock), true, 'kill -9 leaves the socket file');
  const stale = await weft(['status', '--status-socket', sock]);
  assert.equal(stale.code, 3);
  assert.match(stale.stderr, /no weft agent is running \(nothing listens on .*; the socket file was left by an agent that stopped\)/);
  const d = agent(hosts[0], prefix);
  try {
    await d.waitForMsg('status socket listening');
    const s = await waitFor('the new agent to answer', async () => {
      const r = await weft(['status', '--status-socket', sock, '-o', 'json']);
      return r.code === 0 ? (JSON.parse(r.stdout) as StatusJson) : undefined;
    });
    assert.equal(s.pid, d.pid);
  } finally {
    await d.stop();
  }
});
