// The benchmark's summary: per-case medians and spreads, ratios to the
// underlay and to flannel's kernel path of the same kind, the issue's targets
// marked met or missed (never a failure), and the tables for the terminal and
// for BENCHMARKS.md.
import fs from 'node:fs';
import os from 'node:os';
import { runSync } from '../lab/exec.js';
import { CASES, type CaseSetup } from './cases.js';
import type { ControlResult } from './control.js';
import { cniRows, type CniResult } from './cni.js';
import { median, spread, type Latency, type Placement, type Throughput } from './measure.js';

export interface Round {
  round: number;
  single?: Throughput;
  multi?: Throughput;
  latency?: Latency;
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
  /** Median over rounds of (this case / underlay) single-stream, each ratio taken within one round. */
  vsUnderlay: number;
  vsUnderlaySpread: number;
  ref?: string;
  vsRef: number;
  vsRefSpread: number;
  /** p50 round-trip time over the reference's, per round, median. */
  p50VsRef: number;
}

export interface CaseResult {
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
  dataplane: Record<string, CaseResult>;
  dataplaneError?: string;
  control: ControlResult | null;
  netlink: NetlinkResult | null;
  /** Absent in results written before the CNI part existed. */
  cni?: CniResult | null;
  events?: EventsResult | null;
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
  const under = results.underlay?.rounds;
  for (const [name, c] of Object.entries(results)) {
    if (c.status !== 'ready' || !c.rounds.some((r) => r.single)) continue;
    const ref = CASES.find((d) => d.name === name)?.ref;
    const refRounds = ref && results[ref]?.status === 'ready' ? results[ref].rounds : undefined;
    const single = c.rounds.flatMap((r) => (r.single ? [r.single.gbps] : []));
    const multi = c.rounds.flatMap((r) => (r.multi ? [r.multi.gbps] : []));
    const vsU = name === 'underlay' ? [] : paired(c.rounds, under, (r) => r.single?.gbps);
    const vsR = paired(c.rounds, refRounds, (r) => r.single?.gbps);
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
      vsUnderlay: name === 'underlay' ? 1 : median(vsU),
      vsUnderlaySpread: spread(vsU),
      ref,
      vsRef: median(vsR),
      vsRefSpread: spread(vsR),
      p50VsRef: median(paired(c.rounds, refRounds, (r) => r.latency?.p50us)),
    };
  }
}

const f = (x: number | undefined | null, digits = 2): string => (x === undefined || x === null || !Number.isFinite(x) ? '—' : x.toFixed(digits));
const pct = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '' : `±${(x * 50).toFixed(0)}%`);
/** A value and its spread, when there is one. */
const vs = (x: number, s: number): string => [f(x), pct(s)].filter(Boolean).join(' ');

function target(what: string, goal: string, value: number | null | undefined, ok: (v: number) => boolean, show: (v: number) => string): Target {
  const known = value !== null && value !== undefined && Number.isFinite(value);
  return { what, goal, measured: known ? show(value) : 'not measured', met: known ? ok(value) : null };
}

export function targets(r: Results): Target[] {
  const s = (n: string): CaseSummary | undefined => r.dataplane[n]?.summary;
  const x = (v: number): string => `${v.toFixed(2)}x`;
  const out: Target[] = [
    target('eBPF vxlan single stream vs flannel vxlan', '>= 1.10x', s('weft-ebpf-vxlan')?.vsRef, (v) => v >= 1.1, x),
    target('eBPF vxlan single stream vs underlay', '>= 0.90x', s('weft-ebpf-vxlan')?.vsUnderlay, (v) => v >= 0.9, x),
    target('eBPF vxlan p50 round trip vs flannel vxlan', '<= 0.80x', s('weft-ebpf-vxlan')?.p50VsRef, (v) => v <= 0.8, x),
    target('eBPF host-gw single stream vs flannel host-gw', '>= 1.05x', s('weft-ebpf-host-gw')?.vsRef, (v) => v >= 1.05, x),
    target('eBPF host-gw single stream vs underlay', '>= 0.95x', s('weft-ebpf-host-gw')?.vsUnderlay, (v) => v >= 0.95, x),
    target('eBPF ipip single stream vs flannel vxlan', '>= 1.00x', s('weft-ebpf-ipip')?.vsRef, (v) => v >= 1.0, x),
    target('eBPF udp single stream vs flannel vxlan', '>= 0.90x', s('weft-ebpf-udp')?.vsRef, (v) => v >= 0.9, x),
  ];
  const c = r.control;
  const big = c?.start.filter((x) => x.leases === 10_000).map((x) => x.toMapsMs ?? Infinity);
  const ms = (v: number): string => `${v.toFixed(0)} ms`;
  out.push(target('10,000 leases in the maps after agent start (median)', '<= 2000 ms', big?.length ? median(big) : null, (v) => v <= 2000, ms));
  out.push(target('new lease to remote map entry, p99', '< 50 ms', c?.put?.p99Ms, (v) => v < 50, (v) => `${v.toFixed(1)} ms`));
  out.push(target('agent RSS with 10,000 peers', '< 150 MB', c?.rss?.peers === 10_000 ? c.rss.vmRssMB : null, (v) => v < 150, (v) => `${v.toFixed(0)} MB`));
  const nd = r.netlink?.dataplane;
  const nb = r.netlink?.binding;
  const dpMs = nd && 'ms' in nd ? Object.entries(nd.ms).find(([k]) => k.startsWith('syncPeers: program'))?.[1] : undefined;
  if (dpMs !== undefined) out.push(target('netlink dataplane: program 10,000 peers', '< 5000 ms', dpMs, (v) => v < 5000, ms));
  else if (r.netlink) {
    const batch = nb && 'rows' in nb ? nb.rows.find((x) => x.mode.startsWith('batch, route via gateway'))?.program : undefined;
    out.push(target('netlink: program 10,000 peers (raw binding batch; no netlink dataplane in this build)', '< 5000 ms', batch, (v) => v < 5000, ms));
  } else out.push(target('netlink: program 10,000 peers', '< 5000 ms', null, () => false, ms));
  return out;
}

function table(head: string[], rows: string[][], markdown: boolean): string {
  if (markdown) {
    const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
    return [line(head), line(head.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n');
  }
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ').trimEnd();
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

export function dataplaneTable(r: Results, markdown = false): string {
  const head = ['case', 'MTU', '1 stream Gbit/s', 'min–max', `${r.options.streams} streams`, 'RTT p50 µs', 'RTT p99 µs', 'CPU s/GB', 'x underlay', 'x reference'];
  const rows = Object.entries(r.dataplane).map(([name, c]) => {
    const s = c.summary;
    if (!s) return [name, String(c.mtu ?? ''), c.status === 'ready' ? 'no data' : c.status, '', '', '', '', '', '', c.reason ? c.reason.slice(0, 60) : ''];
    const ref = s.ref && Number.isFinite(s.vsRef) ? `${vs(s.vsRef, s.vsRefSpread)} (${s.ref.replace('flannel-', '')})` : '';
    return [
      name,
      String(c.mtu ?? ''),
      vs(s.singleGbps, s.singleSpread),
      `${f(s.singleMinGbps)}–${f(s.singleMaxGbps)}`,
      vs(s.multiGbps, s.multiSpread),
      f(s.p50us, 0),
      f(s.p99us, 0),
      f(s.cpuSecPerGB),
      name === 'underlay' ? '1.00' : vs(s.vsUnderlay, s.vsUnderlaySpread),
      ref,
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
      rows.push([`agent start to all ${n} peers in the map`, `${f(median(t), 0)} ms`, `runs ${t.map((x) => f(x, 0)).join(', ')}; log: interface ${m('using interface')}, lease ${m('lease acquired')}, programs ${m('dataplane programmed')}, first peer ${m('first peer added')}, last peer ${m('last peer added')}, map synced ${m('peer map synchronised')}, ready ${m('agent ready')} ms`]);
    }
    if (c.put) {
      const p = c.put;
      rows.push([`new lease to remote map entry (${p.puts} puts)`, `p50 ${f(p.p50Ms, 1)} / p99 ${f(p.p99Ms, 1)} ms`, `max ${f(p.maxMs, 1)} ms; etcd ack p50 ${f(p.ackP50Ms, 1)} ms; put to 'peer added' log p50 ${f(p.toLogP50Ms, 0)} ms, log to map p50 ${f(p.logToMapP50Ms, 0)} ms; timeouts ${p.timeouts}`]);
    }
    if (c.rss) rows.push([`agent RSS with ${c.rss.peers} peers`, `${f(c.rss.vmRssMB, 0)} MB`, `peak (VmHWM) ${f(c.rss.vmHwmMB, 0)} MB; after the puts ${f(c.rss.afterPutsVmRssMB, 0)} MB`]);
  }
  const nd = r.netlink?.dataplane;
  if (nd) rows.push(['netlink dataplane, 10,000 vxlan peers', 'ms' in nd ? Object.entries(nd.ms).map(([k, v]) => `${k}: ${v} ms`).join('; ') : `error: ${nd.error}`, '']);
  const nb = r.netlink?.binding;
  if (nb) rows.push(['raw rtnetlink binding, 10,000 peers', 'rows' in nb ? nb.rows.map((x) => `${x.mode}: ${x.program.toFixed(0)} ms`).join('; ') : `error: ${nb.error}`, '']);
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
