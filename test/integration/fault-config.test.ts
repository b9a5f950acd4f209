// Configs and keyspaces an agent must not trust, and an etcd that goes
// silent: real agents in a lab host against a real etcd (no dataplane unless
// the case needs one). A config that would shadow the host's own networks is
// refused before anything is leased; a config changed while agents run is
// noticed; six 1 MB values or 65,536 leases are listed in pages; an agent
// without etcd says so, and retries with a growing, jittered backoff.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { Lab, type LabHost } from '../../lab/netns.js';
import { LabEtcd } from '../../lab/etcd.js';
import { CLI, startAgent, statusSocket, subnetFile, type LabAgent } from '../../lab/agent.js';
import { run, waitFor } from '../../lab/exec.js';

let lab: Lab;
let etcd: LabEtcd;
let h1: LabHost;
let n = 0;
const CONFIG = { Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } };

before(async () => {
  lab = await Lab.create();
  h1 = await lab.addHost('h1', { octet: 11 });
  etcd = await LabEtcd.start({ netns: lab.router });
});
after(async () => {
  await etcd?.destroy();
  await lab?.destroy();
});

async function prefixWith(config: unknown): Promise<string> {
  const prefix = `/f${n++}/network`;
  fs.rmSync(subnetFile(h1), { force: true });
  if (config !== null) await etcd.etcdctl(['put', `${prefix}/config`, typeof config === 'string' ? config : JSON.stringify(config)]);
  return prefix;
}

function agent(prefix: string, extra: string[] = [], endpoint = etcd.endpoint): LabAgent {
  return startAgent(h1, { etcdEndpoint: endpoint, extra: ['--etcd-prefix', prefix, ...extra] });
}

async function nothingLeased(prefix: string): Promise<void> {
  assert.equal((await etcd.etcdctl(['get', '--prefix', '--keys-only', `${prefix}/subnets/`])).trim(), '', 'no lease was written');
  assert.equal(fs.existsSync(subnetFile(h1)), false, 'no subnet.env was written');
}

function noStack(a: LabAgent): void {
  assert.doesNotMatch(a.transcript(), /\n\s+at [\w.<>]+ \(|"stack"/, 'no stack trace');
}

test('a Network of 0.0.0.0/0, or one over the interface\'s subnet or a host route, is refused before anything is leased', async () => {
  await h1.ip('route', 'add', '10.50.0.0/16', 'via', '192.0.2.1');
  try {
    const cases: Array<[unknown, RegExp]> = [
      [{ Network: '0.0.0.0/0', Backend: { Type: 'vxlan' } }, /invalid network config: Network: 0\.0\.0\.0\/0 .*every address/],
      [{ Network: '192.0.0.0/16', Backend: { Type: 'vxlan' } }, /Network 192\.0\.0\.0\/16 overlaps 192\.0\.2\.0\/24 on eth0/],
      [{ Network: '10.50.0.0/16', Backend: { Type: 'vxlan' } }, /Network 10\.50\.0\.0\/16 overlaps the route 10\.50\.0\.0\/16 via 192\.0\.2\.1/],
      [{ Network: '192.0.2.0/25', SubnetLen: 28, Backend: { Type: 'vxlan' } }, /overlaps 192\.0\.2\.0\/24 on eth0/],
    ];
    for (const [config, why] of cases) {
      const prefix = await prefixWith(config);
      const a = agent(prefix);
      assert.equal(await a.exitCode(), 1, a.transcript());
      assert.match(a.transcript(), why);
      noStack(a);
      await nothingLeased(prefix);
    }
  } finally {
    await h1.ip('route', 'del', '10.50.0.0/16');
  }
});

test('--subnet-lease-ttl beyond etcd\'s maximum is a usage error, before anything is leased', async () => {
  const prefix = await prefixWith(CONFIG);
  const a = agent(prefix, ['--subnet-lease-ttl', '9000000001']);
  assert.equal(await a.exitCode(), 2, a.transcript());
  assert.match(a.stderr, /--subnet-lease-ttl 9000000001: .*9000000000/);
  noStack(a);
  await nothingLeased(prefix);
});

test('a config changed in etcd while the agent runs is logged with what changed and that a restart applies it', async () => {
  const prefix = await prefixWith(CONFIG);
  const a = agent(prefix);
  try {
    await a.waitForMsg('agent ready');
    await etcd.etcdctl(['put', `${prefix}/config`, JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan', VNI: 2 } })]);
    const l = await a.waitForMsg(/network config changed in etcd/);
    assert.deepEqual(l.changes, ['Backend.VNI: 1 -> 2']);
    assert.match(l.msg, /restart the agent to apply it/);
    await etcd.etcdctl(['put', `${prefix}/config`, '{"Network": "nonsense"}']);
    const bad = await a.waitForLog('the invalid config', (x) => /network config changed in etcd/.test(x.msg) && /invalid network config: Network/.test(String(x.err)));
    assert.ok(bad);
    const st = await h1.exec([process.execPath, CLI, 'status', '--status-socket', statusSocket(h1)]);
    assert.match(st.stdout, /network config changed in etcd/);
    assert.ok(a.running, 'the agent keeps running with the config it started with');
  } finally {
    await a.stop();
  }
});

test('six 1 MB values under the prefix: weft leases and an agent list them in pages, skipping the oversized values', async () => {
  const prefix = await prefixWith(CONFIG);
  const client = etcd.client();
  const big = JSON.stringify({ PublicIP: '192.0.2.70', PublicIPv6: null, BackendType: 'vxlan', Junk: 'x'.repeat(1_000_000) });
  for (let i = 0; i < 6; i++) await client.put(`${prefix}/subnets/10.244.${70 + i}.0-24`).value(big);
  const r = await h1.exec([process.execPath, CLI, 'leases', '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', prefix, '-o', 'json'], { allowFail: true });
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as { malformed: Array<{ key: string; reason: string; subnet: string }> };
  assert.equal(rep.malformed.length, 6);
  for (const m of rep.malformed) assert.match(m.reason, /value is 1000\d+ bytes, over 64 KiB/);
  const a = agent(prefix);
  try {
    await a.waitForMsg('agent ready', 20_000);
    await a.waitForLog('the oversized values skipped', (l) => l.msg === 'skipping malformed lease written by someone else' && /over 64 KiB/.test(String(l.reason)));
    const own = a.lines.find((l) => l.msg === 'lease acquired')!.subnet as string;
    assert.ok(!/^10\.244\.7[0-5]\.0\/24$/.test(own), `the oversized keys still hold their subnets: got ${own}`);
  } finally {
    await a.stop();
  }
});

test('65,536 leases: weft leases lists them all', { timeout: 180_000 }, async () => {
  const prefix = await prefixWith({ Network: '10.0.0.0/8', SubnetLen: 24, Backend: { Type: 'host-gw' } });
  const client = etcd.client();
  const value = (i: number): string => JSON.stringify({ PublicIP: `198.51.${(i >> 8) & 255}.${i & 255}`, PublicIPv6: null, BackendType: 'host-gw' });
  const t0 = Date.now();
  // 512 transactions of 128 puts (etcd's limit per transaction), eight at a time.
  const batch = async (i: number): Promise<void> => {
    const puts = [];
    for (let j = i; j < i + 128; j++) puts.push(client.put(`${prefix}/subnets/10.${j >> 8}.${j & 255}.0-24`).value(value(j)));
    await client.if(`${prefix}/config`, 'Version', '>', 0).then(...puts).commit();
  };
  for (let i = 0; i < 65_536; i += 128 * 8) await Promise.all(Array.from({ length: 8 }, (_, k) => batch(i + k * 128)));
  const wrote = Date.now() - t0;
  const t1 = Date.now();
  const r = await run([process.execPath, CLI, 'leases', '--etcd-endpoints', etcd.clientEndpoint, '--etcd-prefix', prefix, '-o', 'json'], { allowFail: true, timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { leases: unknown[] }).leases.length, 65_536);
  process.stdout.write(`# 65,536 leases (${wrote} ms to write): weft leases listed them in ${Date.now() - t1} ms\n`);
  await etcd.etcdctl(['del', '--prefix', `${prefix}/`]);
});

test('an agent without etcd says "etcd unreachable" in weft status and /readyz, not "waiting for the network config"', async () => {
  const prefix = await prefixWith(CONFIG);
  const a = agent(prefix, ['--healthz-ip', '192.0.2.11', '--healthz-port', '9811'], 'http://192.0.2.1:2999');
  try {
    await a.waitForMsg(/cannot read the network config/);
    const st = await h1.exec([process.execPath, CLI, 'status', '--status-socket', statusSocket(h1)]);
    assert.match(st.stdout, /agent .* etcd unreachable/);
    assert.doesNotMatch(st.stdout, /waiting for the network config/);
    const get = "const r = await fetch(process.argv[1]); process.stdout.write((await r.text()).trim() + ' ' + r.status)";
    const body = await h1.exec([process.execPath, '--input-type=module', '-e', get, 'http://192.0.2.11:9811/readyz']);
    assert.match(body.stdout, /etcd unreachable.* 503$/s);
  } finally {
    await a.stop();
  }
});

/**
 * A TCP relay in the root namespace between an agent (in h1, reaching it
 * through the router) and etcd; once cut, it accepts and resets every
 * connection and notes when each came.
 */
async function relay(target: string): Promise<{ endpoint: string; cut: () => number[]; close: () => Promise<void> }> {
  const t = new URL(target);
  let attempts: number[] | null = null;
  const socks = new Set<net.Socket>();
  const srv = net.createServer((c) => {
    if (attempts) {
      attempts.push(Date.now());
      c.destroy();
      return;
    }
    const up = net.connect(Number(t.port), t.hostname);
    for (const s of [c, up]) {
      socks.add(s);
      s.on('error', () => s.destroy());
      s.on('close', () => socks.delete(s));
    }
    c.pipe(up).pipe(c);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}`,
    cut: () => {
      attempts = [];
      for (const s of socks) s.destroy();
      return attempts;
    },
    close: () => new Promise<void>((r) => srv.close(() => r())),
  };
}

test('reconnection backs off exponentially with jitter instead of a steady stream of connections', { timeout: 60_000 }, async () => {
  const prefix = await prefixWith(CONFIG);
  const r = await relay(etcd.clientEndpoint);
  // The root namespace's relay is reached from an agent there: run this one agent outside the lab host.
  const child = (await import('../../lab/exec.js')).startProcess([
    process.execPath, CLI, 'agent', '--etcd-endpoints', r.endpoint, '--etcd-prefix', prefix, '--dataplane', 'none',
    '--iface', 'lo', '--subnet-file', `${h1.dir}/root-subnet.env`, '--status-socket', `${h1.dir}/root.sock`,
  ]);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  try {
    await waitFor('the agent ready', () => out.includes('agent ready'), 15_000);
    const attempts = r.cut();
    const t0 = Date.now();
    // The outage is the scenario: 14 s without etcd, connection attempts counted as they come.
    await new Promise((res) => setTimeout(res, 14_000));
    const at = attempts.map((t) => t - t0);
    const late = at.filter((t) => t >= 8_000).length;
    process.stdout.write(`# etcd cut for 14 s: ${at.length} connection attempts, at ${at.join(' ')} ms; ${late} in the last 6 s\n`);
    // A steady 2 a second would be 28 and 12; doubling from 0.2 s is about 6 watch attempts (each up to 2 connections).
    assert.ok(at.length <= 14, `${at.length} connection attempts in 14 s`);
    assert.ok(late <= 3, `${late} connection attempts in the last 6 s: the backoff does not grow`);
    assert.ok(at.length >= 4, 'it keeps trying');
  } finally {
    child.kill('SIGTERM');
    await r.close();
  }
});



