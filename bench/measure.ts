// Traffic measurements between two lab namespaces, and the statistics the
// report needs. Every generator is bounded in time (iperf3 -t, sockperf -t)
// and every process is started inside a namespace the benchmark made.
import fs from 'node:fs';
import os from 'node:os';
import { runSync } from '../lab/exec.js';
import { IPERF3_PORT, type Netns } from '../lab/netns.js';

export const SOCKPERF_PORT = 11111;

/** Clock ticks per second for /proc/stat (USER_HZ; 100 on every Linux build that matters, asked once). */
const CLK_TCK = Number(runSync(['getconf', 'CLK_TCK'], { allowFail: true }).stdout.trim()) || 100;

/**
 * One reading of /proc/stat: each CPU's idle (idle + iowait) and steal, in
 * USER_HZ ticks, and the monotonic clock at the read, in seconds.
 *
 * Busy time is taken as wall time less idle and steal, never from the busy
 * fields themselves. A kernel with tick accounting (CONFIG_TICK_CPU_ACCOUNTING,
 * no IRQ_TIME_ACCOUNTING: Debian's, and this VM's at HZ 250) fills user,
 * system and softirq by sampling whoever runs at each tick, and a load paced
 * by a timer (iperf3 -b) phase-locks with the tick: one paced stream read 0.17
 * and 2.6 CPU s/GB in two runs a minute apart. A NOHZ kernel measures idle
 * and iowait at idle entry and exit (get_cpu_idle_time_us), so the same runs
 * read 1.2 and 1.3 this way. (Without NOHZ idle is sampled too, and this is
 * no worse than the busy fields.)
 */
export interface CpuSample {
  at: number;
  idle: number[];
  steal: number[];
}

/** /proc/stat's first eight counters of each CPU (user, nice, system, idle, iowait, irq, softirq, steal), in USER_HZ ticks. */
export function procStatCpus(): number[][] {
  const cpus = fs
    .readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .filter((l) => /^cpu\d/.test(l))
    .map((l) => Array.from({ length: 8 }, (_, k) => Number(l.trim().split(/\s+/)[k + 1] ?? 0)));
  if (cpus.length === 0) throw new Error('/proc/stat: no "cpuN" lines');
  return cpus;
}

export function cpuNow(): CpuSample {
  const cpus = procStatCpus();
  return { at: Number(process.hrtime.bigint()) / 1e9, idle: cpus.map((f) => f[3] + f[4]), steal: cpus.map((f) => f[7]) };
}

/** Busy CPU seconds between two samples, per CPU (never below 0 nor above the wall time between them). */
export function busyPerCpu(a: CpuSample, b: CpuSample): number[] {
  const wall = b.at - a.at;
  return b.idle.map((idle, i) => Math.min(wall, Math.max(0, wall - (idle - (a.idle[i] ?? idle) + b.steal[i] - (a.steal[i] ?? b.steal[i])) / CLK_TCK)));
}

/** Busy share of each CPU over `ms`. */
export async function perCpuBusy(ms = 300): Promise<number[]> {
  const a = cpuNow();
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuNow();
  return busyPerCpu(a, b).map((s) => s / (b.at - a.at));
}

/** --cpu: a fixed CPU, 'auto' (the quietest CPU before each run), or null (unpinned). */
export type CpuChoice = number | 'auto' | null;

export interface Placement {
  cpu: number | null;
  /** How long we waited for the CPU to be quiet (other work on the machine). */
  waitedMs: number;
  /** The CPU's busy share just before the run. */
  busyBefore: number | null;
}

/**
 * Where the next pinned run goes: a CPU that nobody else is using, waiting up
 * to maxWaitMs for one (other people's benchmarks and tests share this
 * machine; a pinned run next to a busy process measures that process).
 */
export async function placeRun(choice: CpuChoice, maxWaitMs = 60_000): Promise<Placement> {
  if (choice === null) return { cpu: null, waitedMs: 0, busyBefore: null };
  const start = Date.now();
  for (;;) {
    const busy = await perCpuBusy();
    const cpu = choice === 'auto' ? busy.indexOf(Math.min(...busy)) : choice;
    if (busy[cpu] <= 0.1 || Date.now() - start > maxWaitMs) return { cpu, waitedMs: Date.now() - start, busyBefore: Math.round(busy[cpu] * 100) / 100 };
  }
}

/**
 * CPU time that other people's work took meanwhile, so that it can be taken
 * out of the machine-wide figure: the user and system time (with reaped
 * children's) of every process that is neither in one of `ours` (the
 * case's network namespaces, by inode) nor this process, nor a kernel
 * thread. Kernel threads (ksoftirqd, kworkers) stay in: packet processing
 * deferred from softirq context runs there. Ticks of USER_HZ.
 */
export function othersTicks(ours: Set<number>): number {
  let sum = 0;
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let stat: string;
    let ns: number;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      ns = fs.statSync(`/proc/${name}/ns/net`).ino;
    } catch {
      continue; // gone meanwhile: its time is in its parent's cutime by now
    }
    if (ours.has(ns)) continue;
    // Fields after the command (which may hold spaces): state is field 3, flags 9, utime..cstime 14..17.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(f[6]) & 0x00200000) continue; // PF_KTHREAD
    sum += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  }
  return sum;
}

/** The inodes of the network namespaces (in /run/netns) whose names `accept` takes: a case's hosts' and pods'. */
export function netnsInodes(accept: (name: string) => boolean): Set<number> {
  const out = new Set<number>();
  for (const name of fs.existsSync('/run/netns') ? fs.readdirSync('/run/netns') : []) {
    if (!accept(name)) continue;
    try {
      out.add(fs.statSync(`/run/netns/${name}`).ino);
    } catch {
      /* deleted meanwhile */
    }
  }
  return out;
}

/** A CPU reading, and other people's share of the time so far. */
function sampleCpu(ours: Set<number> | null): { cpu: CpuSample; others: number } {
  return { cpu: cpuNow(), others: ours ? othersTicks(ours) : 0 };
}

export interface Throughput {
  gbps: number;
  bytes: number;
  retransmits: number;
  /** Machine-wide busy CPU seconds while the transfer ran. */
  cpuSeconds: number;
  /** Busy share of all CPUs while the transfer ran (1 = every core busy). */
  cpuShare: number;
  /** cpuSeconds per 10^9 bytes received. */
  cpuSecPerGB: number;
  /**
   * The same without the processes outside `ours` (othersTicks): machine-wide
   * busy time less theirs, per 10^9 bytes received. Only when asked for.
   */
  ownCpuSecPerGB?: number;
  ownCpuSeconds?: number;
}

interface IperfJson {
  error?: string;
  end?: { sum_received?: { bytes: number; bits_per_second: number }; sum_sent?: { retransmits?: number } };
}

/**
 * One iperf3 run from `client` to the server listening at `serverIP` (started
 * by startServers). `cpu`: both ends on that one CPU (iperf3 -A), so the run
 * measures the path's cost rather than where the scheduler put the two ends
 * (on this VM a cross-CPU wakeup costs more than the whole network path).
 */
export interface IperfOptions {
  streams?: number;
  /** Both ends on this CPU. */
  cpu?: number | null;
  /** Offered rate, bits per second (iperf3 -b); unlimited when absent. */
  rateBps?: number;
  /** Our network namespaces (inodes): also measure CPU without other people's processes. */
  ours?: Set<number>;
}

export async function iperf(client: Netns, serverIP: string, seconds: number, o: IperfOptions = {}): Promise<Throughput> {
  const streams = o.streams ?? 1;
  const cpu = o.cpu ?? null;
  const cmd = ['iperf3', '-c', serverIP, '-p', String(IPERF3_PORT), '-t', String(seconds), '-P', String(streams), '-J', '--connect-timeout', '3000'];
  if (cpu !== null) cmd.push('-A', `${cpu},${cpu}`);
  if (o.rateBps) cmd.push('-b', String(Math.round(o.rateBps)));
  const before = sampleCpu(o.ours ?? null);
  const r = await client.exec(cmd, { allowFail: true, timeoutMs: (seconds + 20) * 1000 });
  const after = sampleCpu(o.ours ?? null);
  let j: IperfJson;
  try {
    j = JSON.parse(r.stdout) as IperfJson;
  } catch {
    throw new Error(`iperf3 -c ${serverIP} in ${client.name}: exit ${r.code}, no JSON: ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
  }
  if (j.error || !j.end?.sum_received) throw new Error(`iperf3 -c ${serverIP} in ${client.name}: ${j.error ?? 'no summary'}`);
  const bytes = j.end.sum_received.bytes;
  const perCpu = busyPerCpu(before.cpu, after.cpu);
  const cpuSeconds = perCpu.reduce((x, y) => x + y, 0);
  const out: Throughput = {
    gbps: j.end.sum_received.bits_per_second / 1e9,
    bytes,
    retransmits: j.end.sum_sent?.retransmits ?? 0,
    cpuSeconds,
    cpuShare: cpuSeconds / Math.max(1e-9, perCpu.length * (after.cpu.at - before.cpu.at)),
    cpuSecPerGB: bytes > 0 ? cpuSeconds / (bytes / 1e9) : NaN,
  };
  if (o.ours) {
    // Others' ticks can also fall: a process that exits meanwhile takes its ticks along (unless a parent we count
    // reaps it), which once made a run's own CPU 86x the machine-wide figure. Never more than the machine's.
    out.ownCpuSeconds = Math.min(cpuSeconds, Math.max(0, cpuSeconds - (after.others - before.others) / CLK_TCK));
    out.ownCpuSecPerGB = bytes > 0 ? out.ownCpuSeconds / (bytes / 1e9) : NaN;
  }
  return out;
}

export interface Latency {
  /** Round-trip time percentiles of a 64-byte TCP ping-pong, microseconds. */
  p50us: number;
  p99us: number;
  avgUs: number;
  observations: number;
}

/**
 * TCP request/response latency with sockperf ping-pong (64-byte messages, one
 * in flight). sockperf reports each round trip halved; we double it back, so
 * these are round-trip times. `cpu`: the client and the server (serverPid,
 * re-pinned here) on that CPU: a round trip then never waits for a
 * cross-CPU wakeup.
 */
export async function latency(client: Netns, serverIP: string, seconds: number, cpu: number | null = null, serverPid?: number): Promise<Latency> {
  if (serverPid !== undefined) runSync(['taskset', '-a', '-p', '-c', cpu === null ? `0-${os.cpus().length - 1}` : String(cpu), String(serverPid)]);
  const cmd = [...pin(cpu), 'sockperf', 'ping-pong', '--tcp', '-i', serverIP, '-p', String(SOCKPERF_PORT), '-t', String(seconds), '-m', '64'];
  const r = await client.exec(cmd, { allowFail: true, timeoutMs: (seconds + 20) * 1000 });
  const out = (r.stdout + r.stderr).replace(/\x1b\[[0-9;]*m/g, '');
  const pct = (p: string): number => {
    const m = new RegExp(`percentile ${p.replace('.', '\\.')} =\\s*([\\d.]+)`).exec(out);
    if (!m) throw new Error(`sockperf ping-pong to ${serverIP} in ${client.name}: exit ${r.code}, no ${p} percentile: ${out.trim().split('\n').slice(-3).join(' | ')}`);
    return Number(m[1]) * 2;
  };
  const avg = /avg-latency=([\d.]+)/.exec(out);
  const obs = /Total (\d+) observations/.exec(out);
  return { p50us: pct('50.000'), p99us: pct('99.000'), avgUs: avg ? Number(avg[1]) * 2 : NaN, observations: obs ? Number(obs[1]) : 0 };
}

const pin = (cpu: number | null): string[] => (cpu === null ? [] : ['taskset', '-c', String(cpu)]);

/** iperf3 and sockperf servers in the receiving namespace, for the whole benchmark; stopped with the lab. Returns the sockperf server's pid (nsenter execs it, so the spawned pid is sockperf's). */
export async function startServers(server: Netns): Promise<{ sockperfPid: number }> {
  const sockperf = server.spawn(['sockperf', 'server', '--tcp', '-i', '0.0.0.0', '-p', String(SOCKPERF_PORT)]);
  const iperf = server.spawn(['iperf3', '-s', '-p', String(IPERF3_PORT)]);
  // Ready when they listen: neither says so reliably into a pipe.
  await Promise.all([server.waitForListening(IPERF3_PORT, iperf), server.waitForListening(SOCKPERF_PORT, sockperf)]);
  return { sockperfPid: sockperf.pid! };
}

// --- statistics -------------------------------------------------------------------

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Nearest-rank percentile, p in 0..100. */
export function percentile(xs: number[], p: number): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** A spread (below) wider than this (±7.5 %) earns more runs, up to --max-runs: the dataplane's rounds, the control plane's starts and listings. */
export const WIDE_SPREAD = 0.15;

/** Whether a measurement taken `done` times so far (values `xs`) gets another run: always up to `runs`, then up to `maxRuns` while xs spread over WIDE_SPREAD. */
export function anotherRun(done: number, xs: number[], o: { runs: number; maxRuns: number }): boolean {
  return done < o.runs || (done < o.maxRuns && spread(xs) > WIDE_SPREAD);
}

/** (max - min) / median: how far apart the runs were, as a fraction of the middle one. */
export function spread(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x));
  if (s.length < 2) return NaN;
  return (Math.max(...s) - Math.min(...s)) / median(s);
}
