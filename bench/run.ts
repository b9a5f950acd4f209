// `make bench`: weft's dataplane and control plane measured beside the
// underlay and flannel's kernel paths, all in one run on this machine, in lab
// namespaces it creates and removes. A benchmark, not a test: the issue's
// targets are printed as met or missed and never fail the run.
//
//   node dist-test/bench/run.js [--profiles bare,docker,kube] [--cases a,b,...]
//     [--runs 3] [--max-runs 6] [--seconds 5] [--latency-seconds 3] [--streams 4]
//     [--rate auto|GBITS] [--leases 1000,10000,65536] [--puts 200] [--netlink-peers 65535]
//     [--pods 100] [--cpu auto|N|none] [--out FILE] [--summary FILE | --no-summary]
//
// Dataplane cases run on host profiles (lab/profiles.ts: bare, docker, kube;
// every case on bare, the targets' four on the others) and in rounds: every
// round visits every case (in an order rotated each round), so that drift on a
// noisy machine hits all cases alike; ratios are taken within a round, between
// a case and flannel's path on the same profile, and their median reported. A
// profile whose key ratios still spread widely after --runs rounds gets more,
// up to --max-runs. Case names: see cases.ts; `control` (agent start, put
// latency, RSS, weft leases), `netlink` (programming peers), `cni` (the CNI
// plugin's ADD and DEL), `events` (what weft monitor's events cost a packet,
// bench/events.ts) and `cli` (the CLI's start, bench/cli.ts) select the
// non-traffic parts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../lab/exec.js';
import { reapStaleLabs } from '../lab/netns.js';
import { CASES, PROFILE_CASES, caseDef, createBench, destroyBench, inCase, setupCase, setupKey, type Bench, type CaseSetup } from './cases.js';
import { MAX_LEASES, runControl, type ControlResult } from './control.js';
import { runCni, type CniResult } from './cni.js';
import { cliStartLines, runCliStart } from './cli.js';
import { iperf, latency, netnsInodes, placeRun, spread, WIDE_SPREAD, type CpuChoice } from './measure.js';
import { controlTable, dataplaneTable, eventsTable, machine, machineLine, profilesIn, summarise, targetsTable, type EventsResult, type NetlinkResult, type Results, type Round } from './report.js';
import { targets } from './targets.js';
import { PROFILES, isProfile, type HostProfile } from '../lab/profiles.js';
import { writeSummary } from './summary.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');

interface Options {
  profiles: HostProfile[];
  /** Cases named with --cases run on every profile; otherwise every case on bare, PROFILE_CASES on the others. */
  cases: string[] | null;
  control: boolean;
  netlink: boolean;
  cni: boolean;
  /** Pods timed through the CNI plugin (and as many through its delegates alone). */
  pods: number;
  events: boolean;
  cli: boolean;
  runs: number;
  maxRuns: number;
  seconds: number;
  /** The paced run's offered rate in Gbit/s, or 'auto': half of flannel vxlan's single stream. */
  rate: number | 'auto';
  netlinkPeers: number;
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
const PARTS = ['control', 'netlink', 'cni', 'events', 'cli'];

const USAGE = `usage: node dist-test/bench/run.js [--profiles ${PROFILES.join(',')}] [--cases ${[...CASES.map((c) => c.name), ...PARTS].join(',')}]
  [--runs 3] [--max-runs 6] [--seconds 5] [--latency-seconds 3] [--streams 4] [--rate auto|GBITS]
  [--leases 1000,10000,${MAX_LEASES}] [--puts 200] [--netlink-peers ${MAX_LEASES - 1}] [--pods 100] [--cpu auto|N|none]
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
  const known = ['profiles', 'cases', 'runs', 'max-runs', 'seconds', 'latency-seconds', 'streams', 'rate', 'leases', 'puts', 'netlink-peers', 'pods', 'cpu', 'out', 'summary', 'no-summary'];
  for (const k of a.keys()) if (!known.includes(k)) throw new Error(`unknown option --${k}\n${USAGE}`);
  const num = (k: string, d: number): number => {
    const v = a.has(k) ? Number(a.get(k)) : d;
    if (!Number.isFinite(v) || v < 0) throw new Error(`--${k}: not a number: ${a.get(k)}`);
    return v;
  };
  const names = a.get('cases')?.split(',').map((t) => t.trim()).filter(Boolean) ?? null;
  for (const n of names ?? []) if (!PARTS.includes(n)) caseDef(n);
  const profiles = (a.get('profiles') ?? PROFILES.join(',')).split(',').map((t) => t.trim()).filter(Boolean);
  for (const p of profiles) if (!isProfile(p)) throw new Error(`--profiles: no profile ${p}; profiles: ${PROFILES.join(', ')}`);
  const seconds = num('seconds', 5);
  const full = !['profiles', 'cases', 'runs', 'max-runs', 'seconds', 'latency-seconds', 'streams', 'rate', 'leases', 'puts', 'netlink-peers', 'pods', 'cpu'].some((k) => a.has(k));
  const cpu = a.get('cpu') ?? 'auto';
  if (cpu !== 'none' && cpu !== 'auto' && !(Number.isInteger(Number(cpu)) && Number(cpu) >= 0 && Number(cpu) < os.cpus().length)) throw new Error(`--cpu: auto, none, or a CPU number below ${os.cpus().length}`);
  const rate = a.get('rate') ?? 'auto';
  if (rate !== 'auto' && !(Number(rate) > 0)) throw new Error(`--rate: auto, or Gbit/s above 0 (e.g. 4)`);
  const runs = Math.max(1, Math.round(num('runs', 3)));
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z');
  return {
    profiles: profiles as HostProfile[],
    cases: names === null ? null : names.filter((n) => !PARTS.includes(n)),
    control: names === null || names.includes('control'),
    netlink: names === null || names.includes('netlink'),
    cni: names === null || names.includes('cni'),
    pods: Math.max(1, Math.round(num('pods', 100))),
    events: names === null || names.includes('events'),
    cli: names === null || names.includes('cli'),
    runs,
    maxRuns: Math.max(runs, Math.round(num('max-runs', a.has('runs') ? runs : 6))),
    seconds,
    rate: rate === 'auto' ? 'auto' : Number(rate),
    netlinkPeers: Math.round(num('netlink-peers', MAX_LEASES - 1)),
    latencySeconds: num('latency-seconds', Math.min(seconds, 3)),
    streams: Math.max(1, Math.round(num('streams', 4))),
    leases: (a.get('leases') ?? `1000,10000,${MAX_LEASES}`).split(',').map(Number).filter((n) => n > 1 && n <= MAX_LEASES),
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

/** Which cases run on which profile: --cases on every profile; by default every case on bare and the targets' four elsewhere. */
function plan(o: Options): Array<{ profile: HostProfile; name: string }> {
  const out: Array<{ profile: HostProfile; name: string }> = [];
  for (const profile of o.profiles) {
    const names = o.cases ?? (profile === 'bare' ? CASES.map((c) => c.name) : PROFILE_CASES);
    // The underlay has no pods and no overlay: its profile would change nothing it measures.
    for (const name of names) if (profile === 'bare' || name !== 'underlay') out.push({ profile, name });
  }
  return out;
}

/** The ratios a profile's targets rest on: when they still spread widely, that profile gets another round. */
const KEY_PAIRS: Array<[string, string]> = [['weft-ebpf-vxlan', 'flannel-vxlan'], ['weft-ebpf-host-gw', 'flannel-host-gw']];

function wideProfiles(res: Results, profiles: HostProfile[]): HostProfile[] {
  return profiles.filter((p) =>
    KEY_PAIRS.some(([a, b]) => {
      const x = res.dataplane[setupKey(p, a)]?.rounds;
      const y = res.dataplane[setupKey(p, b)]?.rounds;
      if (!x || !y) return false;
      const ratios = (get: (r: Round) => number | undefined): number[] =>
        x.flatMap((r) => {
          const o = y.find((q) => q.round === r.round);
          const u = get(r);
          const v = o ? get(o) : undefined;
          return u !== undefined && v !== undefined && v > 0 ? [u / v] : [];
        });
      return [ratios((r) => r.single?.gbps), ratios((r) => r.paced?.ownCpuSecPerGB)].some((rs) => rs.length > 1 && spread(rs) > WIDE_SPREAD);
    }),
  );
}

async function dataplane(b: Bench, o: Options, res: Results): Promise<void> {
  let waitedTotal = 0;
  const setups: CaseSetup[] = [];
  for (const [i, { profile, name }] of plan(o).entries()) {
    const started = Date.now();
    const s = await setupCase(b, caseDef(name), profile, i, 21 + 2 * i);
    const key = setupKey(profile, name);
    say(`set up ${key}: ${s.status} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    setups.push(s);
    res.dataplane[key] = { case: name, profile, label: s.def.label, status: s.status, reason: s.reason, mtu: s.mtu, rounds: [] };
    if (s.status !== 'ready') say(`  ${s.reason}`);
  }
  const ready = setups.filter((s) => s.status === 'ready');
  // The paced stream's CPU counts the case's own namespaces' processes (its agents, monitors, iperf3): neither
  // other people's nor the idle agents of the run's other cases, which every case would otherwise carry alike.
  const ours = new Map(ready.map((s) => [s, netnsInodes((n) => inCase(s, n))]));
  // The paced runs' rate: fixed for the whole run, so that every case and profile carries the same load.
  const ref = ready.find((s) => s.profile === 'bare' && s.def.name === 'flannel-vxlan') ?? ready.find((s) => s.def.name === 'flannel-vxlan');
  if (o.rate !== 'auto') res.pacedRate = { bps: o.rate * 1e9, from: '--rate' };
  else if (ref) {
    const p = await placeRun(o.cpu, 20_000);
    const t = await iperf(ref.client!, ref.serverIP!, 3, { cpu: p.cpu });
    res.pacedRate = { bps: Math.round((t.gbps / 2) * 10) / 10 * 1e9, from: `half of ${setupKey(ref.profile, ref.def.name)}'s single stream (${t.gbps.toFixed(2)} Gbit/s, 3 s)` };
  } else res.pacedRate = { bps: 4e9, from: 'default (no flannel-vxlan case in this run)' };
  say(`paced runs at ${(res.pacedRate.bps / 1e9).toFixed(1)} Gbit/s: ${res.pacedRate.from}`);

  const round = async (n: number, cases: CaseSetup[], total: number): Promise<void> => {
    const shift = Math.floor((n * cases.length) / Math.max(1, total)) % Math.max(1, cases.length);
    const order = [...cases.slice(shift), ...cases.slice(0, shift)];
    for (const s of order) {
      const key = setupKey(s.profile, s.def.name);
      const r: Round = { round: n };
      try {
        // Waiting for a quiet CPU is capped per run and for the whole benchmark, which must end in bounded time.
        const wait = (): number => Math.max(0, Math.min(20_000, WAIT_BUDGET_MS - waitedTotal));
        const p1 = await placeRun(o.cpu, wait());
        r.single = await iperf(s.client!, s.serverIP!, o.seconds, { cpu: p1.cpu });
        // Several streams are there to use every core: never pinned.
        r.multi = await iperf(s.client!, s.serverIP!, o.seconds, { streams: o.streams });
        // One stream at a fixed rate below saturation, unpinned: what a byte costs, whoever else is busy.
        r.paced = await iperf(s.client!, s.serverIP!, o.seconds, { rateBps: res.pacedRate!.bps, ours: ours.get(s) });
        const p2 = await placeRun(o.cpu, wait());
        r.latency = await latency(s.client!, s.serverIP!, o.latencySeconds, p2.cpu, s.sockperfPid);
        r.placement = { single: p1, latency: p2 };
        const waited = p1.waitedMs + p2.waitedMs;
        waitedTotal += waited;
        if (waited > 1000) say(`  waited ${(waited / 1000).toFixed(0)} s for a quiet CPU (other work on the machine)`);
        say(`round ${n + 1} ${key}: ${r.single.gbps.toFixed(2)} Gbit/s (1 stream), ${r.multi.gbps.toFixed(2)} (${o.streams}), ${r.paced.ownCpuSecPerGB!.toFixed(2)} CPU s/GB at ${r.paced.gbps.toFixed(1)} Gbit/s, RTT p50 ${r.latency.p50us.toFixed(0)} µs p99 ${r.latency.p99us.toFixed(0)} µs`);
      } catch (err) {
        r.error = (err as Error).message;
        say(`round ${n + 1} ${key}: ${r.error}`);
      }
      res.dataplane[key].rounds.push(r);
    }
  };
  for (let n = 0; n < o.runs; n++) await round(n, ready, o.runs);
  // Rounds until the key ratios settle, for the profiles where they have not.
  for (let n = o.runs; n < o.maxRuns; n++) {
    const wide = wideProfiles(res, o.profiles);
    if (!wide.length) break;
    say(`round ${n + 1}: the ratios on ${wide.join(', ')} still spread over ±${(WIDE_SPREAD * 50).toFixed(1)}%; one more round there`);
    // Their flannel references run again too: ratios are taken within a round.
    await round(n, ready.filter((s) => wide.includes(s.profile)), o.maxRuns);
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

async function netlink(res: Results, peers: number): Promise<void> {
  const n: NetlinkResult = {};
  say(`netlink: the netlink dataplane programming ${peers} peers (bench/netlink-dataplane)`);
  const dp = (await script('netlink-dataplane.js', ['--peers', String(peers)])) as NetlinkResult['dataplane'] | undefined;
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
    options: { profiles: o.profiles, cases: o.cases, control: o.control, netlink: o.netlink, cni: o.cni, pods: o.pods, events: o.events, cli: o.cli, cpu: o.cpu, runs: o.runs, maxRuns: o.maxRuns, seconds: o.seconds, latencySeconds: o.latencySeconds, streams: o.streams, rate: o.rate, leases: o.leases, puts: o.puts, netlinkPeers: o.netlinkPeers },
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
  const traffic = plan(o).length > 0 && (o.cases === null || o.cases.length > 0);
  if (traffic) {
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
    const control: ControlResult = (res.control = { start: [], put: null, rss: [], leasesCommand: [] });
    await part('control plane', async () => {
      const b = await createBench();
      try {
        await runControl(b, { sizes: o.leases, runs: o.runs, maxRuns: o.maxRuns, puts: o.puts, say }, control);
      } finally {
        await destroyBench(b);
      }
    }, (msg) => (control.error = msg));
  }
  if (o.netlink) await part('netlink', () => netlink(res, o.netlinkPeers), (msg) => (res.netlink = { ...res.netlink, error: msg }));
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

  if (o.cli) {
    say("cli: weft's CLI start, 20 runs of each command (bench/cli)");
    await part('cli', async () => {
      res.cli = await runCliStart(20);
    }, (msg) => (res.cli = { runs: 0, nodeMs: null, rows: [], loadavg: [], error: msg }));
  }

  summarise(res.dataplane);
  res.targets = targets(res);
  res.finishedAt = new Date().toISOString();
  res.durationSec = Math.round((Date.now() - t0) / 1000);
  res.machine.loadavgEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
  fs.mkdirSync(path.dirname(o.out), { recursive: true });
  fs.writeFileSync(o.out, JSON.stringify(res, null, 2) + '\n');

  console.log('');
  if (traffic) {
    const where = o.cpu === null ? 'unpinned' : `single stream and ping-pong with both ends on ${o.cpu === 'auto' ? 'the quietest CPU' : `CPU ${o.cpu}`}`;
    console.log(`Dataplane, pod to pod across two hosts: medians over the rounds (±: half the min–max spread; ${where}); RTT = TCP 64-byte ping-pong round trip; CPU s/GB = busy CPU seconds per GB received at ${((res.pacedRate?.bps ?? 0) / 1e9).toFixed(1)} Gbit/s offered, unpinned, machine-wide less other people's processes; x flannel: within the profile`);
    for (const p of profilesIn(res)) {
      console.log(`\n[${p}]`);
      console.log(dataplaneTable(res, false, p));
    }
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
  if (res.cli) {
    console.log("weft's CLI start (issue 10): average of 10 runs each, spawn to exit");
    console.log(cliStartLines(res.cli).join('\n'));
    console.log('');
  }
  console.log('Targets (issue 15; reported, never enforced)');
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
