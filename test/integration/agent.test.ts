// Real `weft agent` processes in lab hosts against a real etcd in the lab's
// router namespace: the control plane end to end (no dataplane: --dataplane=none).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Lab, type LabHost } from '../../lab/netns.js';
import { LabEtcd } from '../../lab/etcd.js';
import { startAgent, subnetFile, type LabAgent } from '../../lab/agent.js';
import { sleep, waitFor } from '../../lab/exec.js';

let lab: Lab;
let etcd: LabEtcd;
let hosts: LabHost[];
let n = 0;
// Agents choose from 10.244.0.0 to 10.244.63.0; the leases tests write once an agent runs are above: a lease
// written over the one an agent chose at random would be the test's fault (it made two of them flaky).
const CONFIG = '{"Network":"10.244.0.0/16","SubnetMax":"10.244.63.0","Backend":{"Type":"vxlan"}}';

before(async () => {
  lab = await Lab.create();
  hosts = [await lab.addHost('h1', { octet: 11 }), await lab.addHost('h2', { octet: 12 }), await lab.addHost('h3', { octet: 13 })];
  etcd = await LabEtcd.start({ netns: lab.router, extraArgs: ['--enable-v2'] });
});
after(async () => {
  await etcd?.destroy();
  await lab?.destroy();
});

/** Each test gets its own prefix and fresh subnet.env files. */
async function setup(config: string | null = CONFIG): Promise<string> {
  const prefix = `/t${n++}/network`;
  for (const h of hosts) fs.rmSync(subnetFile(h), { force: true });
  if (config !== null) await etcd.etcdctl(['put', `${prefix}/config`, config]);
  return prefix;
}

function agent(h: LabHost, prefix: string, extra: string[] = []): LabAgent {
  return startAgent(h, { etcdEndpoint: etcd.endpoint, extra: ['--etcd-prefix', prefix, ...extra] });
}

function envOf(h: LabHost): Record<string, string> {
  return Object.fromEntries(fs.readFileSync(subnetFile(h), 'utf8').trim().split('\n').map((l) => l.split('=') as [string, string]));
}

test('an invalid config makes the agent exit non-zero, naming the field, without writing anything', async () => {
  const prefix = await setup('{"Network":"10.244.0.0/16","SubnetLen":31,"Backend":{"Type":"vxlan"}}');
  const a = agent(hosts[0], prefix);
  const code = await a.exited;
  assert.equal(code, 1);
  assert.match(a.transcript(), /invalid network config: SubnetLen: SubnetLen must be less than \/31/);
  assert.equal(fs.existsSync(subnetFile(hosts[0])), false);
  assert.equal((await etcd.etcdctl(['get', '--prefix', '--keys-only', `${prefix}/subnets/`])).trim(), '');
});

test('two agents get distinct subnets, write subnet.env, and see each other as peers', async () => {
  const prefix = await setup();
  const [a1, a2] = [agent(hosts[0], prefix), agent(hosts[1], prefix)];
  try {
    const l1 = await a1.waitForMsg('lease acquired');
    const l2 = await a2.waitForMsg('lease acquired');
    assert.notEqual(l1.subnet, l2.subnet);
    const seen1 = await a1.waitForLog('peer h2', (l) => l.msg === 'peer added' && l.peer === '192.0.2.12', 3000);
    const seen2 = await a2.waitForLog('peer h1', (l) => l.msg === 'peer added' && l.peer === '192.0.2.11', 3000);
    assert.equal(seen1.subnet, l2.subnet);
    assert.equal(seen2.subnet, l1.subnet);
    const env = envOf(hosts[0]);
    assert.equal(env.FLANNEL_NETWORK, '10.244.0.0/16');
    assert.equal(env.FLANNEL_SUBNET, String(l1.subnet).replace('.0/24', '.1/24'));
    assert.equal(env.FLANNEL_MTU, '1450');
    assert.equal(env.FLANNEL_IPMASQ, 'false');
    const stored = await etcd.etcdctl(['get', '--print-value-only', `${prefix}/subnets/${String(l1.subnet).replace('/', '-')}`]);
    assert.match(stored.trim(), /^\{"PublicIP":"192\.0\.2\.11","PublicIPv6":null,"BackendType":"vxlan","BackendData":\{"VNI":1,"VtepMAC":"[0-9a-f:]{17}"\}\}$/);
  } finally {
    await Promise.all([a1.stop(), a2.stop()]);
  }
});

test('a restarted agent reclaims the same subnet and keeps its VtepMAC; SIGTERM leaves the lease', async () => {
  const prefix = await setup();
  const a = agent(hosts[0], prefix);
  const first = await a.waitForMsg('agent ready').then(() => a.lines.find((l) => l.msg === 'lease acquired')!);
  const key = `${prefix}/subnets/${String(first.subnet).replace('/', '-')}`;
  const before = await etcd.etcdctl(['get', '--print-value-only', key]);
  assert.equal(await a.stop(), 0);
  assert.equal(await etcd.etcdctl(['get', '--print-value-only', key]), before, 'the lease stays in etcd after SIGTERM');
  fs.rmSync(subnetFile(hosts[0]));
  const b = agent(hosts[0], prefix);
  try {
    const again = await b.waitForMsg('lease acquired');
    assert.equal(again.subnet, first.subnet);
    await b.waitForMsg('reclaimed our existing lease');
    assert.equal(await etcd.etcdctl(['get', '--print-value-only', key]), before, 'same value, same VtepMAC');
  } finally {
    await b.stop();
  }
});

test('a reservation for our PublicIP is taken and kept without TTL', async () => {
  const prefix = await setup();
  await etcd.etcdctl(['put', `${prefix}/subnets/10.244.200.0-24`, '{"PublicIP":"192.0.2.13"}']);
  const a = agent(hosts[2], prefix);
  try {
    const l = await a.waitForMsg('lease acquired');
    assert.equal(l.subnet, '10.244.200.0/24');
    assert.equal(l.reservation, true);
    const kv = JSON.parse(await etcd.etcdctl(['get', `${prefix}/subnets/10.244.200.0-24`, '-w', 'json']));
    assert.equal(kv.kvs[0].lease, undefined, 'no etcd lease attached');
  } finally {
    await a.stop();
  }
});

test('our lease deleted with etcdctl is re-acquired; a malformed lease is skipped and logged', async () => {
  const prefix = await setup();
  const a = agent(hosts[0], prefix);
  try {
    const l = await a.waitForMsg('agent ready').then(() => a.lines.find((x) => x.msg === 'lease acquired')!);
    const key = `${prefix}/subnets/${String(l.subnet).replace('/', '-')}`;
    await etcd.etcdctl(['del', key]);
    await a.waitForMsg(/re-acquired the same subnet/);
    assert.match(await etcd.etcdctl(['get', '--print-value-only', key]), /"PublicIP":"192.0.2.11"/);
    await etcd.etcdctl(['put', `${prefix}/subnets/10.244.66.0-24`, '{"PublicIP": 5}']);
    await etcd.etcdctl(['put', `${prefix}/subnets/not-a-subnet`, '{}']);
    await etcd.etcdctl(['put', `${prefix}/subnets/10.244.67.0-24`, '{"PublicIP":"192.0.2.67","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:67"}}']);
    await a.waitForLog('the valid peer', (x) => x.msg === 'peer added' && x.subnet === '10.244.67.0/24');
    const warnings = a.lines.filter((x) => x.msg === 'skipping malformed lease written by someone else').map((x) => x.key);
    assert.deepEqual(warnings.sort(), [`${prefix}/subnets/10.244.66.0-24`, `${prefix}/subnets/not-a-subnet`]);
    assert.ok(a.running);
  } finally {
    await a.stop();
  }
});

test('our lease overwritten with a value that is not a lease: the agent stops and says what its key holds', async () => {
  const prefix = await setup();
  const a = agent(hosts[0], prefix);
  try {
    const l = await a.waitForMsg('agent ready').then(() => a.lines.find((x) => x.msg === 'lease acquired')!);
    await etcd.etcdctl(['put', `${prefix}/subnets/${String(l.subnet).replace('/', '-')}`, '{"PublicIP": 5}']);
    assert.equal(await a.exited, 1);
    assert.match(a.transcript(), new RegExp(`our lease on ${String(l.subnet).replace(/\./g, '\\.')} disappeared and its key was overwritten with something that is not a lease \\(value is not a lease: PublicIP 5 is not an IPv4 address\\)`));
  } finally {
    await a.stop();
  }
});

test('etcd stopped for 10 s and restarted: the agent reconnects and sees a lease written meanwhile', async () => {
  const prefix = await setup();
  const a = agent(hosts[0], prefix);
  try {
    await a.waitForMsg('agent ready');
    await etcd.stop();
    await a.waitForMsg('etcd watch disconnected; resuming from the last revision when etcd is back');
    // The outage itself: its length is the fault this test makes, not a wait for something to happen.
    await sleep(10_000);
    await etcd.restart();
    await etcd.etcdctl(['put', `${prefix}/subnets/10.244.88.0-24`, '{"PublicIP":"192.0.2.88","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:88"}}']);
    await a.waitForLog('the lease written after the outage', (x) => x.msg === 'peer added' && x.subnet === '10.244.88.0/24', 15_000);
    assert.ok(a.running);
  } finally {
    await a.stop();
    await etcd.ensureRunning();
  }
});

test('after etcdctl compact past the agent\'s revision, the watch re-lists and applies only the difference', async () => {
  const prefix = await setup();
  await etcd.etcdctl(['put', `${prefix}/subnets/10.244.90.0-24`, '{"PublicIP":"192.0.2.90","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:90"}}']);
  const h = hosts[1];
  const a = agent(h, prefix);
  try {
    await a.waitForLog('the first peer', (x) => x.msg === 'peer added' && x.subnet === '10.244.90.0/24');
    await a.waitForMsg('agent ready');
    // The agent loses etcd, and cannot reach it while others write and compact.
    await etcd.stop();
    await a.waitForMsg('etcd watch disconnected; resuming from the last revision when etcd is back');
    await h.ip('link', 'set', 'eth0', 'down');
    await etcd.restart();
    await etcd.etcdctl(['put', `${prefix}/subnets/10.244.91.0-24`, '{"PublicIP":"192.0.2.91","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:91"}}']);
    await etcd.etcdctl(['del', `${prefix}/subnets/10.244.90.0-24`]);
    const rev = JSON.parse(await etcd.etcdctl(['get', 'x', '-w', 'json'])).header.revision as number;
    await etcd.etcdctl(['compact', String(rev)]);
    const mark = a.lines.length;
    await h.ip('link', 'set', 'eth0', 'up');
    await h.ip('route', 'replace', 'default', 'via', '192.0.2.1');
    await a.waitForMsg('etcd watch cancelled; re-listing leases', 20_000, mark);
    await a.waitForLog('the new peer', (x) => x.msg === 'peer added' && x.subnet === '10.244.91.0/24', 10_000, mark);
    await a.waitForLog('the deleted peer', (x) => x.msg === 'peer removed' && x.subnet === '10.244.90.0/24', 10_000, mark);
    // A lease put now (beyond the subnets the agent chooses its own from) reaches the agent through the
    // watch that follows the re-list: once it is added, everything the re-list applied was logged before it.
    await etcd.etcdctl(['put', `${prefix}/subnets/10.244.192.0-24`, '{"PublicIP":"192.0.2.92","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:92"}}']);
    const marker = await a.waitForLog('the lease put after the re-list', (x) => x.msg === 'peer added' && x.subnet === '10.244.192.0/24', 10_000, mark);
    const after = a.lines.slice(mark, a.lines.indexOf(marker)).filter((x) => x.msg === 'peer added' || x.msg === 'peer removed');
    assert.equal(after.length, 2, `only the difference is applied: ${JSON.stringify(after)}`);
  } finally {
    await a.stop();
    await h.ip('link', 'set', 'eth0', 'up');
    await h.ip('route', 'replace', 'default', 'via', '192.0.2.1');
    await etcd.ensureRunning();
  }
});

test('a config only in etcd\'s v2 keyspace is pointed out with the v3 command that fixes it', async () => {
  const prefix = await setup(null);
  await etcd.etcdctl(['set', `${prefix}/config`, CONFIG], false, '2');
  const a = agent(hosts[0], prefix);
  try {
    const l = await a.waitForLog('the v2 hint', (x) => /v2 keyspace has one/.test(x.msg));
    assert.match(l.msg, new RegExp(`ETCDCTL_API=3 etcdctl put ${prefix}/config '\\{"Network":"10.244.0.0/16"`));
    assert.equal(fs.existsSync(subnetFile(hosts[0])), false);
    // Following the advice starts the agent.
    await etcd.etcdctl(['put', `${prefix}/config`, CONFIG]);
    await a.waitForMsg('agent ready', 10_000);
  } finally {
    await a.stop();
  }
});

test('etcd unreachable: a clear error, retried, and nothing written', async () => {
  const prefix = await setup();
  const a = startAgent(hosts[0], { etcdEndpoint: 'http://192.0.2.1:2999', extra: ['--etcd-prefix', prefix] });
  try {
    const l = await a.waitForLog('the etcd error', (x) => /etcd at http:\/\/192.0.2.1:2999 is unreachable/.test(x.msg));
    assert.match(l.msg, /check --etcd-endpoints/);
    assert.ok(a.running, 'keeps retrying');
    assert.equal(fs.existsSync(subnetFile(hosts[0])), false);
  } finally {
    await a.stop();
  }
  await waitFor('agent exit', () => !a.running);
});

test('health endpoints: /healthz while running, /readyz once subnet.env is written', async () => {
  const prefix = await setup();
  const a = agent(hosts[0], prefix, ['--healthz-ip', '127.0.0.1', '--healthz-port', '18080']);
  try {
    await a.waitForMsg('agent ready');
    const get = async (p: string): Promise<string> => (await hosts[0].exec(['node', '-e', `fetch('http://127.0.0.1:18080${p}').then(async r => console.log(r.status, (await r.text()).trim()))`])).stdout.trim();
    assert.equal(await get('/healthz'), '200 ok');
    assert.equal(await get('/readyz'), '200 ready');
    assert.equal(await get('/nope'), '404');
  } finally {
    await a.stop();
  }
});

test('etcd credentials never appear in the logs', async () => {
  const prefix = await setup();
  const secret = 'pw-that-must-not-leak-7f3a';
  const a = agent(hosts[0], prefix, ['--etcd-username', 'weft', '--etcd-password', secret, '--log-level', 'debug']);
  try {
    const l = await a.waitForLog('the credentials error', (x) => /cannot read the network config/.test(x.msg), 15_000);
    assert.match(l.msg, /authentication disabled but credentials were given.*drop --etcd-username\/--etcd-password or enable auth/);
  } finally {
    await a.stop();
  }
  assert.ok(a.lines.length > 0);
  assert.doesNotMatch(a.transcript(), new RegExp(secret));
});
