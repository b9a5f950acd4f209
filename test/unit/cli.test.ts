// The CLI's handling of user mistakes: exit codes and messages that say what to fix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { CLI } from '../../lab/agent.js';
import { envArgs } from 'weft/cli/options.js';

function weft(args: string[], env: NodeJS.ProcessEnv = {}, input = '') {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', input, env: { PATH: process.env.PATH, ...env }, timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('config check prints the effective config with defaults filled in', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-cfg-'));
  try {
    const file = path.join(dir, 'net.json');
    fs.writeFileSync(file, '{"Network":"10.244.0.0/20","Backend":{"Type":"udp"}}');
    const r = weft(['config', 'check', file]);
    assert.equal(r.code, 0, r.stderr);
    const cfg = JSON.parse(r.stdout);
    assert.equal(cfg.SubnetLen, 24);
    assert.equal(cfg.SubnetMin, '10.244.1.0');
    assert.equal(cfg.SubnetMax, '10.244.15.0');
    assert.deepEqual(cfg.Backend, { Type: 'udp', Port: 8285 });
    assert.match(r.stderr, /15 subnets of \/24 can be leased; pods get MTU = interface MTU - 28/);
    const stdin = weft(['config', 'check', '-'], {}, '{"Network":"10.244.0.0/16"}');
    assert.equal(stdin.code, 0);
    assert.match(stdin.stderr, /no Backend given: flannel and weft run udp/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('config check names the field of an invalid config and exits 1', () => {
  const r = weft(['config', 'check', '-'], {}, '{"Network":"10.244.0.0/16","Backend":{"Type":"geneve"}}');
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^weft: invalid network config: Backend.Type: unknown backend type "geneve"/);
  const missing = weft(['config', 'check', '/nonexistent/net.json']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /cannot read \/nonexistent\/net.json: ENOENT/);
});

test('bad flags exit 2 with the reason', () => {
  assert.match(weft(['agent', '--bogus']).stderr, /^weft: flag provided but not defined: -bogus/);
  assert.equal(weft(['agent', '--bogus']).code, 2);
  const margin = weft(['agent', '--subnet-lease-renew-margin', '1440']);
  assert.equal(margin.code, 2);
  assert.match(margin.stderr, /--subnet-lease-renew-margin 1440: must be a whole number of minutes from 1 to 1439/);
  // One line, naming the flag and the choices.
  assert.equal(weft(['agent', '--dataplane', 'xdp']).stderr, 'weft: --dataplane "xdp": choose one of auto, ebpf, netlink, none (see weft --help)\n');
  assert.match(weft(['agent', '--iface', 'no-such-if0']).stderr, /--iface no-such-if0: no interface has that name or address \(interfaces here: lo/);
  assert.match(weft(['agent', '--etcd-endpoints', 'ftp://x', '--iface', 'lo', '--public-ip', '192.0.2.1']).stderr, /has scheme ftp:; use http:\/\/ or https:\/\//);
  assert.match(weft(['agent', '--etcd-endpoints', 'https://127.0.0.1:2379', '--etcd-certfile', '/x', '--iface', 'lo']).stderr, /--etcd-certfile and --etcd-keyfile go together/);
  assert.equal(weft([]).code, 2);
});

test('FLANNELD_ variables set the flags of the command being run, flags win, others are ignored', () => {
  const r = weft(['agent'], { FLANNELD_SUBNET_LEASE_RENEW_MARGIN: '0', FLANNELD_HEALTHZ_PORT: '' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--subnet-lease-renew-margin 0: must be/);
  assert.equal(weft(['leases'], { FLANNELD_KUBE_SUBNET_MGR: 'true', FLANNELD_ETCD_ENDPOINTS: 'ftp://x' }).stderr, 'weft: --etcd-endpoints: ftp://x has scheme ftp:; use http:// or https://\n', 'a flanneld-only variable does not concern weft leases');
  assert.deepEqual(envArgs(['agent', '--iface', 'eth1'], ['iface', 'etcd-prefix'], { FLANNELD_IFACE: 'eth0', FLANNELD_ETCD_PREFIX: '/x' }), ['--etcd-prefix=/x']);
  assert.deepEqual(envArgs(['agent'], ['iface'], { FLANNELD_IFACE: '' }), [], 'an empty variable is unset, as flanneld reads it');
  const cfg = weft(['config', 'check', '-'], { FLANNELD_ETCD_PREFIX: '/x' }, '{"Network":"10.244.0.0/16"}');
  assert.equal(cfg.code, 0, 'a FLANNELD_ variable for another command does not break this one');
});

// src/cli.ts runs the lines plainLine accepts without yargs. yargs, given the same line with weft's own
// definitions, must reach the same command with the same arguments.
test('lines read without yargs: yargs reads each to the same command and arguments', async () => {
  const { default: yargs } = await import('yargs');
  const { configCommand } = await import('weft/cli/config.js');
  const { bpfCommand } = await import('weft/cli/bpf.js');
  const { lastWins } = await import('weft/cli/options.js');
  const { plainLine } = await import('weft/cli/plain.js');
  const STOP = new Error('stopped before the handler');
  /** What yargs hands the command's handler, caught by a middleware that runs just before it. */
  const viaYargs = async (args: string[]): Promise<Record<string, unknown>> => {
    let argv: Record<string, unknown> = {};
    // (yargs throws a middleware's error synchronously, or rejects with it.)
    const parse = async (): Promise<unknown> =>
      yargs(args)
        .command(configCommand)
        .command(bpfCommand)
        .middleware(lastWins, true)
        .middleware((a) => {
          argv = a;
          throw STOP;
        })
        .strict()
        .exitProcess(false)
        .fail((msg, err) => {
          throw err ?? new Error(msg);
        })
        .parseAsync();
    await parse().then(
      () => assert.fail('the middleware ran'),
      (err: unknown) => assert.equal(err, STOP),
    );
    return argv;
  };
  const accepted = [
    ...['net.json', '/etc/weft/net.json', '-', '123', '0x10', 'true', 'a=b', 'with space.json', '日本.json', './-x'].map((f) => ['config', 'check', f]),
    ['bpf', 'peers'],
    ['bpf', 'peers', '--bpf-pin-dir', '/sys/fs/bpf/x'],
    ['bpf', 'peers', '--pin-dir', '123', '-o', 'json'],
    ['bpf', 'peers', '--output=json', '--bpf-pin-dir=/a=b'],
    ['bpf', 'programs', '-o', 'table'],
    ['bpf', 'lookup', '10.244.3.7'],
    ['bpf', 'lookup', 'not-an-ip', '--pin-dir', '/p'],
    ['bpf', 'counters', '--pin-dir=/p'],
    ['bpf', 'drops', '-o', 'json'],
  ];
  for (const args of accepted) {
    const plain = plainLine(args);
    assert.ok(plain, `plainLine takes ${args.join(' ')}`);
    const argv = await viaYargs(args);
    assert.equal((argv._ as string[]).join(' '), plain.command, args.join(' '));
    for (const [k, v] of Object.entries(plain.args)) {
      // yargs makes an empty string of -; config-run reads stdin for both.
      assert.deepEqual(argv[k], plain.command === 'config check' && v === '-' ? '' : v, `${args.join(' ')}: ${k}`);
    }
  }
  const refused = [
    ['config', 'check'], ['config', 'check', '--help'], ['config', 'check', '-x'], ['config', 'check', ''], ['config', 'check', 'a', 'b'],
    ['config', 'check', '--', 'a'], ['config', 'bogus', 'a'], ['check', 'config', 'a'],
    ['bpf'], ['bpf', 'bogus'], ['bpf', 'peers', '--help'], ['bpf', 'peers', 'extra'], ['bpf', 'peers', '--pin-dir'], ['bpf', 'peers', '--pin-dir', '-x'],
    ['bpf', 'peers', '--pin-dir', '/a', '--bpf-pin-dir=/b'], ['bpf', 'peers', '-o', 'yaml'], ['bpf', 'peers', '-o=json'], ['bpf', 'peers', '--output', ''],
    ['bpf', 'lookup'], ['bpf', 'lookup', '--pin-dir', '/p', '10.0.0.1'], ['bpf', 'lookup', '10.0.0.1', '10.0.0.2'], ['bpf', 'drops', '--watch'],
    ['bpf', 'counters', '-w'], ['bpf', 'peers', '--bogus', 'x'], ['bpf', 'toString'], ['bpf', '__proto__'],
  ];
  for (const args of refused) assert.equal(plainLine(args), undefined, `${args.join(' ')} goes through yargs`);
});

test('a rendered help page answers only where yargs would print the same', async () => {
  const { renderedHelpPage, yargsLocale } = await import('weft/cli/help-pages.js');
  const locales = ['de', 'en', 'pt', 'pt_BR', 'zh_CN'];
  const help = { width: 110, locales, pages: { '': 'top\n', agent: 'agent\n', 'bpf peers': 'peers\n' } };
  assert.equal(renderedHelpPage(help, ['--help'], 110, {}), 'top\n');
  assert.equal(renderedHelpPage(help, ['bpf', 'peers', '--help'], 110, { LANG: 'C.UTF-8' }), 'peers\n');
  assert.equal(renderedHelpPage(help, ['agent', '--help'], 110, { LC_ALL: 'en_GB.UTF-8', LANG: 'de_DE.UTF-8' }), 'agent\n');
  // Another width, a translated locale, more than a path and --help, a path without a page, or no pages at all: yargs.
  assert.equal(renderedHelpPage(help, ['--help'], 80, {}), undefined);
  assert.equal(renderedHelpPage(help, ['--help'], 110, { LANG: 'de_DE.UTF-8' }), undefined);
  assert.equal(renderedHelpPage(help, ['--help'], 110, { LC_MESSAGES: 'pt_PT' }), undefined);
  assert.equal(renderedHelpPage(help, ['agent', '--help', '--iface', 'eth0'], 110, {}), undefined);
  assert.equal(renderedHelpPage(help, ['agent', '--iface', 'eth0', '--help'], 110, {}), undefined);
  assert.equal(renderedHelpPage(help, ['', '--help'], 110, {}), undefined);
  assert.equal(renderedHelpPage(help, ['bpf', '--help'], 110, {}), undefined);
  assert.equal(renderedHelpPage(null, ['--help'], 110, {}), undefined);
  // y18n's choice: the locale's file, else its language's, else none (yargs' strings as written).
  assert.equal(yargsLocale({}, locales), 'en');
  assert.equal(yargsLocale({ LANG: 'pt_BR.UTF-8' }, locales), 'pt_BR');
  assert.equal(yargsLocale({ LANG: 'pt_PT.UTF-8' }, locales), 'pt');
  assert.equal(yargsLocale({ LANG: 'C.UTF-8' }, locales), null);
  assert.equal(yargsLocale({ LANGUAGE: 'zh_CN:en' }, locales), 'zh_CN');
  assert.equal(yargsLocale({ LC_ALL: 'fr_FR', LANG: 'de_DE' }, locales), null);
});

test('a reader that closes the pipe early (weft ... | head) ends the listing: exit 0, no stack trace', async () => {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [CLI, 'config', 'check', '-'], { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH } });
  // Closed before weft writes a byte (Node takes 100 ms to start): its write meets EPIPE.
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  child.stdin.end('{"Network":"10.244.0.0/16"}');
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.doesNotMatch(stderr, /EPIPE|at .*\(|node:/, stderr);
  assert.equal(code, 0, stderr);
});
