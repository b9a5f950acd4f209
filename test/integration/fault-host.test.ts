// One host, things an operator gets wrong: a second agent started beside the
// first, an agent started with `ip netns exec` (a private mount namespace and
// a fresh /sys), a pin dir a user owns or a planted symlink among the pins, and
// bad flags. Each is refused (or, for a private bpffs, said plainly) before
// anything is leased or created, in one line, without a stack trace; the
// first agent's lease, socket and pins are untouched.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Lab, type LabHost } from '../../lab/netns.js';
import { LabEtcd } from '../../lab/etcd.js';
import { CLI, startAgent, statusSocket, subnetFile } from '../../lab/agent.js';
import { run, startProcess } from '../../lab/exec.js';
import { BpfObject } from 'weft/native/bpf.js';
import { objectPath } from 'weft/dataplane/ebpf/loader.js';

let lab: Lab;
let etcd: LabEtcd;
let h1: LabHost;
let h2: LabHost;
let h3: LabHost;
let n = 0;
const CONFIG = '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}';

before(async () => {
  lab = await Lab.create();
  h1 = await lab.addHost('h1', { octet: 11 });
  h2 = await lab.addHost('h2', { octet: 12 });
  h3 = await lab.addHost('h3', { octet: 13 });
  etcd = await LabEtcd.start({ netns: lab.router });
});
after(async () => {
  await etcd?.destroy();
  await lab?.destroy();
});

async function freshPrefix(): Promise<string> {
  const prefix = `/h${n++}/network`;
  for (const h of [h1, h2]) fs.rmSync(subnetFile(h), { force: true });
  await etcd.etcdctl(['put', `${prefix}/config`, CONFIG]);
  return prefix;
}

/** The leases under the prefix with their etcd lease ids and revisions: a re-lease changes it. */
const leaseState = async (prefix: string): Promise<string> => JSON.stringify(JSON.parse(await etcd.etcdctl(['get', '--prefix', `${prefix}/subnets/`, '-w', 'json'])).kvs ?? []);
const leaseKeys = async (prefix: string): Promise<string> => (await etcd.etcdctl(['get', '--prefix', '--keys-only', `${prefix}/subnets/`])).trim();

function oneLine(stderr: string): void {
  assert.equal(stderr.trim().split('\n').length, 1, `one line: ${stderr}`);
  assert.doesNotMatch(stderr, /\n\s+at |TypeError|is not a function/);
}

test('a second agent on the same host is refused naming the first; the first keeps its lease, socket and pins', async () => {
  const prefix = await freshPrefix();
  const first = startAgent(h1, { etcdEndpoint: etcd.endpoint, dataplane: 'ebpf', extra: ['--etcd-prefix', prefix] });
  try {
    await first.waitForMsg('agent ready', 30_000);
    const before = await leaseState(prefix);
    const sock = statusSocket(h1);
    const pins = fs.readdirSync(h1.pinDir).sort();
    const cases: Array<{ where: LabHost; extra: string[]; why: RegExp }> = [
      // Same network namespace, its own socket, subnet file and pin dir.
      { where: h1, extra: ['--status-socket', path.join(h1.dir, 'second.sock'), '--subnet-file', path.join(h1.dir, 'second.env'), '--bpf-pin-dir', path.join(h1.pinDir, 'second')], why: /network namespace/ },
      // Another network namespace, the same pin dir.
      { where: h2, extra: ['--bpf-pin-dir', h1.pinDir], why: new RegExp(`pin dir ${h1.pinDir.replace(/[/.]/g, '\\$&')}`) },
      // A third network namespace, the same status socket.
      { where: h3, extra: ['--status-socket', sock], why: new RegExp(`${sock.replace(/[/.]/g, '\\$&')}`) },
    ];
    // Each conflicts with the first agent only (one per namespace), so they start side by side.
    const seconds = cases.map((c) => startAgent(c.where, { etcdEndpoint: etcd.endpoint, dataplane: 'ebpf', extra: ['--etcd-prefix', prefix, ...c.extra] }));
    for (const [i, second] of seconds.entries()) {
      assert.equal(await second.exitCode(45_000), 1, second.transcript());
      assert.match(second.stderr, new RegExp(`another weft agent \\(pid ${first.pid}\\)`));
      assert.match(second.stderr, cases[i].why);
      oneLine(second.stderr);
    }
    assert.ok(first.running);
    assert.equal(await leaseState(prefix), before, 'the first agent\'s lease is untouched, nothing else leased');
    assert.ok(fs.statSync(sock).isSocket(), 'the first agent\'s socket is still there');
    assert.deepEqual(fs.readdirSync(h1.pinDir).filter((p) => p !== 'second').sort(), pins);
    const st = await h1.exec([process.execPath, CLI, 'status', '--status-socket', sock]);
    assert.match(st.stdout, new RegExp(`pid ${first.pid} `));
  } finally {
    await first.stop();
  }
});

test('`ip netns exec` (a private bpffs): the agent says plainly that pins will not survive and how to fix it', async () => {
  const prefix = await freshPrefix();
  const child = startProcess([
    'ip', 'netns', 'exec', h1.name, process.execPath, CLI, 'agent', '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', prefix,
    '--dataplane', 'ebpf', '--bpf-pin-dir', '/sys/fs/bpf/weft-netns-exec-test', '--subnet-file', subnetFile(h1), '--status-socket', statusSocket(h1),
  ]);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  try {
    const { waitFor } = await import('../../lab/exec.js');
    await waitFor('the agent to warn about its private bpffs', () => /pins will not survive a restart/.test(out) || (child.exitCode !== null ? Promise.reject(new Error(out)) : false), 30_000);
    assert.match(out, /private to this agent's mount namespace/);
    assert.match(out, /nsenter --net=/);
    // The host's /sys/fs/bpf never saw the pin dir.
    assert.equal(fs.existsSync('/sys/fs/bpf/weft-netns-exec-test'), false);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  // What it created in the namespace goes with the test's own cleanup.
  await run(['ip', 'netns', 'exec', h1.name, process.execPath, CLI, 'uninstall', '--bpf-pin-dir', '/sys/fs/bpf/weft-netns-exec-test'], { allowFail: true });
});

test('a pin dir a user owns, or one writable by others, or a pin that is a symlink, is refused before anything is leased', async () => {
  const cases: Array<{ prep: (dir: string) => void; why: RegExp }> = [
    { prep: (dir) => fs.chownSync(dir, 65534, 65534), why: /is owned by uid 65534.*chown root/ },
    { prep: (dir) => fs.chmodSync(dir, 0o777), why: /writable by others.*chmod/ },
    { prep: (dir) => fs.symlinkSync('/tmp', path.join(dir, 'weft_peers')), why: /weft_peers is a symlink/ },
  ];
  const prefix = await freshPrefix();
  // Refused before any lock is taken or anything leased: the three run side by side, each with its own dir and socket.
  const agents = cases.map((c, i) => {
    const dir = path.join(h1.pinDir, `bad${i}`);
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    fs.chmodSync(dir, 0o755);
    c.prep(dir);
    return startAgent(h1, { etcdEndpoint: etcd.endpoint, dataplane: 'ebpf', extra: ['--etcd-prefix', prefix, '--bpf-pin-dir', dir, '--status-socket', path.join(h1.dir, `bad${i}.sock`)] });
  });
  for (const [i, a] of agents.entries()) {
    assert.equal(await a.exitCode(45_000), 2, a.transcript());
    assert.match(a.stderr, cases[i].why);
    oneLine(a.stderr);
  }
  assert.equal(await leaseKeys(prefix), '', 'nothing leased');
  assert.equal((await h1.ip('link', 'show')).includes('weft.vxlan'), false, 'no device created');
});

test('bad flags: refused in one line before anything is leased, or the last of a repeated flag wins', async () => {
  const prefix = await freshPrefix();
  const ro = path.join(h1.dir, 'ro');
  fs.mkdirSync(ro, { recursive: true });
  const cases: Array<{ args: string[]; why: RegExp; wrap?: (cmd: string[]) => string[] }> = [
    { args: ['--subnet-file', h1.dir], why: /--subnet-file .* is a directory/ },
    { args: ['--subnet-file', path.join(ro, 'subnet.env')], why: /--subnet-file .*read-only/, wrap: (cmd) => ['unshare', '-m', 'sh', '-c', `mount --bind -o ro ${ro} ${ro} && exec "$@"`, 'sh', ...cmd] },
    { args: ['--healthz-ip', 'banana', '--healthz-port', '9000'], why: /--healthz-ip banana: not an IP address/ },
    { args: ['--dataplane', 'fast'], why: /--dataplane.*fast.*auto, ebpf, netlink, none/ },
  ];
  // Each is refused before the host pre-flight, so they can run side by side (each with its own status socket).
  const runs = cases.map((c, i) => {
    const cmd = [process.execPath, CLI, 'agent', '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', prefix, '--dataplane', 'none', '--status-socket', path.join(h1.dir, `flags${i}.sock`), ...c.args];
    return h1.exec(c.wrap ? c.wrap(cmd) : cmd, { allowFail: true, timeoutMs: 60_000 });
  });
  // A repeated single-valued flag: the last one wins (as flanneld's Go flags do).
  const repeated = h1.exec([process.execPath, CLI, 'leases', '--etcd-endpoints', 'http://192.0.2.1:1', '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', prefix], { allowFail: true, timeoutMs: 60_000 });
  for (const [i, r] of (await Promise.all(runs)).entries()) {
    assert.equal(r.code, 2, `${cases[i].args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, cases[i].why);
    oneLine(r.stderr);
  }
  assert.equal(await leaseKeys(prefix), '', 'nothing leased');
  const r = await repeated;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^0 leases under /);
});

test('weft bpf programs reports weft programs whose maps are not the pinned ones', async () => {
  const prefix = await freshPrefix();
  const a = startAgent(h1, { etcdEndpoint: etcd.endpoint, dataplane: 'ebpf', extra: ['--etcd-prefix', prefix] });
  await a.waitForMsg('agent ready', 30_000);
  await a.stop();
  // Someone loads weft's objects again into the pin dir without attaching them: new maps pinned, old programs attached.
  for (const p of fs.readdirSync(h1.pinDir)) if (p.startsWith('weft_')) fs.rmSync(path.join(h1.pinDir, p));
  BpfObject.load(objectPath('overlay.o'), { pinRoot: h1.pinDir }).close();
  const r = await h1.exec([process.execPath, CLI, 'bpf', 'programs', '--pin-dir', h1.pinDir], { allowFail: true });
  assert.match(r.stdout, /overlay_egress .* uses weft_peers id \d+, but the pinned weft_peers is id \d+/);
  await h1.exec([process.execPath, CLI, 'uninstall', '--bpf-pin-dir', h1.pinDir], { allowFail: true });
});
