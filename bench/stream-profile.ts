// Where a pinned single stream's time goes (issue 15): the run `make bench`
// takes for "1 stream" (both iperf3 ends on one CPU), recorded machine-wide
// with `perf record -a -g`, and summed up per CPU: how busy the pinned CPU
// was and with what (the sender's system call, the receiver's, softirq work
// on either, idle), what the other CPU did for the stream (ksoftirqd), the
// size of the aggregates each device carried (its packet counters: a veth or
// bridge counts one per skb) and, for weft's cases, each program's runs.
//
//   node dist-test/bench/stream-profile.js [--profile bare|docker|kube] [--cases flannel-vxlan,weft-ebpf-vxlan]
//     [--seconds 5] [--out /tmp/weft-stream] [--cpu auto|N] [--run-stats on|off] [--rounds N]
//
// --rounds N: no perf; N rounds that each visit every case (a pinned stream of
// --seconds each), printing per run the rate, the pinned CPU's busy time per
// GB, the other CPU's load and the ACKs the sender received per GB, then each
// weft case against its flannel reference (CaseDef.ref) run by run.
//
// --run-stats on (BPF_ENABLE_STATS) adds two clock reads to every program run,
// which this VM's clock makes dear: leave it off to weigh the programs by perf.
import fs from 'node:fs';
import path from 'node:path';
import { run } from '../lab/exec.js';
import type { Netns } from '../lab/netns.js';
import { enableRunStats, progInfo } from 'weft/native/bpf.js';
import { profileScriptArgs, withReadyCases, type CaseSetup } from './cases.js';
import { busyPerCpu, cpuNow, iperf, median, placeRun, procStatCpus } from './measure.js';
import { weftPrograms } from './programs.js';
import type { HostProfile } from '../lab/profiles.js';

interface Options {
  profile: HostProfile;
  cases: string[];
  seconds: number;
  out: string;
  cpu: number | 'auto';
  runStats: boolean;
  rounds: number;
}

function parse(argv: string[]): Options {
  const { a, profile, cases } = profileScriptArgs(argv, { profile: 'docker', cases: ['flannel-vxlan', 'weft-ebpf-vxlan'] });
  const cpu = a.get('cpu') ?? 'auto';
  return { profile, cases, seconds: Number(a.get('seconds') ?? 5), out: a.get('out') ?? '/tmp/weft-stream', cpu: cpu === 'auto' ? 'auto' : Number(cpu), runStats: a.get('run-stats') === 'on', rounds: Number(a.get('rounds') ?? 0) };
}

// --- per-CPU time from /proc/stat --------------------------------------------------

const STAT_FIELDS = ['user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal'] as const;
type CpuTimes = Record<(typeof STAT_FIELDS)[number], number>;

function perCpuTimes(): CpuTimes[] {
  return procStatCpus().map((v) => Object.fromEntries(STAT_FIELDS.map((k, i) => [k, v[i]])) as CpuTimes);
}

/** Each CPU's share of the interval per /proc/stat field, in percent: the kernel's tick samples (see measure.ts' cpuNow), a breakdown, not a total. */
function cpuShares(a: CpuTimes[], b: CpuTimes[]): Array<Record<string, number>> {
  return b.map((t, i) => {
    const d = STAT_FIELDS.map((k) => t[k] - a[i][k]);
    const total = d.reduce((x, y) => x + y, 0) || 1;
    return Object.fromEntries(STAT_FIELDS.map((k, j) => [k, Math.round((1000 * d[j]) / total) / 10]));
  });
}

// --- device counters: the size of what each device carried --------------------------

interface LinkStats {
  ns: string;
  dev: string;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
}

async function linkStats(namespaces: Netns[]): Promise<LinkStats[]> {
  const out: LinkStats[] = [];
  for (const ns of namespaces) {
    const r = await ns.exec(['ip', '-s', '-j', 'link', 'show'], { allowFail: true });
    let links: Array<{ ifname: string; stats64?: { rx: { bytes: number; packets: number }; tx: { bytes: number; packets: number } } }>;
    try {
      links = JSON.parse(r.stdout) as typeof links;
    } catch {
      continue;
    }
    for (const l of links) {
      if (!l.stats64 || l.ifname === 'lo') continue;
      out.push({ ns: ns.name, dev: l.ifname, rxPackets: l.stats64.rx.packets, rxBytes: l.stats64.rx.bytes, txPackets: l.stats64.tx.packets, txBytes: l.stats64.tx.bytes });
    }
  }
  return out;
}

// --- perf samples, bucketed by the functions in their call chain ---------------------

/**
 * Buckets a sample counts in when its call chain holds one of the symbols
 * (inclusive: a sample can count in several). Ordered sender to receiver.
 */
const BUCKETS: Array<[string, RegExp]> = [
  ['sender: tcp_sendmsg (all)', /^tcp_sendmsg$/],
  ['  copy from user', /^(_copy_from_iter|copy_from_user_iter|skb_do_copy_data_nocache|_copy_from_user|copy_page_from_iter|skb_copy_to_page_nocache)$/],
  ['  tcp_push / __tcp_transmit_skb', /^__tcp_transmit_skb$/],
  ['receiver: tcp_recvmsg (all)', /^tcp_recvmsg$/],
  ['  copy to user', /^(_copy_to_iter|skb_copy_datagram_iter|__skb_datagram_iter|simple_copy_to_iter)$/],
  ['softirq: net_rx_action', /^net_rx_action$/],
  ['  __netif_receive_skb', /^__netif_receive_skb_core/],
  ['  process_backlog (veth rx)', /^process_backlog$/],
  ['tcp_v4_rcv (both ends)', /^tcp_v4_rcv$/],
  ['  tcp_ack', /^tcp_ack$/],
  ['dev_queue_xmit', /^__dev_queue_xmit$/],
  ['veth_xmit', /^veth_xmit$/],
  ['br_handle_frame (bridge rx)', /^br_handle_frame$/],
  ['br_nf_pre_routing (bridge-nf)', /^br_nf_pre_routing$/],
  ['br_dev_xmit (bridge tx)', /^br_dev_xmit$/],
  ['nf_hook_slow (netfilter)', /^nf_hook_slow$/],
  ['nf_conntrack_in', /^nf_conntrack_in$/],
  ['ip_forward', /^ip_forward$/],
  ['ip_rcv', /^ip_rcv$/],
  ['vxlan_xmit', /^vxlan_xmit$/],
  ['vxlan_rcv / udp_rcv (vxlan)', /^vxlan_rcv$/],
  ['tc ingress (tcx / cls_bpf)', /^(tcx_run|tc_run|cls_bpf_classify|sch_handle_ingress|tcf_classify)$/],
  ['BPF programs', /^bpf_prog_/],
  ['  bpf_skb_ct_lookup', /^bpf_skb_ct_lookup$/],
  ['  bpf_fib_lookup', /^bpf_(xdp_|skb_)?fib_lookup$/],
  ['  bpf_skb_adjust_room', /^bpf_skb_adjust_room$/],
  ['skb_segment / software GSO', /^(skb_segment|__skb_gso_segment|skb_mac_gso_segment)$/],
  ['GRO', /^(napi_gro_receive|dev_gro_receive|gro_receive_skb|inet_gro_receive)$/],
  ['csum (software checksum)', /^(csum_partial|csum_partial_copy_generic|skb_checksum|__skb_checksum|skb_checksum_help|do_csum)$/],
  ['skb alloc / free', /^(__alloc_skb|kfree_skb_reason|__kfree_skb|consume_skb|skb_release_data|napi_consume_skb|sk_skb_reason_drop)$/],
  ['page alloc / free', /^(__alloc_pages|__alloc_pages_noprof|free_unref_page|__free_pages|free_frozen_pages|__folio_put)$/],
  ['schedule (context switches)', /^__schedule$/],
  ['pvm_irq_enable (irqs were off)', /^pvm_irq_enable$/],
  ['idle', /^(default_idle|pvm_safe_halt|cpuidle_idle_call|do_idle|default_idle_call|arch_cpu_idle)$/],
];

interface Sample {
  cpu: number;
  comm: string;
  pid: number;
  syms: string[];
}

/** The samples of a perf.data, one per event, with the symbols of its call chain (leaf first). */
async function samples(data: string): Promise<Sample[]> {
  const r = await run(['perf', 'script', '-i', data, '-F', 'comm,pid,cpu,ip,sym'], { allowFail: true, timeoutMs: 300_000 });
  const out: Sample[] = [];
  let cur: Sample | null = null;
  for (const line of r.stdout.split('\n')) {
    const head = /^\s*(\S.*?)\s+(\d+)\s+\[(\d+)\]/.exec(line);
    if (head && !/^\s+[0-9a-f]+\s/.test(line)) {
      cur = { comm: head[1], pid: Number(head[2]), cpu: Number(head[3]), syms: [] };
      out.push(cur);
      continue;
    }
    const frame = /^\s+[0-9a-f]+\s+(\S+)/.exec(line);
    if (frame && cur) cur.syms.push(frame[1].replace(/\+0x[0-9a-f]+$/, ''));
  }
  return out;
}

interface CpuSummary {
  cpu: number;
  samples: number;
  byComm: Array<[string, number]>;
  buckets: Array<[string, number]>;
  leaves: Array<[string, number]>;
}

function summarize(all: Sample[], cpu: number): CpuSummary {
  const ss = all.filter((s) => s.cpu === cpu);
  const comm = new Map<string, number>();
  const leaf = new Map<string, number>();
  const b = new Map<string, number>(BUCKETS.map(([n]) => [n, 0]));
  for (const s of ss) {
    const c = s.comm.replace(/\/\d+$/, '/N');
    comm.set(c, (comm.get(c) ?? 0) + 1);
    // The first frame that is not where irqs were turned back on: the VM's sampler lands there.
    const l = s.syms.find((x) => x !== 'pvm_irq_enable' && !/^(_raw_spin_unlock_irqrestore|__local_bh_enable_ip|local_bh_enable)$/.test(x)) ?? s.syms[0] ?? '?';
    leaf.set(l, (leaf.get(l) ?? 0) + 1);
    for (const [name, re] of BUCKETS) if (s.syms.some((x) => re.test(x))) b.set(name, b.get(name)! + 1);
  }
  const top = (m: Map<string, number>, n: number): Array<[string, number]> => [...m.entries()].sort((x, y) => y[1] - x[1]).slice(0, n);
  return { cpu, samples: ss.length, byComm: top(comm, 8), buckets: [...b.entries()], leaves: top(leaf, 25) };
}

const pct = (n: number, of: number): string => `${((100 * n) / Math.max(1, of)).toFixed(1)}%`;

async function profileOne(o: Options, s: CaseSetup, namespaces: Netns[]): Promise<void> {
  const data = path.join(o.out, `${o.profile}-${s.def.name}.perf.data`);
  const progs = s.def.kind === 'weft' && o.runStats ? weftPrograms(s) : [];
  const place = await placeRun(o.cpu);
  const cpu = place.cpu!;
  const stop = o.runStats ? enableRunStats() : (): void => undefined;
  const bpfBefore = new Map(progs.map((p) => [p.id, progInfo(p.id)]));
  const linksBefore = await linkStats(namespaces);
  const cpuBefore = perCpuTimes();
  const perf = run(['perf', 'record', '-a', '-g', '-F', '999', '-o', data, '--', 'sleep', String(o.seconds)], { allowFail: true, timeoutMs: (o.seconds + 60) * 1000 });
  const t = await iperf(s.client!, s.serverIP!, o.seconds, { cpu });
  const cpuAfter = perCpuTimes();
  const linksAfter = await linkStats(namespaces);
  const bpfAfter = new Map(progs.map((p) => [p.id, progInfo(p.id)]));
  stop();
  await perf;

  const gb = t.bytes / 1e9;
  console.log(`\n=== ${o.profile}/${s.def.name}: ${t.gbps.toFixed(2)} Gbit/s pinned to CPU ${cpu} (waited ${place.waitedMs} ms, busy ${place.busyBefore} before), ${t.retransmits} retransmits, ${gb.toFixed(2)} GB`);
  for (const [i, sh] of cpuShares(cpuBefore, cpuAfter).entries()) {
    console.log(`  /proc/stat cpu${i}${i === cpu ? ' (pinned)' : ''}: ${STAT_FIELDS.map((k) => `${k} ${sh[k]}%`).join(', ')}`);
  }
  const moved = linksAfter
    .map((z) => {
      const a = linksBefore.find((x) => x.ns === z.ns && x.dev === z.dev);
      return a ? { ...z, rxPackets: z.rxPackets - a.rxPackets, rxBytes: z.rxBytes - a.rxBytes, txPackets: z.txPackets - a.txPackets, txBytes: z.txBytes - a.txBytes } : null;
    })
    .filter((x): x is LinkStats => x !== null && (x.rxBytes > t.bytes / 4 || x.txBytes > t.bytes / 4));
  for (const l of moved) {
    const avg = (b: number, p: number): string => (p ? `${(b / p / 1024).toFixed(1)} KiB` : '-');
    console.log(`  dev ${l.ns.replace(/^wt\d+-\d+-/, '')}/${l.dev}: rx ${l.rxPackets} skbs avg ${avg(l.rxBytes, l.rxPackets)}, tx ${l.txPackets} skbs avg ${avg(l.txBytes, l.txPackets)}`);
  }
  for (const p of progs) {
    const a = bpfBefore.get(p.id)!;
    const z = bpfAfter.get(p.id)!;
    const runs = z.runCnt - a.runCnt;
    const ns = z.runTimeNs - a.runTimeNs;
    if (runs) console.log(`  bpf ${p.host} ${p.name}: ${runs} runs, ${(ns / runs).toFixed(0)} ns per run, ${(ns / 1e6).toFixed(1)} ms (${(ns / 1e6 / gb).toFixed(1)} ms/GB)`);
  }
  const all = await samples(data);
  for (const c of [cpu, ...new Set(all.map((x) => x.cpu))].filter((x, i, arr) => arr.indexOf(x) === i).sort()) {
    const sm = summarize(all, c);
    const stream = sm.byComm.filter(([n]) => n === 'iperf3' || n === 'ksoftirqd/N').reduce((x, [, k]) => x + k, 0);
    console.log(`  perf cpu${c}${c === cpu ? ' (pinned)' : ''}: ${sm.samples} samples (~ms), iperf3 + ksoftirqd ${(stream / gb).toFixed(0)} ms/GB; by task: ${sm.byComm.map(([n, k]) => `${n} ${pct(k, sm.samples)}`).join(', ')}`);
    console.log(`    inclusive: ${sm.buckets.filter(([, k]) => k > 0).map(([n, k]) => `\n      ${n.padEnd(36)} ${String(k).padStart(6)}  ${pct(k, sm.samples).padStart(6)}  ${(k / gb).toFixed(0).padStart(5)} ms/GB`).join('')}`);
    console.log(`    leaf functions: ${sm.leaves.map(([n, k]) => `${n} ${pct(k, sm.samples)}`).join(', ')}`);
  }
}

// --- paired rounds: the rate against what the run cost, and the ACK regime it fell in ----

interface PairedRun {
  gbps: number;
  cpu: number;
  /** The pinned CPU's busy time (any task) per 10^9 bytes received, ms. */
  pinnedMsPerGB: number;
  /** The other CPUs' busy share meanwhile (other people's work on this machine), percent. */
  othersBusy: number;
  /** Packets the sending pod received (its ACKs) per 10^9 bytes. */
  acksPerGB: number;
}

/** eth0's received packets in `ns` (by netlink: the lab enters namespaces with the root's /sys). */
async function rxPackets(ns: Netns): Promise<number> {
  const [l] = JSON.parse((await ns.exec(['ip', '-s', '-j', 'link', 'show', 'eth0'])).stdout) as Array<{ stats64: { rx: { packets: number } } }>;
  return l.stats64.rx.packets;
}

async function pairedRun(o: Options, s: CaseSetup): Promise<PairedRun> {
  const cpu = (await placeRun(o.cpu)).cpu!;
  const acks = await rxPackets(s.client!);
  const a = cpuNow();
  const t = await iperf(s.client!, s.serverIP!, o.seconds, { cpu });
  const z = cpuNow();
  const acked = (await rxPackets(s.client!)) - acks;
  const busy = busyPerCpu(a, z);
  const others = busy.filter((_, i) => i !== cpu);
  const gb = t.bytes / 1e9;
  return {
    gbps: t.gbps,
    cpu,
    pinnedMsPerGB: (busy[cpu] * 1000) / gb,
    othersBusy: (100 * others.reduce((x, y) => x + y, 0)) / Math.max(1e-9, others.length * (z.at - a.at)),
    acksPerGB: acked / gb,
  };
}

async function pairedRounds(o: Options, setups: CaseSetup[]): Promise<void> {
  const runs = new Map<string, PairedRun[]>(setups.map((s) => [s.def.name, []]));
  for (let r = 0; r < o.rounds; r++) {
    for (const s of setups) {
      const x = await pairedRun(o, s);
      runs.get(s.def.name)!.push(x);
      console.log(`round ${r + 1} ${s.def.name.padEnd(18)} cpu${x.cpu} ${x.gbps.toFixed(2)} Gbit/s, pinned CPU ${x.pinnedMsPerGB.toFixed(0)} ms/GB, others ${x.othersBusy.toFixed(0)}% busy, ${x.acksPerGB.toFixed(0)} ACKs/GB`);
    }
  }
  const med = (xs: PairedRun[], f: (x: PairedRun) => number): number => median(xs.map(f));
  console.log(`
${o.profile}, ${o.rounds} rounds of ${o.seconds} s (medians; ACK regime split at 5,500 ACKs/GB):`);
  for (const s of setups) {
    const xs = runs.get(s.def.name)!;
    const few = xs.filter((x) => x.acksPerGB < 5500);
    const many = xs.filter((x) => x.acksPerGB >= 5500);
    const regime = (ys: PairedRun[]): string => (ys.length ? `${med(ys, (x) => x.gbps).toFixed(2)} Gbit/s, ${med(ys, (x) => x.pinnedMsPerGB).toFixed(0)} ms/GB (${ys.length} runs)` : '-');
    console.log(`  ${s.def.name.padEnd(18)} ${med(xs, (x) => x.gbps).toFixed(2)} Gbit/s, ${med(xs, (x) => x.pinnedMsPerGB).toFixed(0)} ms/GB; few ACKs: ${regime(few)}; many ACKs: ${regime(many)}`);
    const ref = s.def.ref ? runs.get(s.def.ref) : undefined;
    if (!ref) continue;
    const ratios = xs.map((x, i) => x.gbps / ref[i].gbps);
    const cost = xs.map((x, i) => x.pinnedMsPerGB / ref[i].pinnedMsPerGB);
    console.log(
      `    x ${s.def.ref} round by round: rate ${median(ratios).toFixed(3)} (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}, ahead in ${ratios.filter((q) => q > 1).length} of ${ratios.length}), pinned CPU per GB ${median(cost).toFixed(3)}`,
    );
  }
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  fs.mkdirSync(o.out, { recursive: true });
  await withReadyCases(o.profile, o.cases, 21, async (b, setups) => {
    const namespaces: Netns[] = [b.lab.router, ...b.lab.hosts, ...b.lab.hosts.flatMap((h) => h.pods)];
    if (o.rounds > 0) await pairedRounds(o, setups);
    else for (const s of setups) await profileOne(o, s, namespaces);
  });
}

main().catch((err: unknown) => {
  console.error(`stream-profile: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
