// The CNI plugin on the pod start path: ADD and DEL wall time of weft's
// plugin (type flannel, delegates included) over N pods on a lab host with a
// running agent, beside the delegates' own time (Debian's bridge with
// host-local, run directly with the very config our plugin saved), Node's own
// start and the plugin's VERSION (a start that does nothing else). Each
// plugin and delegate invocation is timed from spawn to exit, forked straight
// into the host's namespace (lab/cni.ts); the two kinds alternate, so drift on
// a busy machine hits both alike.
import fs from 'node:fs';
import path from 'node:path';
import { startAgent } from '../lab/agent.js';
import { CniNetwork, CniFailure, invokePlugin, type Reply } from '../lab/cni.js';
import type { Netns } from '../lab/netns.js';
import type { Bench } from './cases.js';
import { median, percentile } from './measure.js';

export interface Timing {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface CniResult {
  pods: number;
  /** weft's plugin (flannel + bridge + host-local). */
  add: Timing | null;
  del: Timing | null;
  /** bridge (+ host-local) alone, with the delegate config the plugin saved. */
  delegateAdd: Timing | null;
  delegateDel: Timing | null;
  /** `node -e 0` and the plugin's VERSION: what any Node plugin pays, and what ours pays before any work. */
  nodeStart: Timing | null;
  version: Timing | null;
  error?: string;
}

function timing(samples: number[]): Timing | null {
  if (!samples.length) return null;
  const r = (x: number): number => Math.round(x * 100) / 100;
  return { p50Ms: r(median(samples)), p99Ms: r(percentile(samples, 99)), maxMs: r(Math.max(...samples)) };
}

function ok(what: string, r: Reply): number {
  if (r.code !== 0) throw new CniFailure(what, r);
  return r.ms;
}

export async function runCni(b: Bench, o: { pods: number; say: (line: string) => void }, res: CniResult): Promise<void> {
  const host = await b.lab.addHost('cni', { octet: 60 });
  const prefix = '/bench-cni/network';
  await b.etcd.etcdctl(['put', `${prefix}/config`, JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } })]);
  const agent = startAgent(host, { etcdEndpoint: b.etcd.endpoint, dataplane: 'ebpf', extra: ['--etcd-prefix', prefix, '--ip-masq'] });
  try {
    await agent.waitForMsg('agent ready', 30_000);
    const cni = await CniNetwork.install(host);
    const flannel = cni.flannelConfig();
    // Warm-up: the bridge, its address and the first reservation exist before anything is timed, as on a node that runs pods.
    const warm = await host.addPodNetns('warm');
    ok('ADD', await cni.invoke('ADD', flannel, 'warm', warm));
    const delegate = JSON.parse(fs.readFileSync(path.join(cni.dataDir, 'warm'), 'utf8')) as Record<string, unknown>;
    const samples = { add: [] as number[], del: [] as number[], dAdd: [] as number[], dDel: [] as number[] };
    o.say(`cni: ${o.pods} pods through weft's plugin and ${o.pods} through bridge directly, alternating`);
    const pods: Array<{ ns: Netns; id: string; direct: boolean }> = [];
    for (let i = 0; i < o.pods; i++) {
      for (const direct of [false, true]) {
        const id = `${direct ? 'd' : 'w'}${i}`;
        const ns = await host.addPodNetns(id);
        pods.push({ ns, id, direct });
        const r = direct ? await cni.invoke('ADD', delegate, id, ns) : await cni.invoke('ADD', flannel, id, ns);
        (direct ? samples.dAdd : samples.add).push(ok(`${direct ? 'bridge' : 'flannel'} ADD`, r));
      }
    }
    for (const p of pods) {
      const r = p.direct ? await cni.invoke('DEL', delegate, p.id, p.ns) : await cni.invoke('DEL', flannel, p.id, p.ns);
      (p.direct ? samples.dDel : samples.del).push(ok(`${p.direct ? 'bridge' : 'flannel'} DEL`, r));
    }
    Object.assign(res, { add: timing(samples.add), del: timing(samples.del), delegateAdd: timing(samples.dAdd), delegateDel: timing(samples.dDel) });
    // `node -e 0` the way the plugin is run: exec'd from sh, spawned into the host's namespace.
    const bare = path.join(host.dir, 'node-e0');
    fs.writeFileSync(bare, `#!/bin/sh\nexec '${process.execPath}' -e 0\n`, { mode: 0o755 });
    const starts: number[] = [];
    const versions: number[] = [];
    for (let i = 0; i < 20; i++) {
      starts.push(ok('node -e 0', await invokePlugin(host, bare, { command: 'VERSION', path: [], config: '' })));
      versions.push(ok('VERSION', await cni.invoke('VERSION', '{"cniVersion":"1.0.0"}', '')));
    }
    Object.assign(res, { nodeStart: timing(starts), version: timing(versions) });
  } finally {
    await agent.stop();
  }
}

export function cniRows(c: CniResult): string[][] {
  const t = (x: Timing | null): string => (x ? `p50 ${x.p50Ms.toFixed(1)} / p99 ${x.p99Ms.toFixed(1)} ms` : '—');
  const rows = [
    [`CNI ADD, weft's plugin with its delegates (${c.pods} pods)`, t(c.add), `bridge + host-local alone: ${t(c.delegateAdd)}`],
    [`CNI DEL, weft's plugin with its delegates (${c.pods} pods)`, t(c.del), `bridge + host-local alone: ${t(c.delegateDel)}`],
    ['CNI plugin start', `VERSION ${t(c.version)}`, `node -e 0: ${t(c.nodeStart)}`],
  ];
  if (c.error) rows.push(['CNI part stopped early', c.error, '']);
  return rows;
}
