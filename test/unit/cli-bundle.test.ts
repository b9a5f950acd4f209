// dist/cli.js is a bundle (packaging/bundle-cli.mjs): the entry, the command
// definitions and yargs in one file, for a fast start. It must answer exactly
// as tsc's entry does (dist/cli-unbundled.js, which loads yargs from
// node_modules): same output, same exit code, for help, usage errors, flanneld's
// flags and name, FLANNELD_ variables, and yargs' translations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import vm from 'node:vm';
import { CLI } from '../../lab/agent.js';

const UNBUNDLED = path.join(path.dirname(CLI), 'cli-unbundled.js');

interface Case {
  args: string[];
  env?: NodeJS.ProcessEnv;
  input?: string;
  argv0?: string;
}

function answer(cli: string, c: Case): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...c.args], {
    encoding: 'utf8',
    input: c.input ?? '',
    env: { PATH: process.env.PATH, ...c.env },
    argv0: c.argv0,
    timeout: 20_000,
  });
  // Which pin dirs exist on this machine (the hint of a missing one) changes as other tests run.
  const stderr = r.stderr.replace(/did you mean .*\?$/gm, 'did you mean ...?');
  return { code: r.status, stdout: r.stdout, stderr };
}

test('dist/cli.js is the bundle and dist/cli-unbundled.js is tsc\'s entry', () => {
  const bundle = fs.readFileSync(CLI, 'utf8');
  const unbundled = fs.readFileSync(UNBUNDLED, 'utf8');
  assert.match(bundle, /^#!\/usr\/bin\/env node\n\/\/ weft's CLI bundle/);
  assert.match(bundle, /yargs-factory\.js/);
  assert.match(unbundled, /await import\('yargs'\)/);
  assert.ok(!unbundled.includes("weft's CLI bundle"));
});

const GOOD = '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}';
const CASES: Case[] = [
  { args: ['--help'] },
  { args: ['--version'] },
  { args: [] },
  { args: ['bogus'] },
  ...[['agent'], ['leases'], ['status'], ['monitor'], ['uninstall'], ['install-cni'], ['mk-docker-opts'], ['migrate-v2'], ['config'], ['config', 'check'], ['bpf'], ['bpf', 'peers'], ['bpf', 'lookup'], ['bpf', 'counters'], ['bpf', 'drops'], ['bpf', 'programs']].map((cmd) => ({ args: [...cmd, '--help'] })),
  { args: ['config', 'check', '-'], input: GOOD },
  { args: ['config', 'check', '-'], input: '{"Network":"10.244.0.0/16","Backend":{"Type":"geneve"}}' },
  { args: ['config', 'check', '/nonexistent/net.json'] },
  { args: ['config', 'check'] },
  { args: ['bpf', 'peers', '--bpf-pin-dir', '/nonexistent/pins'] },
  { args: ['bpf', 'peers', '--pin-dir', '/nonexistent/pins', '-o', 'yaml'] },
  { args: ['bpf', 'peers'], env: { FLANNELD_BPF_PIN_DIR: '/nonexistent/pins' } },
  { args: ['bpf'] },
  { args: ['agent', '--bogus'] },
  { args: ['agent', '-ip-masq', 'false'] },
  { args: ['agent', '--dataplane', 'xdp'] },
  { args: ['agent', '-subnet-lease-renew-margin=0x5a0'] },
  { args: ['leases', '--etcd-endpoints', 'https://127.0.0.1:1', '--etcd-certfile', '/nonexistent'] },
  { args: ['leases', '-etcd-endpoints=https://127.0.0.1:1'], env: { FLANNELD_ETCD_CERTFILE: '/nonexistent', FLANNELD_KUBE_SUBNET_MGR: 'true' } },
  { args: ['mk-docker-opts', '-x'] },
  { args: ['mk-docker-opts', '-k', '1bad'] },
  { args: ['-help'], argv0: 'flanneld' },
  { args: ['-version'], argv0: 'flanneld' },
  { args: ['-bogus'], argv0: 'flanneld' },
  // Help pages are answered from pages rendered at build time (src/cli/help-pages.ts) only where yargs would print the same.
  { args: ['--help'], env: { LANG: 'C.UTF-8' } },
  { args: ['bpf', 'peers', '--help'], env: { LC_ALL: 'en_GB.UTF-8' } },
  { args: ['agent', '--help'], env: { LANG: 'pt_BR.UTF-8' } },
  { args: ['config', '--help'], env: { LANGUAGE: 'fr' } },
  { args: ['agent', '--help'], env: { FLANNELD_IFACE: 'eth0' } },
  { args: ['bpf', 'bogus', '--help'] },
  { args: ['--help', 'agent'] },
  // yargs' own strings in German, and in Japanese, whose widths string-width itself computes.
  { args: ['agent', '--help'], env: { LANG: 'de_DE.UTF-8' } },
  { args: ['bpf', '--help'], env: { LC_ALL: 'ja_JP.UTF-8' } },
  { args: ['agent', '--bogus-flag=1', 'extra'], env: { LANG: 'ja_JP.UTF-8' } },
  { args: ['leases', 'extra'], env: { LANG: 'ja_JP.UTF-8' } },
];

for (const c of CASES) {
  const name = [c.argv0 ?? 'weft', ...c.args].join(' ') + (c.env ? ` (${Object.entries(c.env).map(([k, v]) => `${k}=${v}`).join(' ')})` : '');
  test(`${name}: the bundle answers as tsc's entry does`, () => {
    const want = answer(UNBUNDLED, c);
    const got = answer(CLI, c);
    assert.ok(want.stdout || want.stderr, 'the command says something');
    assert.deepEqual(got, want);
  });
}

test('the bundle holds a rendered help page for every command, each as tsc\'s entry prints it', () => {
  // One JSON string in the bundle; esbuild picks its quotes.
  const m = /^var RENDERED_HELP = JSON\.parse\((.*)\);$/m.exec(fs.readFileSync(CLI, 'utf8'));
  assert.ok(m, 'the bundle has its pages (packaging/bundle-cli.mjs)');
  const help = JSON.parse(vm.runInNewContext(m[1]) as string) as { width: number; locales: string[]; pages: Record<string, string> };
  // Every command, as the cases above ask each for its help.
  const paths = CASES.filter((c) => !c.env && !c.argv0 && c.args.at(-1) === '--help' && !c.args.includes('bogus')).map((c) => c.args.slice(0, -1).join(' '));
  assert.deepEqual(Object.keys(help.pages).sort(), [...new Set(paths)].sort());
  for (const [p, page] of Object.entries(help.pages)) assert.equal(page, answer(UNBUNDLED, { args: [...(p ? p.split(' ') : []), '--help'] }).stdout, `weft ${p} --help`);
  assert.ok(help.locales.includes('de') && help.locales.includes('pt_BR'), 'yargs\' locales are listed');
});

test('mk-docker-opts writes the same file from the bundle', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-bundle-'));
  try {
    const env = path.join(dir, 'subnet.env');
    fs.writeFileSync(env, 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.13.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
    for (const [cli, out] of [[CLI, 'bundled'], [UNBUNDLED, 'unbundled']]) {
      const r = answer(cli, { args: ['mk-docker-opts', '-f', env, '-d', path.join(dir, out), '-i'] });
      assert.equal(r.code, 0, r.stderr);
    }
    const bundled = fs.readFileSync(path.join(dir, 'bundled'), 'utf8');
    assert.match(bundled, /^DOCKER_OPT_BIP="--bip=10.244.13.1\/24"$/m);
    assert.equal(bundled, fs.readFileSync(path.join(dir, 'unbundled'), 'utf8'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// The bundle answers a printable ASCII string's width with its length, without
// loading string-width; this holds for each version that yargs, cliui and wrap-ansi import.
test('every string-width under yargs gives printable ASCII its length', async () => {
  const from = (file: string, pkg: string): string => createRequire(file).resolve(pkg);
  const yargs = from(CLI, 'yargs');
  const cliui = from(yargs, 'cliui');
  const versions = [from(yargs, 'string-width'), from(cliui, 'string-width'), from(from(cliui, 'wrap-ansi'), 'string-width')];
  const ascii = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i));
  const samples = [...ascii, ascii.join(''), '  --etcd-endpoints  comma-separated etcd endpoints  [string] [default: "http://127.0.0.1:2379"]', ''];
  for (const file of new Set(versions)) {
    const { default: stringWidth } = (await import(pathToFileURL(file).href)) as { default: (s: string) => number };
    for (const s of samples) assert.equal(stringWidth(s), s.length, `${file}: ${JSON.stringify(s)}`);
    assert.equal(stringWidth('日本'), 4, `${file} is string-width itself`);
  }
});
