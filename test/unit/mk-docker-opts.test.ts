// weft mk-docker-opts against the lines flannel's mk-docker-opts.sh writes
// (FLANNEL.md), byte for byte, with the script's flags; -m works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { CLI } from '../../lab/agent.js';
import { getoptsArgs } from 'weft/cli/mk-docker-opts.js';

const SUBNET_ENV = 'FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.74.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n';

function mk(args: string[], subnetEnv: string | null = SUBNET_ENV, env: NodeJS.ProcessEnv = {}): { code: number | null; out: string | null; stderr: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-mkdo-'));
  try {
    const f = path.join(dir, 'subnet.env');
    if (subnetEnv !== null) fs.writeFileSync(f, subnetEnv);
    const d = path.join(dir, 'docker_opts.env');
    fs.writeFileSync(d, 'stale contents\n');
    const r = spawnSync(process.execPath, [CLI, 'mk-docker-opts', '-f', f, '-d', d, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });
    return { code: r.status, out: fs.existsSync(d) ? fs.readFileSync(d, 'utf8') : null, stderr: r.stderr };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test("the script's lines, byte for byte: individual variables in name order, then the combined one with its spaces", () => {
  const r = mk([]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.out,
    'DOCKER_OPT_BIP="--bip=10.1.74.1/24"\nDOCKER_OPT_IPMASQ="--ip-masq=false"\nDOCKER_OPT_MTU="--mtu=1472"\nDOCKER_OPTS=" --bip=10.1.74.1/24 --ip-masq=false --mtu=1472 "\n',
  );
  assert.equal(mk(['-i']).out, 'DOCKER_OPT_BIP="--bip=10.1.74.1/24"\nDOCKER_OPT_IPMASQ="--ip-masq=false"\nDOCKER_OPT_MTU="--mtu=1472"\n');
  assert.equal(mk(['-c']).out, 'DOCKER_OPTS=" --bip=10.1.74.1/24 --ip-masq=false --mtu=1472 "\n');
  // The unit's ExecStartPost: -k DOCKER_NETWORK_OPTIONS -d /run/flannel/docker.
  assert.equal(mk(['-k', 'DOCKER_NETWORK_OPTIONS', '-c']).out, 'DOCKER_NETWORK_OPTIONS=" --bip=10.1.74.1/24 --ip-masq=false --mtu=1472 "\n');
  assert.equal(mk(['-ckDOCKER_NETWORK_OPTIONS']).out, 'DOCKER_NETWORK_OPTIONS=" --bip=10.1.74.1/24 --ip-masq=false --mtu=1472 "\n', 'getopts clusters and attached values');
});

test('--ip-masq=false only when subnet.env says FLANNEL_IPMASQ=true and without -m; no subnet.env, no options', () => {
  assert.equal(mk(['-c', '-m']).out, 'DOCKER_OPTS=" --bip=10.1.74.1/24 --mtu=1472 "\n', '-m works (the script forgets it in getopts)');
  assert.equal(mk(['-c'], SUBNET_ENV.replace('IPMASQ=true', 'IPMASQ=false')).out, 'DOCKER_OPTS=" --bip=10.1.74.1/24 --mtu=1472 "\n');
  assert.equal(mk([], null).out, 'DOCKER_OPTS=" "\n');
  // As in bash: the combined key's value and DOCKER_OPT_ variables from the environment show through.
  assert.equal(mk(['-c'], SUBNET_ENV, { DOCKER_OPTS: '--debug', DOCKER_OPT_ZZ: '--iptables=true' }).out, 'DOCKER_OPTS="--debug --bip=10.1.74.1/24 --ip-masq=false --mtu=1472 --iptables=true "\n');
});

test("getopts' reading, and its mistakes as one-line usage errors", () => {
  assert.deepEqual(getoptsArgs(['-ic', '-kK', '-f', '/x', '-m']), ['--i', '--c', '--k=K', '--f=/x', '--m']);
  assert.deepEqual(getoptsArgs(['-d', '-weird']), ['--d=-weird']);
  for (const [args, re] of [
    [['-x'], /^weft: illegal option -- x/],
    [['-k'], /^weft: option requires an argument -- k/],
    [['stray'], /^weft: unexpected argument "stray"/],
    [['-k', 'NOT-A-NAME'], /^weft: -k NOT-A-NAME: not a shell variable name/],
  ] as const) {
    const r = mk([...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, re);
    assert.equal(r.out, 'stale contents\n', 'nothing written on a mistake');
  }
});
