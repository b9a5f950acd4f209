// The CLI loads a command's modules only when that command runs: `--version`,
// every `--help` and `config check` must not load etcd3 and gRPC, protobufjs,
// the native addon or a runner's bundle holding them (they cost most of a
// start). Checked by recording what the process really loads (test/harness/record-imports.ts), never by timing it,
// and, since dist/cli.js is a bundle (packaging/bundle-cli.mjs), by what went
// into it: a module inside the bundle loads without the recorder seeing it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CLI } from '../../lab/agent.js';

const RECORDER = fileURLToPath(new URL('../harness/record-imports.js', import.meta.url));

/** What counts as heavy, by the path it is loaded from. */
const HEAVY: Array<[string, RegExp]> = [
  ['etcd3', /\/node_modules\/etcd3\//],
  ['@grpc/grpc-js', /\/node_modules\/@grpc\/grpc-js\//],
  ['protobufjs', /\/node_modules\/protobufjs\//],
  ['the native addon', /weft_native\.node$/],
  // The runners bundled with etcd3, gRPC and protobufjs inside (packaging/bundle-cli.mjs): the recorder sees only the bundle.
  ['a runner bundle', /\/dist\/cli\/[a-z]+-run\.cjs$/],
];

/** Runs weft with args and returns its exit code and the modules it loaded. */
function loaded(args: string[], input = ''): { code: number | null; stderr: string; modules: string[]; heavy: string[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-imports-'));
  const out = path.join(dir, 'modules');
  try {
    const r = spawnSync(process.execPath, ['--import', RECORDER, CLI, ...args], {
      encoding: 'utf8',
      input,
      env: { PATH: process.env.PATH, WEFT_RECORD_IMPORTS: out },
      timeout: 20_000,
    });
    const modules = fs.existsSync(out) ? fs.readFileSync(out, 'utf8').split('\n').filter(Boolean) : [];
    const heavy = HEAVY.filter(([, re]) => modules.some((m) => re.test(m))).map(([name]) => name);
    return { code: r.status, stderr: r.stderr, modules, heavy };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const LIGHT: Array<{ args: string[]; input?: string; code: number }> = [
  { args: ['--version'], code: 0 },
  { args: ['--help'], code: 0 },
  { args: ['agent', '--help'], code: 0 },
  { args: ['leases', '--help'], code: 0 },
  { args: ['status', '--help'], code: 0 },
  { args: ['uninstall', '--help'], code: 0 },
  { args: ['config', '--help'], code: 0 },
  { args: ['config', 'check', '--help'], code: 0 },
  { args: ['bpf', '--help'], code: 0 },
  { args: ['bpf', 'peers', '--help'], code: 0 },
  { args: ['bpf', 'lookup', '--help'], code: 0 },
  { args: ['config', 'check', '-'], input: '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}', code: 0 },
  { args: ['config', 'check', '-'], input: '{"Network":"10.244.0.0/16","Backend":{"Type":"geneve"}}', code: 1 },
  { args: ['agent', '--bogus'], code: 2 },
  { args: [], code: 2 },
];

for (const c of LIGHT) {
  test(`weft ${c.args.join(' ') || '(no command)'} loads none of etcd3, gRPC, protobufjs, the native addon, a runner bundle`, () => {
    const r = loaded(c.args, c.input);
    assert.equal(r.code, c.code, r.stderr);
    assert.ok(r.modules.some((m) => m.endsWith('/cli.cjs')), `the recorder saw the CLI itself load: ${r.modules.slice(0, 5).join(', ')}`);
    assert.deepEqual(r.heavy, [], `loaded: ${r.heavy.join(', ')}`);
  });
}

// The recorder must see these modules when a command does load them, or the tests above prove nothing.
test('the commands that need them do load etcd3 and gRPC (in their bundle), protobufjs, the native addon (the recorder sees them)', () => {
  const leases = loaded(['leases', '--etcd-endpoints', 'https://127.0.0.1:1', '--etcd-certfile', '/nonexistent']);
  assert.equal(leases.code, 2, leases.stderr);
  assert.match(leases.stderr, /--etcd-certfile and --etcd-keyfile go together/);
  // etcd3 and gRPC are inside leases-run.cjs.
  assert.ok(leases.modules.some((m) => m.endsWith('/dist/cli/leases-run.cjs')), `loaded: ${leases.modules.join(', ')}`);

  const status = loaded(['status', '--status-socket', '/nonexistent/weft.sock']);
  assert.equal(status.code, 3, status.stderr);
  assert.deepEqual(status.heavy, ['protobufjs']);

  const pins = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-pins-'));
  try {
    const bpf = loaded(['bpf', 'programs', '--bpf-pin-dir', pins]);
    assert.equal(bpf.code, 3, bpf.stderr);
    assert.ok(bpf.heavy.includes('the native addon'), `loaded: ${bpf.heavy.join(', ')}`);
  } finally {
    fs.rmSync(pins, { recursive: true, force: true });
  }
});

test('the bundle holds the definitions, config check, weft bpf and yargs; none of etcd3, gRPC, protobufjs, pino, the addon, another runner, or core/errors', () => {
  const meta = path.resolve(path.dirname(CLI), '../build/cli-bundle.json');
  const inputs = Object.keys((JSON.parse(fs.readFileSync(meta, 'utf8')) as { inputs: Record<string, unknown> }).inputs);
  const packages = new Set(inputs.filter((f) => f.includes('node_modules/')).map((f) => /.*node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f)![1]));
  assert.ok(packages.has('yargs') && inputs.includes('dist/cli/agent.js'), `esbuild's list is of this bundle: ${inputs.slice(0, 5).join(', ')}`);
  for (const heavy of ['etcd3', '@grpc/grpc-js', 'protobufjs', 'pino', 'cockatiel']) assert.ok(!packages.has(heavy), `${heavy} is in the bundle`);
  const ours = inputs.filter((f) => f.startsWith('dist/'));
  for (const f of ['dist/cli/config-run.js', 'dist/config/network.js', 'dist/cli/bpf-run.js', 'dist/cli/bpf/pins.js']) assert.ok(ours.includes(f), `${f} is in the bundle: ${ours.join(', ')}`);
  // The other runners, and weft bpf programs' TC inspection, load on demand; WeftError must be one class, the runners' (packaging/bundle-cli.mjs).
  const fast = ['dist/cli/config-run.js', 'dist/cli/bpf-run.js'];
  assert.deepEqual(ours.filter((f) => (f.endsWith('-run.js') && !fast.includes(f)) || f === 'dist/cli/bpf/programs.js' || f === 'dist/core/errors.js' || f.endsWith('.node')), []);
});
