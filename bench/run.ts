// `make bench`: weft's dataplane and control plane measured beside the
// underlay and flannel's kernel paths, all in one run on this machine, in lab
// namespaces it creates and removes. A benchmark, not a test: the issue's
// targets are printed as met or missed and never fail the run.
//
//   node dist-test/bench/run.js [--cases a,b,...] [--runs 3] [--seconds 5]
//     [--latency-seconds 3] [--streams 4] [--leases 1000,10000] [--puts 200] [--pods 100] [--cpu auto|N|none]
//     [--out FILE] [--summary FILE | --no-summary]
//
// Dataplane cases run in rounds: every round visits every case (in an order
// rotated each round), so that drift on a noisy machine hits all cases alike;
// ratios are taken within a round and their median reported. Case names:
// see cases.ts; `control` (agent start, put latency, RSS), `netlink`
// (programming 10,000 peers), `cni` (the CNI plugin's ADD and DEL) and
// `events` (what weft monitor's events cost a packet, bench/events.ts) select
// the non-traffic parts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../lab/exec.js';
import { reapStaleLabs } from '../lab/netns.js';
import { CASES, caseDef, createBench, destroyBench, setupCase, type Bench, type CaseSetup } from './cases.js';
import { runControl, type ControlResult } from './control.js';
import { runCni, type CniResult } from './cni.js';
import { iperf, latency, placeRun, type CpuChoice } from './measure.js';
import { controlTable, dataplaneTable, eventsTable, machine, machineLine, summarise, targets, targetsTable, type EventsResult, type NetlinkResult, type Results, type Round } from './report.js';
import { writeSummary } from './summary.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');

interface Options {
  cases: string[];
  control: boolean;
  netlink: boolean;
  cni: boolean;
  /** Pods timed through the CNI plugin (and as many through its delegates alone). */
  pods: number;
  events: boolean;
  runs: number;
  seconds: number;
  latencySeconds: number;
  streams: number;
  leases: number[];
  puts: number;
  /** Where both ends of the single stream and the ping-pong run: one CPU (fixed, or the quietest before each run), or null for wherever the scheduler puts them. */
  cpu: CpuChoice;
  out: string;
  summary: string | null;
  full: boolean;
}

/** The parts that are not dataplane cases. */
const PARTS = ['control', 'netlink', 'cni', 'events'];

const USAGE = `usage: node dist-test/bench/run.js [--cases ${[...CASES.map((c) => c.name), ...PARTS].join(',')}]
  [--runs 3] [--seconds 5] [--latency-seconds 3] [--streams 4] [--leases 1000,10000] [--puts 200] [--pods 100] [--cpu auto|N|none]
  [--out bench/results/<timestamp>.json] [--summary BENCHMARKS.md | --no-summary]`;

function parseArgs(argv: string[]): Options {
  const a = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--help' || k === '-h') {
      console.log(USAGE);
      process.exit(0);
    }
    if (!k.startsWith('--')) throw new Error(`unexpected argument ${k}\n${USAGE}`);
    const [name, inline] = k.slice(2).split('=', 2);
    if (name.startsWith('no-')) a.set(name, 'true');
    else a.set(name, inline ?? argv[++i] ?? '');
  }
  const known = ['cases', 'runs', 'seconds', 'latency-seconds', 'streams', 'leases', 'puts', 'pods', 'cpu', 'out', 'summary', 'no-summary'];
  for (const k of a.keys()) if (!known.includes(k)) throw new Error(`unknown option --${k}\n${USAGE}`);
  const num = (k: string, d: number): number => {
    const v = a.has(k) ? Number(a.get(k)) : d;
    if (!Number.isFinite(v) || v < 0) throw new Error(`--${k}: not a number: ${a.get(k)}`);
    return v;
  };
  const names = a.get('cases')?.split(',').map((s) => s.trim()).filter(Boolean) ?? [...CASES.map((c) => c.name), ...PARTS];
  for (const n of names) if (!PARTS.includes(n)) caseDef(n);
  const seconds = num('seconds', 5);
  const full = !['cases', 'runs', 'seconds', 'latency-seconds', 'streams', 'leases', 'puts', 'pods', 'cpu'].some((k) => a.has(k));
  const cpu = a.get('cpu') ?? 'auto';
  if (cpu !== 'none' && cpu !== 'auto' && !(Number.isInteger(Number(cpu)) && Number(cpu) >= 0 && Number(cpu) < os.cpus().length)) throw new Error(`--cpu: auto, none, or a CPU number below ${os.cpus().length}`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z');
  return {
    cases: names.filter((n) => !PARTS.includes(n)),
    control: names.includes('control'),
    netlink: names.includes('netlink'),
    cni: names.includes('cni'),
    pods: Math.max(1, Math.round(num('pods', 100))),
    events: names.includes('events'),
    runs: Math.max(1, Math.round(num('runs', 3))),
    seconds,
    latencySeconds: num('latency-seconds', Math.min(seconds, 3)),
    streams: Math.max(1, Math.round(num('streams', 4))),
    leases: (a.get('leases') ?? '1000,10000').split(',').map(Number).filter((n) => n > 0 && n <= 16000),
    puts: Math.round(num('puts', 200)),
    cpu: cpu === 'none' ? null : cpu === 'auto' ? 'auto' : Number(cpu),
    out: path.resolve(a.get('out') ?? path.join(repo, 'bench/results', `${stamp}.json`)),
    // Only a full run with the defaults speaks for the project in BENCHMARKS.md.
    summary: a.has('no-summary') ? null : a.has('summary') ? path.resolve(a.get('summary')!) : full ? path.join(repo, 'BENCHMARKS.md') : null,
    full,
  };
}

const t0 = Date.now();
const say = (line: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}`);

/** The most a whole run waits for quiet CPUs. */
const WAIT_BUDGET_MS = 5 * 60_000;

async function dataplane(b: Bench, o: Options, res: Results): Promise<void> {
  let waitedTotal = 0;
  const setups: CaseSetup[] = [];
  for (const [i, name] of o.cases.entries()) {
    const started = Date.now();
    const s = await setupCase(b, caseDef(name), i, 21 + 2 * i);
    say(`set up ${name}: ${s.status} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    setups.push(s);
    res.dataplane[name] = { label: s.def.label, status: s.status, reason: s.reason, mtu: s.mtu, rounds: [] };
    if (s.status !== 'ready') say(`  ${s.reason}`);
  }
  const ready = setups.filter((s) => s.status === 'ready');
  for (let round = 0; round < o.runs; round++) {
    const shift = Math.floor((round * ready.length) / o.runs);
    const order = [...ready.slice(shift), ...ready.slice(0, shift)];
    for (const s of order) {
      const r: Round = { round };
      try {
        // Waiting for a quiet CPU is capped per run and for the whole benchmark, which must end in bounded time.
        const wait = (): number => Math.max(0, Math.min(20_000, WAIT_BUDGET_MS - waitedTotal));
        const p1 = await placeRun(o.cpu, wait());
        r.single = await iperf(s.client!, s.serverIP!, o.seconds, 1, p1.cpu);
        // Several streams are there to use every core: never pinned.
        r.multi = await iperf(s.client!, s.serverIP!, o.seconds, o.streams);
        const p2 = await placeRun(o.cpu, wait());
        r.latency = await latency(s.client!, s.serverIP!, o.latencySeconds, p2.cpu, s.sockperfPid);
        r.placement = { single: p1, latency: p2 };
        const waited = p1.waitedMs + p2.waitedMs;
        waitedTotal += waited;
        if (waited > 1000) say(`  waited ${(waited / 1000).toFixed(0)} s for a quiet CPU (other work on the machine)`);
        say(`round ${round + 1}/${o.runs} ${s.def.name}: ${r.single.gbps.toFixed(2)} Gbit/s (1 stream), ${r.multi.gbps.toFixed(2)} (${o.streams}), RTT p50 ${r.latency.p50us.toFixed(0)} µs p99 ${r.latency.p99us.toFixed(0)} µs`);
      } catch (err) {
        r.error = (err as Error).message;
        say(`round ${round + 1}/${o.runs} ${s.def.name}: ${r.error}`);
      }
      res.dataplane[s.def.name].rounds.push(r);
    }
  }
}

/** Runs a bench script compiled beside this one, with --json, in its own process (it makes its own lab). */
async function script(name: string, args: string[]): Promise<unknown> {
  const file = path.join(here, name);
  if (!fs.existsSync(file)) return undefined;
  const r = await run([process.execPath, file, ...args, '--json'], { allowFail: true, timeoutMs: 300_000 });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as unknown;
  } catch {
    return { error: `${name} exit ${r.code}: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}` };
  }
}

async function netlink(res: Results): Promise<void> {
  const n: NetlinkResult = {};
  say('netlink: the netlink dataplane programming 10,000 peers (bench/netlink-dataplane)');
  const dp = (await script('netlink-dataplane.js', ['--peers', '10000'])) as NetlinkResult['dataplane'] | undefined;
  if (dp) n.dataplane = dp;
  else say('  no bench/netlink-dataplane in this build: only the raw binding is measured');
  say('netlink: the raw rtnetlink binding programming 10,000 peers (bench/netlink-program)');
  n.binding = (await script('netlink-program.js', ['--peers', '10000'])) as NetlinkResult['binding'];
  res.netlink = n;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('the benchmark needs root: it creates network namespaces and loads BPF programs');
  const reaped = reapStaleLabs();
  if (reaped.length) say(`removed ${reaped.length} namespaces left by an earlier, killed run`);
  const res: Results = {
    version: 1,
    startedAt: new Date().toISOString(),
    command: `node dist-test/bench/run.js ${process.argv.slice(2).join(' ')}`.trim(),
    machine: machine(),
    options: { cases: o.cases, control: o.control, netlink: o.netlink, cni: o.cni, pods: o.pods, events: o.events, cpu: o.cpu, runs: o.runs, seconds: o.seconds, latencySeconds: o.latencySeconds, streams: o.streams, leases: o.leases, puts: o.puts },
    dataplane: {},
    control: null,
    netlink: null,
    cni: null,
    targets: [],
  };
  say(`weft benchmark on ${machineLine(res.machine)}`);
  if (res.machine.foreignNetnsAtStart) say(`note: ${res.machine.foreignNetnsAtStart} other network namespaces exist: other work on this machine adds noise`);
  // A part that fails is reported in the results and the others still run.
  const part = async (what: string, fn: () => Promise<void>, onError: (msg: string) => void): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      const msg = (err as Error).message.split('\n').slice(0, 4).join(' ');
      say(`${what} failed: ${msg}`);
      onError(msg);
    }
  };
  if (o.cases.length) {
    await part('dataplane', async () => {
      const b = await createBench();
      try {
        await dataplane(b, o, res);
      } finally {
        await destroyBench(b);
      }
    }, (msg) => (res.dataplaneError = msg));
  }
  if (o.control) {
    const control = (res.control = { start: [], put: null, rss: null });
    await part('control plane', async () => {
      const b = await createBench();
      try {
        await runControl(b, { sizes: o.leases, runs: o.runs, puts: o.puts, say }, control);
      } finally {
        await destroyBench(b);
      }
    }, (msg) => ((control as ControlResult).error = msg));
  }
  if (o.netlink) await part('netlink', () => netlink(res), (msg) => (res.netlink = { ...res.netlink, error: msg }));
  if (o.cni) {
    const cni: CniResult = (res.cni = { pods: o.pods, add: null, del: null, delegateAdd: null, delegateDel: null, nodeStart: null, version: null });
    await part('cni', async () => {
      const b = await createBench();
      try {
        await runCni(b, { pods: o.pods, say }, cni);
      } finally {
        await destroyBench(b);
      }
    }, (msg) => (cni.error = msg));
  }
  if (o.events) {
    say("events: what weft monitor's events cost overlay_egress per packet (bench/events)");
    res.events = (await script('events.js', [])) as EventsResult | undefined;
  }

  summarise(res.dataplane);
  res.targets = targets(res);
  res.finishedAt = new Date().toISOString();
  res.durationSec = Math.round((Date.now() - t0) / 1000);
  res.machine.loadavgEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
  fs.mkdirSync(path.dirname(o.out), { recursive: true });
  fs.writeFileSync(o.out, JSON.stringify(res, null, 2) + '\n');

  console.log('');
  if (o.cases.length) {
    const where = o.cpu === null ? 'unpinned' : `single stream and ping-pong with both ends on ${o.cpu === 'auto' ? 'the quietest CPU' : `CPU ${o.cpu}`}`;
    console.log(`Dataplane, pod to pod across two hosts: median of ${o.runs} rounds (±: half the min–max spread; ${where}); RTT = TCP 64-byte ping-pong round trip; CPU = machine-wide busy seconds per GB received`);
    console.log(dataplaneTable(res));
    if (res.dataplaneError) console.log(`stopped early: ${res.dataplaneError}`);
    console.log('');
  }
  if (o.control || o.netlink || o.cni) {
    console.log(o.control || o.netlink ? `Control plane${o.cni ? ' and CNI' : ''}` : 'CNI plugin');
    console.log(controlTable(res));
    console.log('');
  }
  if (res.events) {
    console.log("weft monitor's events: overlay_egress per packet, timed by the kernel (BPF_PROG_TEST_RUN), median of 7 batches");
    console.log(eventsTable(res));
    console.log('');
  }
  console.log("Targets (issue 6; reported, never enforced)");
  console.log(targetsTable(res, false, o.full));
  console.log('');
  console.log(`results: ${path.relative(process.cwd(), o.out)} (${res.durationSec} s)`);
  if (o.summary) {
    writeSummary(o.summary, res, path.relative(path.dirname(o.summary), o.out));
    console.log(`summary: ${path.relative(process.cwd(), o.summary)}`);
  }
}

main().catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
