// make install into a DESTDIR, as a package build does: the installed weft
// runs from there (--version, --help from the bundled CLI, flanneld -version, an agent with the eBPF
// dataplane in a lab host, which needs the installed addon and BPF objects),
// the unit passes systemd-analyze verify, and make uninstall removes exactly
// what install put there.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab, type LabHost } from '../../lab/netns.js';
import { LabEtcd } from '../../lab/etcd.js';
import { CLI, LabAgent, statusSocket, subnetFile } from '../../lab/agent.js';
import { run } from '../../lab/exec.js';
import { weftVersion } from 'weft/core/version.js';

/** The repository (dist/cli.cjs's parent). */
const REPO = path.resolve(path.dirname(CLI), '..');
let destdir: string;
let lab: Lab;
let etcd: LabEtcd;
let host: LabHost;

before(async () => {
  destdir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-destdir-'));
  lab = await Lab.create();
  host = await lab.addHost('h1', { octet: 11 });
  etcd = await LabEtcd.start({ netns: lab.router });
  await etcd.etcdctl(['put', '/coreos.com/network/config', '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}']);
});
after(async () => {
  await etcd?.destroy();
  await lab?.destroy();
  fs.rmSync(destdir, { recursive: true, force: true });
});

function make(target: string): Promise<unknown> {
  return run(['make', '--no-print-directory', '-C', REPO, target, `DESTDIR=${destdir}`, 'PREFIX=/usr', 'FLANNELD_LINK=yes'], { timeoutMs: 120_000 });
}

function installed(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(destdir, p));
    }
  };
  walk(destdir);
  return out;
}

test('make install: the tree, the launcher and its flanneld link, the unit, the example; no build tools', async () => {
  await make('install');
  const files = installed();
  for (const f of ['usr/bin/weft', 'usr/bin/flanneld', 'usr/lib/weft/dist/cli.cjs', 'usr/lib/weft/package.json', 'usr/lib/weft/native/build/Release/weft_native.node', 'usr/lib/weft/build/bpf/overlay.o', 'usr/lib/weft/build/bpf/underlay.o', 'usr/lib/weft/node_modules/etcd3/package.json', 'usr/lib/systemd/system/weft.service', 'usr/share/doc/weft/flanneld.sysconfig.example']) {
    assert.ok(files.includes(f), `${f} installed`);
  }
  assert.equal(fs.readlinkSync(path.join(destdir, 'usr/bin/flanneld')), 'weft');
  assert.ok(!files.some((f) => /node_modules\/(typescript|node-gyp|@types\/yargs|esbuild)\//.test(f)), 'no development packages');
  assert.ok(!files.some((f) => f.includes('dist-test') || (f.startsWith('usr/lib/weft/dist/') && f.endsWith('.ts'))), 'no tests, no sources');
  const unit = fs.readFileSync(path.join(destdir, 'usr/lib/systemd/system/weft.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/usr\/bin\/weft agent --ip-masq \$FLANNEL_OPTIONS$/m);
  assert.match(unit, /^Type=notify$/m);
  // systemd's own check, with the unit pointed at the DESTDIR's launcher (it checks the command exists).
  const copy = path.join(destdir, 'verify.service');
  fs.writeFileSync(copy, unit.replaceAll('/usr/bin/weft', path.join(destdir, 'usr/bin/weft')));
  const verify = await run(['systemd-analyze', 'verify', copy], { allowFail: true });
  fs.rmSync(copy);
  assert.equal((verify.stdout + verify.stderr).trim(), '', 'systemd-analyze verify is silent');
});

test('the installed weft runs: --version, flanneld -version, an eBPF agent in a lab host', async () => {
  const weft = path.join(destdir, 'usr/bin/weft');
  // From another directory, with a PATH that knows nothing of the repository.
  const env = { PATH: '/usr/bin:/bin:/usr/sbin:/sbin' };
  assert.equal((await run([weft, '--version'], { env, cwd: '/' })).stdout.trim(), weftVersion());
  // The bundle finds yargs' translations in the installed node_modules, as in the repository.
  const help = ['agent', '--help'];
  const de = { LANG: 'de_DE.UTF-8' };
  assert.equal((await run([weft, ...help], { env: { ...env, ...de }, cwd: '/' })).stdout, (await run([process.execPath, CLI, ...help], { env: de })).stdout);
  assert.equal((await run([path.join(destdir, 'usr/bin/flanneld'), '-version'], { env, cwd: '/' })).stdout.trim(), weftVersion());
  const agent = new LabAgent(
    host,
    host.spawn([path.join(destdir, 'usr/bin/flanneld'), `-etcd-endpoints=${etcd.endpoint}`, '-dataplane=ebpf', `-bpf-pin-dir=${host.pinDir}`, `-subnet-file=${subnetFile(host)}`, `-status-socket=${statusSocket(host)}`], { env, cwd: '/' }),
  );
  try {
    const ready = await agent.waitForMsg('agent ready', 30_000);
    assert.equal(ready.dataplane, 'ebpf');
    assert.ok(fs.existsSync(path.join(host.pinDir, 'weft_peers')), 'the installed BPF objects pinned their maps');
  } finally {
    await agent.stop();
  }
  await host.exec([process.execPath, CLI, 'uninstall', '--bpf-pin-dir', host.pinDir]);
});

test('make uninstall removes exactly what make install put there', async () => {
  await make('uninstall');
  assert.deepEqual(installed(), []);
});
