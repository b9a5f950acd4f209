// Where the CPU goes: one stream at a fixed rate through a case on a host
// profile, recorded with `perf record -a -g` (machine-wide, call graphs) and,
// for weft's cases, the kernel's run statistics of each of its programs
// (BPF_ENABLE_STATS: time per run; Debian's bpftool has no `prog profile`).
// Prints the hottest symbols of the tasks that carry the stream (iperf3 and
// ksoftirqd: other people's work on this machine would drown the rest), and
// leaves the perf data for `perf report -i`.
//
//   node dist-test/bench/profile.js [--profile bare|docker|kube] [--cases flannel-vxlan,weft-ebpf-vxlan]
//     [--seconds 5] [--rate 2] [--top 40] [--out /tmp/weft-profile]
import fs from 'node:fs';
import path from 'node:path';
import { run } from '../lab/exec.js';
import { enableRunStats, progInfo } from 'weft/native/bpf.js';
import { inCase, profileScriptArgs, withReadyCases } from './cases.js';
import { weftPrograms } from './programs.js';
import { iperf, netnsInodes } from './measure.js';
import type { HostProfile } from '../lab/profiles.js';

interface Options {
  profile: HostProfile;
  cases: string[];
  seconds: number;
  rateGbps: number;
  top: number;
  out: string;
}

function parse(argv: string[]): Options {
  const { a, profile, cases } = profileScriptArgs(argv, { profile: 'docker', cases: ['flannel-vxlan', 'weft-ebpf-vxlan'] });
  return { profile, cases, seconds: Number(a.get('seconds') ?? 5), rateGbps: Number(a.get('rate') ?? 2), top: Number(a.get('top') ?? 40), out: a.get('out') ?? '/tmp/weft-profile' };
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  fs.mkdirSync(o.out, { recursive: true });
  await withReadyCases(o.profile, o.cases, 21, async (b, setups) => {
    for (const s of setups) {
      const ours = netnsInodes((n) => inCase(s, n));
      const data = path.join(o.out, `${o.profile}-${s.def.name}.perf.data`);
      const progs = weftPrograms(s);
      const stop = enableRunStats();
      const before = new Map(progs.map((p) => [p.id, progInfo(p.id)]));
      const perf = run(['perf', 'record', '-a', '-g', '-F', '999', '-o', data, '--', 'sleep', String(o.seconds)], { allowFail: true, timeoutMs: (o.seconds + 60) * 1000 });
      const t = await iperf(s.client!, s.serverIP!, o.seconds, { rateBps: o.rateGbps * 1e9, ours });
      await perf;
      const after = new Map(progs.map((p) => [p.id, progInfo(p.id)]));
      stop();
      const comms = 'iperf3,ksoftirqd/0,ksoftirqd/1,ksoftirqd/2,ksoftirqd/3';
      const report = await run(['perf', 'report', '-i', data, '--comms', comms, '--no-children', '--sort', 'symbol', '--stdio', '--percent-limit', '0.3', '-g', 'none'], { allowFail: true, timeoutMs: 120_000 });
      const lines = report.stdout.split('\n').filter((l) => /^\s+\d/.test(l)).map((l) => l.replace(/\s+$/, '').replace(/\s{2,}-\s+-$/, '')).slice(0, o.top);
      console.log(`\n=== ${o.profile}/${s.def.name}: ${t.gbps.toFixed(2)} Gbit/s at ${o.rateGbps} offered, ${t.ownCpuSecPerGB?.toFixed(2)} CPU s/GB (machine-wide ${t.cpuSecPerGB.toFixed(2)}); perf data ${data} (tasks ${comms})`);
      console.log(lines.join('\n'));
      for (const p of progs) {
        const a = before.get(p.id)!;
        const z = after.get(p.id)!;
        const runs = z.runCnt - a.runCnt;
        const ns = z.runTimeNs - a.runTimeNs;
        console.log(`  bpf ${p.host} ${p.name} (id ${p.id}): ${runs} runs, ${runs ? (ns / runs).toFixed(0) : '-'} ns per run, ${(ns / 1e6).toFixed(1)} ms in all`);
      }
    }
  });
}

main().catch((err: unknown) => {
  console.error(`profile: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
