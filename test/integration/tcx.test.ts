// tcx: weft's programs held by pinned bpf links, beside programs that someone
// else attached to the same device (a tcx program and a classic `tc filter`),
// through an agent start, a restart (the link updated in place) and
// `weft uninstall`; and the classic clsact filters with WEFT_EBPF_TCX=0,
// replaced by links without a gap when tcx is switched back on.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cluster, type ClusterNode } from '../../lab/cluster.js';
import { CLI, startAgent } from '../../lab/agent.js';
import { run } from '../../lab/exec.js';
import { withNetns } from 'weft/native/addon.js';
import { BpfLink, BpfMap, BpfObject, progInfo, tcFilters, tcxPrograms, tcxSupported } from 'weft/native/bpf.js';
import { NetlinkHandle } from 'weft/native/netlink.js';
import { TC_HANDLE } from 'weft/dataplane/ebpf/loader.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const BYSTANDER_O = path.join(root, 'build/test-bpf/bystander.o');

interface ProgramsJson {
  filters: Array<{ ifname: string; hook: string; attach: string; linkId: number | null; progId: number; name: string | null; weft: boolean; priority: number; handle: number }>;
  pins: Array<{ name: string; kind: string; id: number | null; objectName: string | null }>;
  findings: Array<{ severity: string; message: string }>;
}

async function weft(node: ClusterNode, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return node.host.exec([process.execPath, CLI, ...args], { allowFail: true, timeoutMs: 20_000 });
}

async function programs(node: ClusterNode): Promise<ProgramsJson> {
  const r = await weft(node, ['bpf', 'programs', '--pin-dir', node.host.pinDir, '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as ProgramsJson;
}

/** Runs fn in the host's network namespace with eth0's ifindex. */
function onEth0<T>(node: ClusterNode, fn: (ifindex: number) => T): T {
  return withNetns(`/run/netns/${node.host.name}`, () => {
    const nl = NetlinkHandle.open();
    let ix: number;
    try {
      ix = nl.link('eth0')!.index;
    } finally {
      nl.close();
    }
    return fn(ix);
  });
}

/** What runs at the host's eth0 ingress, in order: "tcx:<program>", then "tc:<filter>@<pref>". */
function chain(node: ClusterNode): string[] {
  return onEth0(node, (ix) => [
    ...tcxPrograms(ix, 'ingress').map((e) => `tcx:${progInfo(e.progId).name}`),
    ...tcFilters(ix, 'ingress').map((f) => `tc:${f.name?.split(':')[0]}@${f.priority}`),
  ]);
}

/** The count a bystander program keeps in its one-slot array map. */
function count(map: BpfMap): bigint {
  return map.lookup(Buffer.alloc(4))!.readBigUInt64LE(0);
}

/** The classic bystander's map: loaded by tc, found through its program (bpftool names the maps a program uses). */
async function classicMap(node: ClusterNode): Promise<BpfMap> {
  const f = onEth0(node, (ix) => tcFilters(ix, 'ingress').find((x) => x.priority === 10));
  assert.ok(f?.progId, 'the classic bystander filter is on eth0 ingress');
  const info = JSON.parse((await run(['bpftool', '-j', 'prog', 'show', 'id', String(f.progId)])).stdout) as { map_ids: number[] };
  for (const id of info.map_ids) {
    const m = BpfMap.fromId(id);
    if (m.name === 'by_tc_seen') return m;
    m.close();
  }
  throw new Error('no by_tc_seen map on the classic bystander');
}

/** Pings from h2 to h1's underlay address: host traffic that weft's underlay program leaves alone. */
async function hostPings(from: ClusterNode, to: ClusterNode, n: number): Promise<void> {
  await from.host.exec(['ping', '-c', String(n), '-i', '0.05', '-W', '1', to.host.address], { timeoutMs: 20_000 });
}

/** Two vxlan hosts on the eBPF dataplane, torn down after the test; restart() (re)starts h1's agent, with `env` added. */
async function twoHosts(t: TestContext): Promise<{ c: Cluster; h1: ClusterNode; h2: ClusterNode; restart: (env?: NodeJS.ProcessEnv) => Promise<void> }> {
  const c = await Cluster.start({
    config: JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } }),
    dataplane: 'ebpf',
    hosts: [{ name: 'h1', octet: 11 }, { name: 'h2', octet: 12 }],
  });
  t.after(() => c.destroy());
  const [h1, h2] = [c.node('h1'), c.node('h2')];
  const restart = async (env?: NodeJS.ProcessEnv): Promise<void> => {
    if (h1.agent?.running) await h1.agent.stop();
    h1.agent = startAgent(h1.host, { etcdEndpoint: c.etcd.endpoint, dataplane: 'ebpf', extra: ['--etcd-prefix', c.prefix], env });
    await h1.agent.waitForMsg('agent ready', 30_000);
  };
  return { c, h1, h2, restart };
}

test('tcx: weft beside a tcx program and a classic tc filter, through start, restart and uninstall', { skip: !tcxSupported() && 'this kernel has no tcx' }, async (t) => {
  const { h1, h2, restart } = await twoHosts(t);
  const podPing = async (): Promise<void> => {
    await h1.pods[0].ns.exec(['ping', '-c', '2', '-i', '0.2', '-W', '2', h2.pods[0].ip], { timeoutMs: 20_000 });
  };

  // A fresh host: the agent's first start finds the others' programs already there.
  await h1.agent!.stop();
  const un0 = await weft(h1, ['uninstall', '--bpf-pin-dir', h1.host.pinDir]);
  assert.equal(un0.code, 0, un0.stderr);
  const obj = BpfObject.load(BYSTANDER_O);
  t.after(() => obj.close());
  const tcxSeen = obj.map('by_tcx_seen');
  const theirs = onEth0(h1, (ix) => BpfLink.attachTcx(ix, 'ingress', obj.program('bystander_tcx').fd, false));
  t.after(() => theirs.close());
  await h1.host.exec(['tc', 'qdisc', 'add', 'dev', 'eth0', 'clsact']);
  await h1.host.exec(['tc', 'filter', 'add', 'dev', 'eth0', 'ingress', 'pref', '10', 'bpf', 'da', 'obj', BYSTANDER_O, 'sec', 'classifier']);
  const tcSeen = await classicMap(h1);
  t.after(() => tcSeen.close());
  assert.deepEqual(chain(h1), ['tcx:bystander_tcx', 'tc:bystander.o@10']);

  await restart();
  assert.deepEqual(chain(h1), ['tcx:underlay_decap', 'tcx:bystander_tcx', 'tc:bystander.o@10'], 'weft first, as its classic filter at priority 1 was; the others after it');
  const p1 = await programs(h1);
  const decap1 = p1.filters.find((f) => f.name === 'underlay_decap')!;
  assert.equal(decap1.attach, 'tcx');
  assert.ok(decap1.linkId, 'held by a link');
  assert.ok(p1.filters.some((f) => f.name === 'bystander_tcx' && f.attach === 'tcx' && !f.weft));
  assert.ok(p1.filters.some((f) => f.attach === 'tc' && f.priority === 10 && !f.weft));
  assert.deepEqual(p1.findings, [], 'other programs beside weft are no problem');
  assert.deepEqual(
    p1.pins.filter((p) => p.kind === 'link').map((p) => [p.name.replace(/^(link_from_pod)_\d+$/, '$1_<port>'), p.objectName]).sort(),
    [['link_from_pod_<port>', 'from_pod'], ['link_overlay_egress', 'overlay_egress'], ['link_overlay_ingress', 'overlay_ingress'], ['link_underlay_decap', 'underlay_decap']],
  );
  await podPing();
  const seen = async (): Promise<[bigint, bigint]> => [count(tcxSeen), count(tcSeen)];
  let before = await seen();
  await hostPings(h2, h1, 5);
  let after = await seen();
  assert.ok(after[0] - before[0] >= 5n && after[1] - before[1] >= 5n, `both bystanders saw the pings weft passed on: ${before} -> ${after}`);

  // A restart swaps weft's programs inside the same links.
  await h1.agent!.stop();
  assert.equal(chain(h1)[0], 'tcx:underlay_decap', 'the pinned link keeps the program attached while the agent is down');
  await restart();
  const p2 = await programs(h1);
  const decap2 = p2.filters.find((f) => f.name === 'underlay_decap')!;
  assert.equal(decap2.linkId, decap1.linkId, 'the same link');
  assert.notEqual(decap2.progId, decap1.progId, 'with the new program in it');
  assert.deepEqual(chain(h1), ['tcx:underlay_decap', 'tcx:bystander_tcx', 'tc:bystander.o@10']);
  assert.equal(h1.agent!.lines.find((l) => l.msg === 'eBPF dataplane programmed')?.attach, 'tcx');
  await podPing();
  before = await seen();
  await hostPings(h2, h1, 5);
  after = await seen();
  assert.ok(after[0] - before[0] >= 5n && after[1] - before[1] >= 5n, `after the restart: ${before} -> ${after}`);

  // weft uninstall takes weft's links and pins, and nothing of the others.
  await h1.agent!.stop();
  const un = await weft(h1, ['uninstall', '--bpf-pin-dir', h1.host.pinDir]);
  assert.equal(un.code, 0, un.stderr);
  assert.match(un.stdout, /^detached link +eth0 ingress \(underlay_decap\)$/m);
  assert.match(un.stdout, /^removed pin +.*link_underlay_decap$/m);
  assert.doesNotMatch(un.stdout, /detached filter/, 'the classic filter is not weft\'s');
  assert.deepEqual(chain(h1), ['tcx:bystander_tcx', 'tc:bystander.o@10']);
  before = await seen();
  await hostPings(h2, h1, 5);
  after = await seen();
  assert.ok(after[0] - before[0] >= 5n && after[1] - before[1] >= 5n, `after weft uninstall: ${before} -> ${after}`);
});

test('WEFT_EBPF_TCX=0: classic filters in weft\'s slot; tcx again replaces them with links, the others untouched', { skip: !tcxSupported() && 'this kernel has no tcx' }, async (t) => {
  const { h1, h2, restart } = await twoHosts(t);
  await h1.host.exec(['tc', 'qdisc', 'add', 'dev', 'eth0', 'clsact']);
  await h1.host.exec(['tc', 'filter', 'add', 'dev', 'eth0', 'ingress', 'pref', '10', 'bpf', 'da', 'obj', BYSTANDER_O, 'sec', 'classifier']);

  await restart({ WEFT_EBPF_TCX: '0' });
  assert.equal(h1.agent!.lines.find((l) => l.msg === 'eBPF dataplane programmed')?.attach, 'tc');
  assert.deepEqual(chain(h1), ['tc:underlay_decap@1', 'tc:bystander.o@10'], 'the links gave way to weft\'s classic filter');
  const p = await programs(h1);
  assert.deepEqual(p.pins.filter((x) => x.kind === 'link'), [], 'no link pins left');
  assert.ok(p.filters.some((f) => f.name === 'underlay_decap' && f.attach === 'tc' && f.handle === TC_HANDLE));
  await h1.pods[0].ns.exec(['ping', '-c', '2', '-i', '0.2', '-W', '2', h2.pods[0].ip], { timeoutMs: 20_000 });

  await restart();
  assert.deepEqual(chain(h1), ['tcx:underlay_decap', 'tc:bystander.o@10'], 'back on a link; weft\'s classic filter removed, the other kept');
  await h1.pods[0].ns.exec(['ping', '-c', '2', '-i', '0.2', '-W', '2', h2.pods[0].ip], { timeoutMs: 20_000 });
});
