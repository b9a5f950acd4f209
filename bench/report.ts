// The benchmark's summary: per-case medians and spreads, ratios to the
// underlay and to flannel's kernel path of the same kind on the same host
// profile, and the tables for the terminal and for BENCHMARKS.md (the
// targets are targets.ts').
import fs from 'node:fs';
import os from 'node:os';
import { runSync } from '../lab/exec.js';
import { CASES, flannelCounterpart, setupKey, type CaseSetup } from './cases.js';
import { PROFILES, type HostProfile } from '../lab/profiles.js';
import type { ControlResult } from './control.js';
import { cniRows, type CniResult } from './cni.js';
import type { CliStartResult } from './cli.js';
import { median, spread, type Latency, type Placement, type Throughput } from './measure.js';

export interface Round {
  round: number;
  single?: Throughput;
  multi?: Throughput;
  latency?: Latency;
  /** One stream at the run's fixed offered rate, unpinned: the CPU it cost. */
  paced?: Throughput;
  placement?: { single: Placement; latency: Placement };
  error?: string;
}

export interface CaseSummary {
  singleGbps: number;
  singleMinGbps: number;
  singleMaxGbps: number;
  singleSpread: number;
  multiGbps: number;
  multiSpread: number;
  p50us: number;
  p99us: number;
  cpuSecPerGB: number;
  /** At the fixed offered rate: busy CPU seconds per GB without other people's processes, and machine-wide. */
  pacedCpuSecPerGB: number;
  pacedCpuSpread: number;
  pacedMachineCpuSecPerGB: number;
  pacedGbps: number;
  /** Median over rounds of (this case / underlay) single-stream, each ratio taken within one round. */
  vsUnderlay: number;
  vsUnderlaySpread: number;
  ref?: string;
  vsRef: number;
  vsRefSpread: number;
  /** p50 round-trip time over the reference's, per round, median. */
  p50VsRef: number;
  p50VsRefSpread: number;
  /** Paced CPU s/GB over the reference's, per round, median. */
  cpuVsRef: number;
  cpuVsRefSpread: number;
  /** Of the rounds paired with the reference: how many, and in how many this case did better (a higher rate; a lower round trip or CPU per GB). Absent in results written before. */
  pairs?: { single: number; singleAhead: number; p50: number; p50Ahead: number; cpu: number; cpuAhead: number };
  /**
   * For a case whose reference is another weft case (cases.ts' flannelCounterpart): its single stream against the
   * flannel path that case stands against, per round, the same way. Absent where `ref` is that flannel path.
   */
  vsFlannel?: { ref: string; single: number; spread: number; rounds: number; ahead: number };
}

export interface CaseResult {
  /** The case (cases.ts) and the host profile it ran on. */
  case: string;
  profile: HostProfile;
  label: string;
  status: CaseSetup['status'];
  reason?: string;
  mtu?: number;
  rounds: Round[];
  summary?: CaseSummary;
}

export interface NetlinkResult {
  /** bench/netlink-dataplane.js: the netlink dataplane's own code path. */
  dataplane?: { peers: number; ms: Record<string, number> } | { error: string };
  /** bench/netlink-program.js: the raw rtnetlink binding, no dataplane logic. */
  binding?: { peers: number; rows: Array<{ mode: string; program: number; read: number; remove: number }> } | { error: string };
  error?: string;
}

/** bench/events.js: what weft monitor's events cost overlay_egress per packet (BPF_PROG_TEST_RUN). */
export type EventsResult = { packets: number; rows: Array<{ mode: string; nsPerPacket: number; events: number; lost: number }> } | { error: string };

export interface Target {
  what: string;
  goal: string;
  measured: string;
  met: boolean | null;
}

export interface Results {
  version: 1;
  startedAt: string;
  finishedAt?: string;
  durationSec?: number;
  command: string;
  machine: Machine;
  options: Record<string, unknown>;
  /** The fixed offered rate of the paced runs, bits per second, and where it came from. */
  pacedRate?: { bps: number; from: string };
  dataplane: Record<string, CaseResult>;
  dataplaneError?: string;
  control: ControlResult | null;
  netlink: NetlinkResult | null;
  /** Absent in results written before the CNI part existed. */
  cni?: CniResult | null;
  events?: EventsResult | null;
  cli?: CliStartResult | null;
  targets: Target[];
}

export interface Machine {
  cpu: string;
  cores: number;
  memoryGB: number;
  kernel: string;
  os: string;
  node: string;
  iperf3: string;
  sockperf: string;
  loadavgStart: number[];
  loadavgEnd?: number[];
  /** Network namespaces that were not the benchmark's when it started (other work on the machine). */
  foreignNetnsAtStart: number;
}

export function machine(): Machine {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const first = (cmd: string[]): string => runSync(cmd, { allowFail: true }).stdout.split('\n')[0]?.trim() ?? '';
  const osRelease = fs.existsSync('/etc/os-release') ? /PRETTY_NAME="([^"]+)"/.exec(fs.readFileSync('/etc/os-release', 'utf8'))?.[1] : undefined;
  return {
    cpu: /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    os: osRelease ?? 'unknown',
    node: process.version,
    iperf3: first(['iperf3', '--version']),
    sockperf: runSync(['sockperf', '--version'], { allowFail: true }).stdout.match(/version ([^\s]+)/)?.[1] ?? '',
    loadavgStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
    foreignNetnsAtStart: runSync(['ip', 'netns', 'list'], { allowFail: true }).stdout.split('\n').filter(Boolean).length,
  };
}

function paired(a: Round[], b: Round[] | undefined, get: (r: Round) => number | undefined): number[] {
  if (!b) return [];
  return a.flatMap((r) => {
    const other = b.find((x) => x.round === r.round);
    const x = get(r);
    const y = other ? get(other) : undefined;
    return x !== undefined && y !== undefined && y > 0 ? [x / y] : [];
  });
}

export function summarise(results: Record<string, CaseResult>): void {
  const under = results[setupKey('bare', 'underlay')]?.rounds;
  for (const c of Object.values(results)) {
    if (c.status !== 'ready' || !c.rounds.some((r) => r.single)) continue;
    const ref = CASES.find((d) => d.name === c.case)?.ref;
    // Ratios within a profile: a case against flannel's path on the same kind of host.
    const readyRounds = (name: string | undefined): Round[] | undefined => {
      const other = name ? results[setupKey(c.profile, name)] : undefined;
      return other?.status === 'ready' ? other.rounds : undefined;
    };
    const refRounds = readyRounds(ref);
    const flannel = flannelCounterpart(c.case);
    const vsF = flannel !== ref ? paired(c.rounds, readyRounds(flannel), (r) => r.single?.gbps) : [];
    const single = c.rounds.flatMap((r) => (r.single ? [r.single.gbps] : []));
    const multi = c.rounds.flatMap((r) => (r.multi ? [r.multi.gbps] : []));
    const paced = c.rounds.flatMap((r) => (r.paced?.ownCpuSecPerGB !== undefined ? [r.paced.ownCpuSecPerGB] : []));
    const vsU = c.case === 'underlay' ? [] : paired(c.rounds, under, (r) => r.single?.gbps);
    const vsR = paired(c.rounds, refRounds, (r) => r.single?.gbps);
    const p50R = paired(c.rounds, refRounds, (r) => r.latency?.p50us);
    const cpuR = paired(c.rounds, refRounds, (r) => r.paced?.ownCpuSecPerGB);
    c.summary = {
      singleGbps: median(single),
      singleMinGbps: Math.min(...single),
      singleMaxGbps: Math.max(...single),
      singleSpread: spread(single),
      multiGbps: median(multi),
      multiSpread: spread(multi),
      p50us: median(c.rounds.flatMap((r) => (r.latency ? [r.latency.p50us] : []))),
      p99us: median(c.rounds.flatMap((r) => (r.latency ? [r.latency.p99us] : []))),
      cpuSecPerGB: median(c.rounds.flatMap((r) => (r.single ? [r.single.cpuSecPerGB] : []))),
      pacedCpuSecPerGB: median(paced),
      pacedCpuSpread: spread(paced),
      pacedMachineCpuSecPerGB: median(c.rounds.flatMap((r) => (r.paced ? [r.paced.cpuSecPerGB] : []))),
      pacedGbps: median(c.rounds.flatMap((r) => (r.paced ? [r.paced.gbps] : []))),
      vsUnderlay: c.case === 'underlay' ? 1 : median(vsU),
      vsUnderlaySpread: spread(vsU),
      ref,
      vsRef: median(vsR),
      vsRefSpread: spread(vsR),
      p50VsRef: median(p50R),
      p50VsRefSpread: spread(p50R),
      cpuVsRef: median(cpuR),
      cpuVsRefSpread: spread(cpuR),
      pairs: {
        single: vsR.length,
        singleAhead: vsR.filter((q) => q > 1).length,
        p50: p50R.length,
        p50Ahead: p50R.filter((q) => q < 1).length,
        cpu: cpuR.length,
        cpuAhead: cpuR.filter((q) => q < 1).length,
      },
      ...(vsF.length ? { vsFlannel: { ref: flannel!, single: median(vsF), spread: spread(vsF), rounds: vsF.length, ahead: vsF.filter((q) => q > 1).length } } : {}),
    };
  }
}

export const f = (x: number | undefined | null, digits = 2): string => (x === undefined || x === null || !Number.isFinite(x) ? '—' : x.toFixed(digits));
const pct = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '' : `±${(x * 50).toFixed(0)}%`);
/** A value and its spread, when there is one. */
export const vs = (x: number, s: number): string => [f(x), pct(s)].filter(Boolean).join(' ');

export function table(head: string[], rows: string[][], markdown: boolean): string {
  if (markdown) {
    const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
    return [line(head), line(head.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n');
  }
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ').trimEnd();
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

/** The profiles that have results, in PROFILES' order. */
export function profilesIn(r: Results): HostProfile[] {
  return PROFILES.filter((p) => Object.values(r.dataplane).some((c) => c.profile === p));
}

/** One table per host profile: what each case moved and what it cost, and the ratios to flannel's path on the same profile. */
export function dataplaneTable(r: Results, markdown: boolean, profile: HostProfile): string {
  const head = ['case', 'MTU', '1 stream Gbit/s', 'min–max', `${r.options.streams} streams`, 'RTT p50 µs', 'RTT p99 µs', 'CPU s/GB', 'x underlay', 'x flannel: 1 stream', 'CPU s/GB', 'RTT p50'];
  const rows = Object.values(r.dataplane)
    .filter((c) => c.profile === profile)
    .map((c) => {
      const s = c.summary;
      if (!s) return [c.case, String(c.mtu ?? ''), c.status === 'ready' ? 'no data' : c.status, '', '', '', '', '', '', c.reason ? c.reason.slice(0, 60) : '', '', ''];
      const hasRef = s.ref !== undefined && Number.isFinite(s.vsRef);
      return [
        c.case,
        String(c.mtu ?? ''),
        vs(s.singleGbps, s.singleSpread),
        `${f(s.singleMinGbps)}–${f(s.singleMaxGbps)}`,
        vs(s.multiGbps, s.multiSpread),
        f(s.p50us, 0),
        f(s.p99us, 0),
        vs(s.pacedCpuSecPerGB, s.pacedCpuSpread),
        c.case === 'underlay' ? '1.00' : vs(s.vsUnderlay, s.vsUnderlaySpread),
        hasRef ? `${vs(s.vsRef, s.vsRefSpread)} (${s.ref!.replace('flannel-', '')})` : '',
        hasRef ? vs(s.cpuVsRef, s.cpuVsRefSpread) : '',
        hasRef ? vs(s.p50VsRef, s.p50VsRefSpread) : '',
      ];
    });
  return table(head, rows, markdown);
}

/** `all`: also the targets this run did not measure (a partial run leaves them out). */
export function targetsTable(r: Results, markdown = false, all = true): string {
  return table(['target', 'goal', 'measured', ''], r.targets.filter((t) => all || t.met !== null).map((t) => [t.what, t.goal, t.measured, t.met === null ? 'not measured' : t.met ? 'met' : 'missed']), markdown);
}

export function controlTable(r: Results, markdown = false): string {
  const c = r.control;
  const rows: string[][] = [];
  if (c) {
    for (const n of [...new Set(c.start.map((x) => x.leases))]) {
      const runs = c.start.filter((x) => x.leases === n);
      const t = runs.map((x) => x.toMapsMs ?? NaN);
      const m = (k: string): string => f(median(runs.map((x) => x.milestones[k] ?? NaN)), 0);
      rows.push([`agent start to all ${n} leases in the map`, `${f(median(t), 0)} ms`, `runs ${t.map((x) => f(x, 0)).join(', ')}; log: interface ${m('using interface')}, lease ${m('lease acquired')}, programs ${m('dataplane programmed')}, map synced ${m('peer map synchronised')}, ready ${m('agent ready')} ms`]);
    }
    if (c.put) {
      const p = c.put;
      rows.push([`new lease to remote map entry (${p.puts} puts, ${p.leases} leases)`, `p50 ${f(p.p50Ms, 1)} / p99 ${f(p.p99Ms, 1)} ms`, `max ${f(p.maxMs, 1)} ms; etcd ack p50 ${f(p.ackP50Ms, 1)} ms; put to 'peer added' log p50 ${f(p.toLogP50Ms, 0)} ms, log to map p50 ${f(p.logToMapP50Ms, 0)} ms; timeouts ${p.timeouts}`]);
    }
    for (const x of c.rss) rows.push([`agent RSS with ${x.peers} peers`, `${f(x.vmRssMB, 0)} MB`, `peak (VmHWM) ${f(x.vmHwmMB, 0)} MB${x.afterPutsVmRssMB !== undefined ? `; after the puts ${f(x.afterPutsVmRssMB, 0)} MB` : ''}`]);
    for (const x of c.leasesCommand) rows.push([`weft leases -o json with ${x.leases} leases`, `${f(median(x.ms), 0)} ms`, `runs ${x.ms.map((v) => f(v, 0)).join(', ')}; spawn to exit`]);
  }
  const nd = r.netlink?.dataplane;
  if (nd) rows.push([`netlink dataplane, ${'peers' in nd ? nd.peers : '?'} vxlan peers`, 'ms' in nd ? Object.entries(nd.ms).map(([k, v]) => `${k}: ${v} ms`).join('; ') : `error: ${nd.error}`, '']);
  const nb = r.netlink?.binding;
  if (nb) rows.push([`raw rtnetlink binding, ${'peers' in nb ? nb.peers : '?'} peers`, 'rows' in nb ? nb.rows.map((x) => `${x.mode}: ${x.program.toFixed(0)} ms`).join('; ') : `error: ${nb.error}`, '']);
  if (r.cni) rows.push(...cniRows(r.cni));
  if (c?.error) rows.push(['control plane stopped early', c.error, '']);
  if (r.netlink?.error) rows.push(['netlink part stopped early', r.netlink.error, '']);
  for (const row of rows) if (row[2] === '') row.pop();
  return markdown
    ? rows.map((x) => `- **${x[0]}**: ${x[1]}${x[2] ? ` (${x[2]})` : ''}`).join('\n')
    : rows.map((x) => `${x[0]}: ${x[1]}${x[2] ? `\n    ${x[2]}` : ''}`).join('\n');
}

export function machineLine(m: Machine): string {
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGB} GB, kernel ${m.kernel}, ${m.os}, node ${m.node}, ${m.iperf3}, sockperf ${m.sockperf}`;
}

/** The cost of weft monitor's events per forwarded packet, beside the programs built without them. */
export function eventsTable(r: Results, markdown = false): string {
  const e = r.events;
  if (!e) return '';
  if ('error' in e) return `events part failed: ${e.error}`;
  const base = e.rows[0]?.nsPerPacket;
  const rows = e.rows.map((x) => [x.mode, f(x.nsPerPacket, 0), base ? `${x.nsPerPacket - base >= 0 ? '+' : ''}${f(x.nsPerPacket - base, 0)}` : '', x.events || x.lost ? `${x.events} read, ${x.lost} lost` : '']);
  return table(['overlay_egress, a pod\'s UDP packet to a vxlan peer', 'ns/packet', 'vs without', 'events'], rows, markdown);
}
