// flanneld's command lines, read as Go's flag package reads them: an operator's
// options file and unit work unchanged, `flanneld` as argv[0] is `weft agent`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { CLI } from '../../lab/agent.js';
import { commandLine, goKinds, parseGoFlags } from 'weft/cli/goflags.js';
import { WeftError } from 'weft/core/errors.js';
import { weftVersion } from 'weft/core/version.js';

const kinds = goKinds({
  'etcd-endpoints': { type: 'string' },
  'etcd-prefix': { type: 'string' },
  iface: { type: 'string', array: true },
  'ip-masq': { type: 'boolean' },
  'healthz-port': { type: 'number' },
  v: { type: 'number' },
});
kinds.set('version', 'bool');

const parse = (...args: string[]): string[] => parseGoFlags(args, kinds, 'agent');

function usage(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: Error) => e instanceof WeftError && e.kind === 'usage' && re.test(e.message), String(re));
}

test('the four spellings of a valued flag, and booleans as Go takes them', () => {
  for (const spelling of [['-etcd-prefix=/x'], ['-etcd-prefix', '/x'], ['--etcd-prefix=/x'], ['--etcd-prefix', '/x']]) {
    assert.deepEqual(parse(...spelling), ['--etcd-prefix=/x'], spelling.join(' '));
  }
  assert.deepEqual(parse('-ip-masq'), ['--ip-masq=true']);
  assert.deepEqual(parse('--ip-masq=false'), ['--ip-masq=false']);
  for (const t of ['1', 't', 'T', 'TRUE', 'true', 'True']) assert.deepEqual(parse(`-ip-masq=${t}`), ['--ip-masq=true']);
  for (const f of ['0', 'f', 'F', 'FALSE', 'false', 'False']) assert.deepEqual(parse(`-ip-masq=${f}`), ['--ip-masq=false']);
  // A value that starts with '-' is still the value of a valued flag, as in Go.
  assert.deepEqual(parse('-etcd-prefix', '-odd'), ['--etcd-prefix=-odd']);
  assert.deepEqual(parse('-etcd-prefix='), ['--etcd-prefix=']);
});

test('repeated flags: the last value wins; -iface collects; integers as strconv.ParseInt(s, 0, 64)', () => {
  assert.deepEqual(parse('-etcd-endpoints=http://a:2379', '--etcd-endpoints', 'http://b:2379'), ['--etcd-endpoints=http://b:2379']);
  assert.deepEqual(parse('-iface=eth0', '-iface', 'eth1', '-ip-masq', '-ip-masq=false'), ['--ip-masq=false', '--iface=eth0', '--iface=eth1']);
  assert.deepEqual(parse('-healthz-port=0x1F90'), ['--healthz-port=8080']);
  assert.deepEqual(parse('-healthz-port=017'), ['--healthz-port=15']);
  assert.deepEqual(parse('-healthz-port=0b101', '-v=2'), ['--healthz-port=5', '--v=2']);
  usage(() => parse('-healthz-port=08'), /invalid value "08" for flag -healthz-port/);
  usage(() => parse('-healthz-port=8k'), /invalid value "8k" for flag -healthz-port/);
});

test("Go's errors: undefined flag, missing value, bad boolean, bad syntax; a stray argument is refused, not ignored", () => {
  usage(() => parse('-bogus'), /^flag provided but not defined: -bogus \(see weft agent --help\)$/);
  usage(() => parse('-etcd-prefix'), /^flag needs an argument: -etcd-prefix$/);
  usage(() => parse('-ip-masq=yes'), /invalid boolean value "yes" for -ip-masq/);
  usage(() => parse('---x'), /^bad flag syntax: ---x$/);
  usage(() => parse('-=x'), /^bad flag syntax: -=x$/);
  // flanneld would stop at "false" and silently drop every flag after it.
  usage(() => parse('-ip-masq', 'false', '-etcd-prefix=/x'), /unexpected argument "false": .*-ip-masq is a boolean flag and takes its value as -ip-masq=false/);
  usage(() => parse('-etcd-prefix=/x', 'extra'), /^unexpected argument "extra": weft agent takes only flags$/);
  usage(() => parse('--', '-etcd-prefix=/x'), /unexpected argument "-etcd-prefix=\/x"/);
  assert.deepEqual(parse('-etcd-prefix=/x', '--'), ['--etcd-prefix=/x']);
  assert.deepEqual(parse('-h'), ['--help']);
  assert.deepEqual(parse('-etcd-prefix=/x', '-help'), ['--help']);
  assert.deepEqual(parse('-etcd-prefix=/x', '-version'), ['--version']);
  assert.deepEqual(parse('--no-ip-masq'), ['--ip-masq=false'], "yargs' negation, which weft took before, still works");
});

test('flanneld as the invoked name is `weft agent`; other commands take single-dash long flags too', () => {
  assert.deepEqual(commandLine(['node', '/usr/bin/flanneld', '-etcd-prefix=/x', '--ip-masq'], 'node'), ['agent', '--etcd-prefix=/x', '--ip-masq=true']);
  assert.deepEqual(commandLine(['/usr/bin/node', '/usr/lib/weft/dist/cli.js', '-iface', 'eth0'], 'flanneld'), ['agent', '--iface=eth0']);
  assert.deepEqual(commandLine(['node', '/usr/bin/flanneld', '-version'], 'node'), ['--version']);
  assert.deepEqual(commandLine(['node', 'cli.js', 'agent', '-etcd-endpoints', 'http://a:2379', '-etcd-endpoints=http://b:2379'], 'node'), ['agent', '--etcd-endpoints=http://b:2379']);
  assert.deepEqual(commandLine(['node', 'cli.js', 'leases', '-etcd-prefix=/x', '-o', 'json'], 'node'), ['leases', '--etcd-prefix=/x', '-o', 'json']);
  assert.deepEqual(commandLine(['node', 'cli.js', '-version'], 'node'), ['--version']);
});

function run(argv0: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [argv0, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env }, timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('a `flanneld` symlink to weft: -version, -help, the Kubernetes flags refused, mistakes exit 2 in one line', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-flanneld-'));
  const flanneld = path.join(dir, 'flanneld');
  fs.symlinkSync(CLI, flanneld);
  try {
    const v = run(flanneld, ['-version']);
    assert.equal(v.code, 0);
    assert.equal(v.stdout.trim(), weftVersion());
    assert.equal(run(CLI, ['--version']).stdout.trim(), weftVersion());
    const help = run(flanneld, ['-help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /weft agent/);
    assert.match(help.stdout, /--iptables-forward-rules/);
    for (const [flag, args] of [['kube-subnet-mgr', ['-kube-subnet-mgr']], ['kube-api-url', ['-kube-api-url=https://k8s:6443']], ['kubeconfig-file', ['--kubeconfig-file', '/etc/kubernetes/admin.conf']]] as const) {
      const r = run(flanneld, [...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr, `weft: -${flag}: weft leases subnets from etcd, as flanneld does without -kube-subnet-mgr, and does not read the Kubernetes API; remove the Kubernetes flags and give -etcd-endpoints (and -etcd-prefix)\n`);
    }
    const env = run(flanneld, [], { FLANNELD_KUBE_SUBNET_MGR: 'true' });
    assert.equal(env.code, 2);
    assert.match(env.stderr, /^weft: -kube-subnet-mgr: weft leases subnets from etcd/);
    const stray = run(flanneld, ['--ip-masq', 'true', '-etcd-prefix=/x']);
    assert.equal(stray.code, 2);
    assert.equal(stray.stderr.split('\n').length, 2, 'one line');
    // glog's flags are accepted: the run gets as far as the etcd endpoint it was given.
    const glog = run(flanneld, ['-v=3', '-logtostderr', '-vmodule=x=2', '-etcd-endpoints=ftp://x']);
    assert.equal(glog.stderr, 'weft: --etcd-endpoints: ftp://x has scheme ftp:; use http:// or https://\n');
    // A single-valued flag given twice keeps the last value, for every command (yargs made it an array: ".split is not a function").
    const twice = run(CLI, ['leases', '--etcd-endpoints', 'ftp://a', '-etcd-endpoints=ftp://b']);
    assert.equal(twice.stderr, 'weft: --etcd-endpoints: ftp://b has scheme ftp:; use http:// or https://\n');
    // An empty FLANNELD_ variable is unset (flagutil.SetFlagsFromEnv), so it cannot break a flag.
    const empty = run(flanneld, ['-subnet-lease-renew-margin=0'], { FLANNELD_ETCD_PREFIX: '' });
    assert.match(empty.stderr, /--subnet-lease-renew-margin 0: must be/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
