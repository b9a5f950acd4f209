// Issue 15's targets, reported as met or missed and never enforced: weft
// against flannel on the hosts users run (the docker and kube profiles), no
// case behind flannel on a bare host, and the control plane at 65,536 leases.
import { CASES, flannelCounterpart, setupKey } from './cases.js';
import { MAX_LEASES } from './control.js';
import { median } from './measure.js';
import type { CaseSummary, Results, Target } from './report.js';

function target(what: string, goal: string, value: number | null | undefined, ok: (v: number) => boolean, show: (v: number) => string): Target {
  const known = value !== null && value !== undefined && Number.isFinite(value);
  return { what, goal, measured: known ? show(value) : 'not measured', met: known ? ok(value) : null };
}

const x = (v: number): string => `${v.toFixed(2)}x`;
const single = (c: CaseSummary): Array<number | undefined> => [c.vsRef, c.vsRefSpread, c.pairs?.singleAhead, c.pairs?.single];
/** Where a summary keeps each ratio to its reference: [median, spread, rounds ahead, rounds paired]. */
const RATIOS = {
  single,
  p50: (c: CaseSummary) => [c.p50VsRef, c.p50VsRefSpread, c.pairs?.p50Ahead, c.pairs?.p50],
  cpu: (c: CaseSummary) => [c.cpuVsRef, c.cpuVsRefSpread, c.pairs?.cpuAhead, c.pairs?.cpu],
  /** Single stream against the case's flannel counterpart, where its `ref` is another weft case. */
  flannel: (c: CaseSummary) => (c.vsFlannel ? [c.vsFlannel.single, c.vsFlannel.spread, c.vsFlannel.ahead, c.vsFlannel.rounds] : single(c)),
} satisfies Record<string, (c: CaseSummary) => Array<number | undefined>>;

/**
 * A ratio to the reference: the median of the rounds' ratios, shown with its spread and the rounds in which the case
 * did better. A median 3 to 6 rounds deep moves by about ±10 % between runs on a shared machine, so "short of the
 * goal but ahead in every round" and "behind" must read differently.
 */
function ratioTarget(what: string, goal: string, sum: CaseSummary | undefined, which: keyof typeof RATIOS, ok: (v: number) => boolean): Target {
  const [value, spreadOf, ahead, of] = sum ? RATIOS[which](sum) : [];
  return target(what, goal, value, ok, (v) => {
    let out = x(v);
    if (spreadOf !== undefined && Number.isFinite(spreadOf) && spreadOf > 0) out += ` ±${(spreadOf * 50).toFixed(0)}%`;
    return ahead !== undefined && of ? `${out}, ahead in ${ahead} of ${of} rounds` : out;
  });
}
const ms = (v: number): string => `${v.toFixed(0)} ms`;
const mb = (v: number): string => `${v.toFixed(0)} MB`;

export function targets(r: Results): Target[] {
  const s = (profile: string, name: string): CaseSummary | undefined => r.dataplane[`${profile}/${name}`]?.summary;
  const out: Target[] = [];
  for (const p of ['docker', 'kube']) {
    const vx = s(p, 'weft-ebpf-vxlan');
    const hg = s(p, 'weft-ebpf-host-gw');
    out.push(ratioTarget(`[${p}] eBPF vxlan CPU s/GB at a fixed rate vs flannel vxlan`, '<= 0.80x', vx, 'cpu', (v) => v <= 0.8));
    out.push(ratioTarget(`[${p}] eBPF vxlan single stream vs flannel vxlan`, '>= 1.10x', vx, 'single', (v) => v >= 1.1));
    out.push(ratioTarget(`[${p}] eBPF vxlan p50 round trip vs flannel vxlan`, '<= 0.80x', vx, 'p50', (v) => v <= 0.8));
    out.push(ratioTarget(`[${p}] eBPF host-gw single stream vs flannel host-gw`, '>= 1.05x', hg, 'single', (v) => v >= 1.05));
  }
  // Every weft case against its flannel counterpart (the events variants too: a user with a monitor running still
  // runs weft instead of flannel); what a variant costs over weft's own vxlan is the dataplane table's ratio.
  for (const c of CASES) {
    const flannel = flannelCounterpart(c.name);
    if (!flannel || !r.dataplane[setupKey('bare', c.name)]) continue;
    out.push(ratioTarget(`[bare] ${c.name} single stream vs ${flannel}`, '>= 1.00x', s('bare', c.name), 'flannel', (v) => v >= 1.0));
  }
  const c = r.control;
  const full = c?.start.filter((run) => run.leases === MAX_LEASES);
  out.push(target(`agent start to all ${MAX_LEASES} leases in the map (median)`, '< 2000 ms', full?.length ? median(full.map((run) => run.toMapsMs ?? Infinity)) : null, (v) => v < 2000, ms));
  // Choosing the one free subnet among 65,535 taken: from the interface chosen to the lease acquired (list, decode, choose, create).
  const choose = full?.length ? median(full.map((run) => (run.milestones['lease acquired'] ?? NaN) - (run.milestones['using interface'] ?? NaN))) : null;
  out.push(target(`choosing a free subnet with ${MAX_LEASES - 1} taken (agent log: interface to lease)`, '< 1000 ms', choose, (v) => v < 1000, ms));
  out.push(target(`new lease to remote map entry, p99 (${c?.put?.leases ?? MAX_LEASES} leases)`, '< 50 ms', c?.put?.p99Ms, (v) => v < 50, (v) => `${v.toFixed(1)} ms`));
  const rss = (peers: number): number | undefined => c?.rss.find((q) => q.peers === peers)?.vmRssMB;
  out.push(target(`agent RSS with ${MAX_LEASES - 1} peers`, '< 150 MB', rss(MAX_LEASES - 1), (v) => v < 150, mb));
  out.push(target('agent RSS with 9999 peers (10,000 leases)', '< 100 MB', rss(9999), (v) => v < 100, mb));
  const leases = c?.leasesCommand.find((q) => q.leases === MAX_LEASES);
  out.push(target(`weft leases with ${MAX_LEASES} leases`, '< 3000 ms', leases ? median(leases.ms) : null, (v) => v < 3000, ms));
  const nd = r.netlink?.dataplane;
  const program = nd && 'ms' in nd ? Object.entries(nd.ms).find(([k]) => k.startsWith('syncPeers: program'))?.[1] : undefined;
  out.push(target(`netlink dataplane: program ${nd && 'peers' in nd ? nd.peers : MAX_LEASES} peers`, '< 10000 ms', program, (v) => v < 10_000, ms));
  return out;
}
