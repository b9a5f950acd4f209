// weft migrate-v2 against etcd 3.4 with --enable-v2, fed as the classic
// flannel guides feed it (ETCDCTL_API=2 etcdctl set): the config and each
// lease copied to v3 byte for byte, with the TTL left as an etcd v3 lease;
// idempotent; refuses, writing nothing, when v3 holds something different;
// and an agent then takes its old subnet back from the copied lease.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Lab, type LabHost } from '../../lab/netns.js';
import { LabEtcd } from '../../lab/etcd.js';
import { CLI, startAgent } from '../../lab/agent.js';

const P = '/coreos.com/network';
const CONFIG = '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}';
const H1_LEASE = '{"PublicIP":"192.0.2.11","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"a2:33:93:0c:97:17"}}';
const OTHER_LEASE = '{"PublicIP":"192.0.2.30","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"f6:90:78:66:c6:9a"}}';
const RESERVATION = '{"PublicIP":"192.0.2.20"}';

let lab: Lab;
let etcd: LabEtcd;
let h1: LabHost;
before(async () => {
  lab = await Lab.create();
  h1 = await lab.addHost('h1', { octet: 11 });
  etcd = await LabEtcd.start({ netns: lab.router, extraArgs: ['--enable-v2'] });
  await etcd.etcdctl(['set', `${P}/config`, CONFIG], false, '2');
  await etcd.etcdctl(['set', '--ttl', '3600', `${P}/subnets/10.244.3.0-24`, H1_LEASE], false, '2');
  await etcd.etcdctl(['set', '--ttl', '7200', `${P}/subnets/10.244.4.0-24`, OTHER_LEASE], false, '2');
  await etcd.etcdctl(['set', `${P}/subnets/10.244.9.0-24`, RESERVATION], false, '2');
  await etcd.etcdctl(['set', `${P}/subnets/not-a-subnet`, '{}'], false, '2');
});
after(async () => {
  await etcd?.destroy();
  await lab?.destroy();
});

function migrate(...args: string[]) {
  return h1.exec([process.execPath, CLI, 'migrate-v2', '--etcd-endpoints', etcd.endpoint, ...args], { allowFail: true });
}

async function v3(key: string): Promise<{ value: string; lease: string } | null> {
  const text = await etcd.etcdctl(['get', key, '-w', 'json']);
  const kv = (JSON.parse(text) as { kvs?: Array<{ value: string }> }).kvs?.[0];
  // Lease ids pass 2^53: read them from the text, not through a JS number.
  return kv ? { value: Buffer.from(kv.value, 'base64').toString(), lease: /"lease":(\d+)/.exec(text)?.[1] ?? '0' } : null;
}

async function ttlOf(leaseDecimal: string): Promise<number> {
  const out = await etcd.etcdctl(['lease', 'timetolive', BigInt(leaseDecimal).toString(16)]);
  return Number(/remaining\((\d+)s\)/.exec(out)![1]);
}

test('--dry-run says what it would copy and writes nothing', async () => {
  const r = await migrate('--dry-run');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^\/coreos\.com\/network\/config\s+-\s+would copy$/m);
  assert.match(r.stdout, /^\/coreos\.com\/network\/subnets\/10\.244\.9\.0-24\s+-\s+would copy as a reservation \(no TTL in v2\)$/m);
  assert.match(r.stdout, /^\/coreos\.com\/network\/subnets\/not-a-subnet\s+-\s+skipped: not a subnet key$/m);
  assert.match(r.stdout, /would copy 4 keys; 0 already there; 1 skipped\./);
  assert.equal(await v3(`${P}/config`), null);
});

test('copies the config and the leases byte for byte, each lease with the TTL it had left', async () => {
  const r = await migrate();
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /copied 4 keys; 0 already there; 1 skipped\./);
  assert.equal((await v3(`${P}/config`))!.value, CONFIG);
  const lease = (await v3(`${P}/subnets/10.244.3.0-24`))!;
  assert.equal(lease.value, H1_LEASE);
  const ttl = await ttlOf(lease.lease);
  assert.ok(ttl > 3500 && ttl <= 3600, `v3 lease TTL ${ttl} s from v2's 3600`);
  assert.ok((await ttlOf((await v3(`${P}/subnets/10.244.4.0-24`))!.lease)) > 7000);
  const reservation = (await v3(`${P}/subnets/10.244.9.0-24`))!;
  assert.deepEqual(reservation, { value: RESERVATION, lease: '0' }, 'a key without a TTL stays a reservation');
  assert.equal(await v3(`${P}/subnets/not-a-subnet`), null);
  const again = await migrate();
  assert.equal(again.code, 0);
  assert.match(again.stdout, /copied 0 keys; 4 already there; 1 skipped\./, 'running it twice changes nothing');
});

test('refuses to overwrite a different v3 value, and then writes nothing at all', async () => {
  await etcd.etcdctl(['put', `${P}/subnets/10.244.4.0-24`, RESERVATION]);
  await etcd.etcdctl(['set', '--ttl', '600', `${P}/subnets/10.244.5.0-24`, OTHER_LEASE], false, '2');
  const r = await migrate();
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^weft: refusing to overwrite: v3 already holds a different value for one key: \/coreos\.com\/network\/subnets\/10\.244\.4\.0-24 \(v3 holds \{"PublicIP":"192\.0\.2\.20"\}, v2 \{"PublicIP":"192\.0\.2\.30",.*\); nothing was written\./);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.equal(await v3(`${P}/subnets/10.244.5.0-24`), null, 'the new v2 lease was not copied either');
  await etcd.etcdctl(['del', `${P}/subnets/10.244.4.0-24`]);
});

test('an agent takes its subnet back from the copied lease', async () => {
  const a = startAgent(h1, { etcdEndpoint: etcd.endpoint });
  try {
    const got = await a.waitForMsg('lease acquired', 20_000);
    assert.equal(got.subnet, '10.244.3.0/24');
  } finally {
    await a.stop();
  }
});
