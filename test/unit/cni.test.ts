// The CNI plugin without a kernel: flannel's delegate semantics, the spec's
// error codes and versions, how a delegate is run (through a recording
// stand-in for bridge: these tests are about the plugin's side of the
// protocol; test/integration/cni.test.ts runs Debian's real plugins), what the
// entry point loads, and weft install-cni.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { CLI } from '../../lab/agent.js';
import { writeSubnetEnv } from 'weft/agent/subnet-env.js';
import { IPNet } from 'weft/core/ipnet.js';
import { buildDelegate, goJSON, loadSubnetEnv, parseNetConf } from 'weft/cni/flannel.js';
import { cmdArgsFromEnv, CniError, convertResult } from 'weft/cni/spec.js';
import { conflist, installCni, launcher, PLUGIN_MAIN, PLUGIN_MODULE } from 'weft/cni/install.js';

const KUBE_FLANNEL = { name: 'cbr0', cniVersion: '0.3.1', type: 'flannel', delegate: { hairpinMode: true, isDefaultGateway: true } };

function tmp(t: { after: (fn: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-cni-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function subnetEnv(dir: string, o: { ipMasq?: boolean; v6?: boolean } = {}): string {
  const file = path.join(dir, 'subnet.env');
  writeSubnetEnv(file, {
    network: IPNet.parse('10.244.0.0/16')!,
    subnet: IPNet.parse('10.244.3.0/24')!,
    ...(o.v6 ? { ipv6Network: IPNet.parse('fd00:10:244::/56')!, ipv6Subnet: IPNet.parse('fd00:10:244:3::/64')! } : {}),
    mtu: 1450,
    ipMasq: o.ipMasq ?? false,
  });
  return file;
}

function codeOf(fn: () => unknown): [number, string] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CniError, String(err));
    return [err.code, `${err.message} ${err.details}`];
  }
  throw new Error('no error');
}

test("kube-flannel's config becomes, byte for byte, the delegate flannel's plugin saves", (t) => {
  const file = subnetEnv(tmp(t), { ipMasq: true });
  const d = buildDelegate(parseNetConf(JSON.stringify({ ...KUBE_FLANNEL, subnetFile: file })), loadSubnetEnv(file));
  // Go's encoding/json of flannel's map[string]interface{}: keys sorted, types.Route as a struct.
  assert.equal(goJSON(d), '{"cniVersion":"0.3.1","hairpinMode":true,"ipMasq":false,"ipam":{"ranges":[[{"subnet":"10.244.3.0/24"}]],"routes":[{"dst":"10.244.0.0/16"}],"type":"host-local"},"isDefaultGateway":true,"isGateway":true,"mtu":1450,"name":"cbr0","type":"bridge"}');
});

test('delegate defaults give way to the delegate object; ipam routes and type are merged; runtimeConfig is handed on; dual-stack gets two ranges', (t) => {
  const file = subnetEnv(tmp(t), { v6: true });
  const conf = {
    name: 'net1', cniVersion: '1.0.0', type: 'flannel', subnetFile: file,
    delegate: { type: 'bridge', bridge: 'kbr0', mtu: 1400, ipMasq: false, isGateway: false },
    ipam: { type: 'host-local', dataDir: '/x', routes: [{ dst: '192.168.0.0/16', gw: '10.244.3.254' }] },
    runtimeConfig: { portMappings: [{ hostPort: 80, containerPort: 8080, protocol: 'tcp' }] },
  };
  const d = buildDelegate(parseNetConf(JSON.stringify(conf)), loadSubnetEnv(file));
  assert.deepEqual(d, {
    type: 'bridge', bridge: 'kbr0', mtu: 1400, ipMasq: false, isGateway: false, name: 'net1', cniVersion: '1.0.0',
    runtimeConfig: conf.runtimeConfig,
    ipam: {
      type: 'host-local', dataDir: '/x',
      ranges: [[{ subnet: '10.244.3.0/24' }], [{ subnet: 'fd00:10:244:3::/64' }]],
      routes: [{ dst: '192.168.0.0/16', gw: '10.244.3.254' }, { dst: '10.244.0.0/16' }, { dst: 'fd00:10:244::/56' }],
    },
  });
  // FLANNEL_IPMASQ=false: the agent does not masquerade, so the bridge does; another type gets no isGateway.
  const other = buildDelegate(parseNetConf(JSON.stringify({ name: 'n', type: 'flannel', delegate: { type: 'ipvlan' }, subnetFile: file })), loadSubnetEnv(file));
  assert.equal(other.ipMasq, true);
  assert.equal('isGateway' in other, false);
  assert.equal('cniVersion' in other, false);
});

test('config mistakes: decode errors (code 6) and invalid configs (code 7) name the field', (t) => {
  const file = subnetEnv(tmp(t));
  const fenv = loadSubnetEnv(file);
  const build = (c: Record<string, unknown>) => () => buildDelegate(parseNetConf(JSON.stringify({ name: 'cbr0', type: 'flannel', ...c })), fenv);
  const cases: Array<[() => unknown, number, RegExp]> = [
    [() => parseNetConf('{"name": "cbr0",'), 6, /error unmarshall network config/],
    [() => parseNetConf('[]'), 6, /expected a JSON object/],
    [() => parseNetConf('{"type": "flannel"}'), 7, /missing network name/],
    [() => parseNetConf('{"name": "a b"}'), 7, /invalid characters found in network name/],
    [build({ subnetFile: 5 }), 6, /subnetFile: expected a string, got a number \(5\)/],
    [build({ dataDir: ['x'] }), 6, /dataDir: expected a string, got an array/],
    [build({ delegate: 'bridge' }), 6, /delegate: expected an object, got a string/],
    [build({ delegate: { type: 1 } }), 6, /delegate\.type: expected a string/],
    [build({ delegate: { name: 'x' } }), 7, /must not have 'name'/],
    [build({ delegate: { ipam: {} } }), 7, /must not have 'ipam'/],
    [build({ ipam: { routes: {} } }), 6, /ipam\.routes: expected an array/],
    [build({ ipam: { routes: [{ dst: '10.1.0.0/16' }, { dst: '10.2.0.0' }] } }), 6, /ipam\.routes\[1\]\.dst: expected a CIDR string/],
    [build({ runtimeConfig: 3 }), 6, /runtimeConfig: expected an object/],
    [build({ bigTCP: 'yes' }), 6, /bigTCP: expected a boolean, got a string/],
  ];
  for (const [fn, code, msg] of cases) {
    const [got, text] = codeOf(fn);
    assert.equal(got, code, text);
    assert.match(text, msg);
  }
});

test('subnet.env: missing is code 11 with the message; incomplete or garbled names the key', (t) => {
  const dir = tmp(t);
  const [code, text] = codeOf(() => loadSubnetEnv(path.join(dir, 'none.env')));
  assert.equal(code, 11);
  assert.match(text, /^subnet\.env not found: is the weft agent running\? .*none\.env does not exist/);
  const file = path.join(dir, 'bad.env');
  fs.writeFileSync(file, 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\n');
  assert.match(codeOf(() => loadSubnetEnv(file))[1], /FLANNEL_MTU, FLANNEL_IPMASQ: missing/);
  fs.writeFileSync(file, 'FLANNEL_NETWORK=10.244.0.0/16,10.245.0.0/16,10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
  assert.deepEqual(loadSubnetEnv(file), { networks: ['10.244.0.0/16', '10.245.0.0/16'], subnet: '10.244.3.0/24', ipv6Networks: [], ipv6Subnet: null, mtu: 1450, ipMasq: true });
  fs.writeFileSync(file, 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
  assert.deepEqual(codeOf(() => loadSubnetEnv(file)).map(String)[0], '7');
  assert.match(codeOf(() => loadSubnetEnv(file))[1], /FLANNEL_SUBNET: "10\.244\.3\.1" is not a CIDR/);
});

test('goJSON writes what Go writes: sorted keys, <>& escaped', () => {
  assert.equal(goJSON({ b: 1, a: { d: [{ z: 1, y: 2 }], c: '<&>' } }), '{"a":{"c":"\\u003c\\u0026\\u003e","d":[{"y":2,"z":1}]},"b":1}');
});

test('results convert between 0.3.x/0.4.0 (ips carry version) and 1.x', () => {
  const v1 = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0' }], ips: [{ address: '10.244.3.2/24', gateway: '10.244.3.1', interface: 0 }, { address: 'fd00::2/64', interface: 0 }] };
  const old = convertResult(v1, '0.3.1');
  assert.equal(old.cniVersion, '0.3.1');
  assert.deepEqual(old.ips!.map((i) => i.version), ['4', '6']);
  assert.deepEqual(convertResult(old, '1.1.0'), { ...v1, cniVersion: '1.1.0' });
});

test("the environment is checked as skel checks it (code 4 naming the variables)", () => {
  const base = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };
  assert.equal(cmdArgsFromEnv(base).containerID, 'abc');
  assert.deepEqual(codeOf(() => cmdArgsFromEnv({ CNI_COMMAND: 'ADD' })), [4, 'required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing ']);
  assert.deepEqual(codeOf(() => cmdArgsFromEnv({})), [4, 'required env variables [CNI_COMMAND] missing ']);
  assert.equal(cmdArgsFromEnv({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'a', CNI_IFNAME: 'eth0', CNI_PATH: '/x' }).netns, '', 'DEL needs no netns');
  assert.equal(cmdArgsFromEnv({ CNI_COMMAND: 'VERSION' }).command, 'VERSION');
  assert.match(codeOf(() => cmdArgsFromEnv({ ...base, CNI_CONTAINERID: '-bad/id' }))[1], /invalid characters in containerID/);
  assert.match(codeOf(() => cmdArgsFromEnv({ ...base, CNI_IFNAME: 'a-very-long-ifname' }))[1], /interface name is too long/);
  assert.match(codeOf(() => cmdArgsFromEnv({ ...base, CNI_COMMAND: 'FROB' }))[1], /unknown CNI_COMMAND: FROB/);
});

// --- the plugin as a process, with a recording stand-in for its delegate -----------------------------

const MAIN = PLUGIN_MAIN;

/** A `bridge` that records each call (command, env, stdin) and answers from files beside it. */
const FAKE_BRIDGE = `#!/bin/sh
d=$(dirname "$0")
n=$(ls "$d"/call.* 2>/dev/null | wc -l)
{ echo "$CNI_COMMAND $CNI_CONTAINERID $CNI_IFNAME $CNI_NETNS $WEFT_TEST_MARK"; cat; } > "$d/call.$n"
if [ "$CNI_COMMAND" = VERSION ]; then echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}'; exit 0; fi
if grep -q '"cniVersion":"1.1.0"' "$d/call.$n"; then echo '{"code":1,"msg":"incompatible CNI versions"}'; exit 1; fi
if [ "$CNI_COMMAND" = ADD ]; then
  [ -f "$d/fail" ] && { echo '{"code":7,"msg":"bridge says no","details":"because"}'; exit 1; }
  cat "$d/result"
fi
`;

interface Fake {
  dir: string;
  bin: string;
  env: NodeJS.ProcessEnv;
  calls(): Array<{ line: string; stdin: string }>;
  plugin(command: string, config: Record<string, unknown>, extra?: NodeJS.ProcessEnv): { code: number | null; stdout: string; json: Record<string, unknown> | null };
}

function fake(t: { after: (fn: () => void) => void }, result: Record<string, unknown> = { cniVersion: '1.0.0', ips: [{ address: '10.244.3.2/24', gateway: '10.244.3.1' }] }): Fake {
  const dir = tmp(t);
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'bridge'), FAKE_BRIDGE, { mode: 0o755 });
  fs.writeFileSync(path.join(bin, 'result'), JSON.stringify(result));
  const file = subnetEnv(dir);
  const env = { PATH: process.env.PATH, CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/pod', CNI_IFNAME: 'eth0', CNI_PATH: `/nonexistent:${bin}`, WEFT_TEST_MARK: 'passed-through' };
  return {
    dir,
    bin,
    env,
    calls: () => fs.readdirSync(bin).filter((f) => f.startsWith('call.')).sort((a, b) => Number(a.slice(5)) - Number(b.slice(5))).map((f) => {
      const [line, ...rest] = fs.readFileSync(path.join(bin, f), 'utf8').split('\n');
      return { line, stdin: rest.join('\n') };
    }),
    plugin: (command, config, extra = {}) => {
      const r = spawnSync(process.execPath, [MAIN], { env: { ...env, CNI_COMMAND: command, ...extra }, input: JSON.stringify({ name: 'cbr0', type: 'flannel', subnetFile: file, dataDir: path.join(dir, 'data'), ...config }), encoding: 'utf8', timeout: 20_000 });
      let json = null;
      try {
        json = r.stdout.trim() ? JSON.parse(r.stdout) : null;
      } catch {
        /* left null */
      }
      return { code: r.status, stdout: r.stdout, json };
    },
  };
}

test('ADD: the delegate is found in CNI_PATH and gets our environment, CNI_COMMAND and the saved config on stdin; its result passes through unchanged', (t) => {
  const f = fake(t);
  const r = f.plugin('ADD', { cniVersion: '1.0.0' });
  assert.equal(r.code, 0, r.stdout);
  assert.equal(r.stdout.trim(), fs.readFileSync(path.join(f.bin, 'result'), 'utf8'));
  const saved = fs.readFileSync(path.join(f.dir, 'data', 'c1'), 'utf8');
  assert.equal(fs.statSync(path.join(f.dir, 'data', 'c1')).mode & 0o777, 0o600);
  assert.equal(fs.statSync(path.join(f.dir, 'data')).mode & 0o777, 0o700);
  assert.deepEqual(f.calls(), [{ line: 'ADD c1 eth0 /run/netns/pod passed-through', stdin: saved }]);
  assert.deepEqual(fs.readdirSync(path.join(f.dir, 'data')), ['c1'], 'no temp file left');
});

test('ADD: a result in another version is converted to the config\'s; a 1.1.0 config is served by a delegate that only speaks 1.0.0', (t) => {
  const f = fake(t);
  const r = f.plugin('ADD', { cniVersion: '0.4.0' });
  assert.equal(r.json?.cniVersion, '0.4.0');
  assert.deepEqual((r.json?.ips as Array<{ version: string }>).map((i) => i.version), ['4']);
  const g = fake(t);
  const r110 = g.plugin('ADD', { cniVersion: '1.1.0' });
  assert.equal(r110.code, 0, r110.stdout);
  assert.equal(r110.json?.cniVersion, '1.1.0');
  assert.deepEqual(g.calls().map((c) => c.line.split(' ')[0]), ['ADD', 'DEL', 'ADD'], 'refused at 1.1.0, undone, retried at 1.0.0');
  assert.match(fs.readFileSync(path.join(g.dir, 'data', 'c1'), 'utf8'), /"cniVersion":"1\.0\.0"/, 'what DEL will use is what ADD used');
});

test('ADD that the delegate fails: its error is ours, the delegate gets a DEL, and nothing is saved', (t) => {
  const f = fake(t);
  fs.writeFileSync(path.join(f.bin, 'fail'), '');
  const r = f.plugin('ADD', { cniVersion: '1.0.0' });
  assert.equal(r.code, 1);
  assert.deepEqual(r.json, { cniVersion: '1.0.0', code: 7, msg: 'bridge says no', details: 'because' });
  assert.deepEqual(f.calls().map((c) => c.line.split(' ')[0]), ['ADD', 'DEL']);
  assert.deepEqual(fs.readdirSync(path.join(f.dir, 'data')), []);
});

test('a second ADD for an attached container fails without undoing the first', (t) => {
  const f = fake(t);
  assert.equal(f.plugin('ADD', { cniVersion: '1.0.0' }).code, 0);
  const saved = fs.readFileSync(path.join(f.dir, 'data', 'c1'), 'utf8');
  fs.writeFileSync(path.join(f.bin, 'fail'), '');
  assert.equal(f.plugin('ADD', { cniVersion: '1.0.0', delegate: { mtu: 1400 } }).json?.code, 7);
  assert.deepEqual(f.calls().map((c) => c.line.split(' ')[0]), ['ADD', 'ADD'], 'no DEL');
  assert.equal(fs.readFileSync(path.join(f.dir, 'data', 'c1'), 'utf8'), saved, 'the first ADD\'s config stays for its DEL');
});

test('ADD with no such delegate: a message saying where it looked, and nothing created', (t) => {
  const f = fake(t);
  const r = f.plugin('ADD', { cniVersion: '1.0.0', delegate: { type: 'macvlan' } });
  assert.equal(r.code, 1);
  assert.match(r.json?.msg as string, /failed to find plugin "macvlan" in path \[\/nonexistent .*bin\]/);
  assert.equal(fs.existsSync(path.join(f.dir, 'data')), false);
});

test('DEL runs the saved config and forgets it; DEL again, or of a container never added, succeeds without the delegate', (t) => {
  const f = fake(t);
  f.plugin('ADD', { cniVersion: '1.0.0' });
  const saved = fs.readFileSync(path.join(f.dir, 'data', 'c1'), 'utf8');
  // DEL needs no subnet.env: the agent may be gone by then.
  const del = f.plugin('DEL', { cniVersion: '1.0.0', subnetFile: '/nonexistent' }, { CNI_NETNS: '' });
  assert.deepEqual([del.code, del.stdout], [0, '']);
  assert.deepEqual(f.calls().at(-1), { line: 'DEL c1 eth0  passed-through', stdin: saved });
  assert.equal(fs.existsSync(path.join(f.dir, 'data', 'c1')), false);
  assert.equal(f.plugin('DEL', { cniVersion: '1.0.0' }).code, 0);
  assert.equal(f.plugin('DEL', { cniVersion: '1.0.0' }, { CNI_CONTAINERID: 'never' }).code, 0);
  assert.equal(f.calls().length, 2);
});

test('CHECK asks the delegate with prevResult (routes given their gateway); it fails when the agent has leased another subnet since, or the container is unknown', (t) => {
  const f = fake(t);
  f.plugin('ADD', { cniVersion: '1.0.0' });
  const prevResult = { cniVersion: '1.0.0', ips: [{ address: '10.244.3.2/24', gateway: '10.244.3.1', interface: 0 }], routes: [{ dst: '10.244.0.0/16' }, { dst: '0.0.0.0/0', gw: '10.244.3.1' }] };
  const ok = f.plugin('CHECK', { cniVersion: '1.0.0', prevResult });
  assert.deepEqual([ok.code, ok.stdout], [0, '']);
  const sent = JSON.parse(f.calls().at(-1)!.stdin) as { prevResult: { routes: Array<{ dst: string; gw?: string }> } };
  assert.deepEqual(sent.prevResult.routes, [{ dst: '10.244.0.0/16', gw: '10.244.3.1' }, { dst: '0.0.0.0/0', gw: '10.244.3.1' }]);
  assert.equal(f.plugin('CHECK', { cniVersion: '1.0.0', prevResult }, { CNI_CONTAINERID: 'other' }).json?.code, 3);
  writeSubnetEnv(path.join(f.dir, 'subnet.env'), { network: IPNet.parse('10.244.0.0/16')!, subnet: IPNet.parse('10.244.9.0/24')!, mtu: 1450, ipMasq: false });
  const moved = f.plugin('CHECK', { cniVersion: '1.0.0', prevResult });
  assert.equal(moved.json?.code, 7);
  assert.match(moved.json?.msg as string, /this host's subnet is now 10\.244\.9\.0\/24, but container c1 got its address from 10\.244\.3\.0\/24/);
});

test('VERSION, the versions refused, and CHECK/STATUS/GC only where the config\'s version has them', (t) => {
  const f = fake(t);
  const v = f.plugin('VERSION', { cniVersion: '0.3.1' });
  assert.deepEqual(v.json, { cniVersion: '0.3.1', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  assert.deepEqual([f.plugin('ADD', {}).json?.code, f.plugin('ADD', { cniVersion: '0.2.0' }).json?.code], [1, 1]);
  assert.match(f.plugin('CHECK', { cniVersion: '0.3.1' }).json?.msg as string, /config version does not allow CHECK/);
  assert.match(f.plugin('STATUS', { cniVersion: '1.0.0' }).json?.msg as string, /config version does not allow STATUS/);
  assert.match(f.plugin('GC', { cniVersion: '1.0.0' }).json?.msg as string, /config version does not allow GC/);
  // Run by hand: it says what it is, and exits 0.
  const about = spawnSync(process.execPath, [MAIN], { encoding: 'utf8', env: { PATH: process.env.PATH } });
  assert.equal(about.status, 0);
  assert.match(about.stderr, /CNI protocol versions supported: 0\.3\.0, 0\.3\.1, 0\.4\.0, 1\.0\.0, 1\.1\.0/);
});

const PLUGIN_MODULES = ['agent/subnet-env.js', 'cni/delegate.js', 'cni/flannel.js', 'cni/main.js', 'cni/plugin.js', 'cni/spec.js', 'core/errors.js', 'core/ipnet.js', 'core/paths.js'];

test('the entry point loads only Node built-ins, src/cni, ipnet, errors and paths (they import nothing) and subnet-env: no yargs, pino, etcd3, protobufjs, addon or ipaddr.js', () => {
  const dist = path.dirname(path.dirname(PLUGIN_MODULE));
  const seen = new Set<string>();
  const bare = new Set<string>();
  const walk = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const m of fs.readFileSync(file, 'utf8').matchAll(/^(?:import|export)\s(?:[^;]*?\sfrom\s)?\s*['"]([^'"]+)['"];/gm)) {
      if (m[1].startsWith('.')) walk(path.resolve(path.dirname(file), m[1]));
      else bare.add(m[1]);
    }
  };
  walk(PLUGIN_MODULE);
  assert.deepEqual([...seen].map((f) => path.relative(dist, f)).sort(), PLUGIN_MODULES);
  assert.deepEqual([...bare].filter((s) => !s.startsWith('node:')), []);
  // And what actually loads: no CommonJS module (ipaddr.js loads on the first address that is not a dotted quad).
  const probe = `import { createRequire } from 'node:module'; await import(${JSON.stringify(path.join(dist, 'cni/plugin.js'))}); console.log(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), []);
});

test('the launcher runs the bundle of exactly those modules, which loads nothing else for an IPv4 host\'s ADD', (t) => {
  const dist = path.dirname(path.dirname(PLUGIN_MODULE));
  assert.equal(PLUGIN_MAIN, path.join(dist, 'cni', 'main.cjs'), 'make build bundles the plugin');
  const meta = JSON.parse(fs.readFileSync(path.join(dist, '..', 'build', 'cni-bundle.json'), 'utf8')) as { inputs: Record<string, unknown>; outputs: Record<string, { imports: Array<{ path: string; external: boolean }> }> };
  assert.deepEqual(Object.keys(meta.inputs).map((f) => path.relative('dist', f)).sort(), PLUGIN_MODULES);
  const imports = Object.values(meta.outputs).flatMap((o) => o.imports.map((i) => i.path));
  assert.deepEqual([...new Set(imports.filter((i) => !i.startsWith('node:')))], ['./bigtcp.js'], 'only the bigTCP step loads on demand');
  // An ADD through the bundle, with the recording bridge: what require() loaded by the end is the bundle alone.
  const f = fake(t);
  const seen = path.join(f.dir, 'loaded.json');
  const r = spawnSync(process.execPath, ['-e', `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(seen)}, JSON.stringify(Object.keys(require.cache)))); require(${JSON.stringify(PLUGIN_MAIN)});`], {
    env: { ...f.env, CNI_COMMAND: 'ADD' },
    input: JSON.stringify({ cniVersion: '1.0.0', name: 'cbr0', type: 'flannel', subnetFile: path.join(f.dir, 'subnet.env'), dataDir: path.join(f.dir, 'data') }),
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.deepEqual((JSON.parse(r.stdout) as { ips: unknown[] }).ips, [{ address: '10.244.3.2/24', gateway: '10.244.3.1' }]);
  assert.deepEqual(JSON.parse(fs.readFileSync(seen, 'utf8')), [PLUGIN_MAIN]);
});

test('weft install-cni writes the launcher as flannel and weft and the conflist, atomically, and touches nothing else', (t) => {
  const dir = tmp(t);
  const bin = path.join(dir, 'bin');
  const conf = path.join(dir, 'net.d');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'bridge'), 'not ours');
  fs.utimesSync(path.join(bin, 'bridge'), 1000, 1000);
  const weft = (args: string[]) => spawnSync(process.execPath, [CLI, 'install-cni', ...args], { encoding: 'utf8' });
  const r = weft(['--bin-dir', bin, '--conf-dir', conf]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `wrote     ${bin}/flannel\nwrote     ${bin}/weft\nwrote     ${conf}/10-flannel.conflist\n`);
  assert.deepEqual(fs.readdirSync(bin).sort(), ['bridge', 'flannel', 'weft']);
  assert.equal(fs.readFileSync(path.join(bin, 'bridge'), 'utf8'), 'not ours');
  assert.equal(fs.statSync(path.join(bin, 'bridge')).mtimeMs, 1000_000);
  for (const p of ['flannel', 'weft']) assert.equal(fs.statSync(path.join(bin, p)).mode & 0o777, 0o755);
  assert.equal(fs.statSync(path.join(conf, '10-flannel.conflist')).mode & 0o777, 0o644);
  assert.equal(fs.readFileSync(path.join(conf, '10-flannel.conflist'), 'utf8'), conflist());
  const list = JSON.parse(conflist()) as { plugins: Array<{ type: string }> };
  assert.deepEqual(list.plugins.map((p) => p.type), ['flannel', 'portmap']);
  // The installed plugin runs, as a runtime runs it.
  const v = spawnSync(path.join(bin, 'flannel'), [], { encoding: 'utf8', input: '{"cniVersion":"1.0.0"}', env: { CNI_COMMAND: 'VERSION' } });
  assert.equal(JSON.parse(v.stdout).cniVersion, '1.0.0');
  // Again: replaced in place; a non-default subnet file goes into the conflist.
  const again = weft(['--bin-dir', bin, '--conf-dir', conf, '--subnet-file', '/run/weft/subnet.env']);
  assert.match(again.stdout, /^replaced {2}/);
  assert.equal((JSON.parse(fs.readFileSync(path.join(conf, '10-flannel.conflist'), 'utf8')) as { plugins: Array<{ subnetFile?: string }> }).plugins[0].subnetFile, '/run/weft/subnet.env');
  assert.deepEqual(installCni({ binDir: bin, confDir: conf, confName: 'x.conflist' }).map((x) => path.basename(x.file)), ['flannel', 'weft', 'x.conflist']);
  // Mistakes: one line each, no stack.
  const bad = weft(['--bin-dir', bin, '--conf-dir', conf, '--conf-name', '../x']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^weft: --conf-name \.\.\/x: a file name ending in \.conflist/);
  const blocked = weft(['--bin-dir', path.join(bin, 'bridge', 'sub'), '--conf-dir', conf]);
  assert.equal(blocked.status, 1);
  assert.match(blocked.stderr, /^weft: cannot install into .*: ENOTDIR\n$/);
});

test('the launcher says so in CNI JSON when weft has moved away', (t) => {
  const script = path.join(tmp(t), 'flannel');
  fs.writeFileSync(script, launcher(process.execPath, path.join(path.dirname(script), 'gone.js')), { mode: 0o755 });
  const r = spawnSync(script, [], { encoding: 'utf8', env: { CNI_COMMAND: 'VERSION' } });
  assert.equal(r.status, 1);
  assert.equal(JSON.parse(r.stdout).code, 50);
});
