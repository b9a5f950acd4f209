// The bench's targets table: each weft/flannel ratio is the median of per-round ratios, shown with its spread
// and the number of rounds weft did better in (a higher rate; a lower round trip or CPU per GB).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summarise, type CaseResult, type Results, type Round } from '../../bench/report.js';
import { targets } from '../../bench/targets.js';

function rounds(gbps: number[], p50us: number[], cpu: number[]): Round[] {
  return gbps.map((g, i) => ({
    round: i + 1,
    single: { gbps: g, cpuSecPerGB: 1 },
    latency: { p50us: p50us[i], p99us: 2 * p50us[i] },
    paced: { gbps: 3, cpuSecPerGB: cpu[i], ownCpuSecPerGB: cpu[i] },
  }) as unknown as Round);
}

function result(name: string, r: Round[], profile = 'docker'): CaseResult {
  return { case: name, profile, label: name, status: 'ready', rounds: r } as CaseResult;
}

test('targets: a ratio with its spread and the rounds weft was ahead in', () => {
  const dataplane: Record<string, CaseResult> = {
    'docker/flannel-vxlan': result('flannel-vxlan', rounds([7, 7, 7.7], [30, 30, 30], [2, 2, 2])),
    // Rates 8/7, 8/7, 7/7.7: ahead in two of three rounds; round trips all lower; CPU per GB lower in one round only.
    'docker/weft-ebpf-vxlan': result('weft-ebpf-vxlan', rounds([8, 8, 7], [24, 23, 25], [1.5, 2.5, 2.2])),
  };
  summarise(dataplane);
  const r = { dataplane, control: null, netlink: null } as unknown as Results;
  const t = Object.fromEntries(targets(r).map((x) => [x.what, x]));

  const single = t['[docker] eBPF vxlan single stream vs flannel vxlan'];
  // Median of 1.143, 1.143, 0.909; spread (max - min) / median, shown as ± half of it.
  assert.equal(single.measured, '1.14x ±10%, ahead in 2 of 3 rounds');
  assert.equal(single.met, true);

  const rtt = t['[docker] eBPF vxlan p50 round trip vs flannel vxlan'];
  assert.equal(rtt.measured, '0.80x ±4%, ahead in 3 of 3 rounds');
  assert.equal(rtt.met, true);

  const cpu = t['[docker] eBPF vxlan CPU s/GB at a fixed rate vs flannel vxlan'];
  assert.match(cpu.measured, /^1\.10x ±\d+%, ahead in 1 of 3 rounds$/);
  assert.equal(cpu.met, false);

  // A target with no pair of rounds (no host-gw cases here) is not measured, not met or missed.
  const hostGw = t['[docker] eBPF host-gw single stream vs flannel host-gw'];
  assert.equal(hostGw.measured, 'not measured');
  assert.equal(hostGw.met, null);
});

test("targets: on a bare host every weft case stands against its flannel counterpart, the events variants too", () => {
  const same = (gbps: number[]): Round[] => rounds(gbps, gbps.map(() => 30), gbps.map(() => 2));
  const dataplane: Record<string, CaseResult> = {
    'bare/flannel-vxlan': result('flannel-vxlan', same([8, 8, 8]), 'bare'),
    'bare/weft-ebpf-vxlan': result('weft-ebpf-vxlan', same([10, 10, 10]), 'bare'),
    // A monitor costs weft's vxlan 5 % (its dataplane ratio, to weft's own) yet leaves it ahead of flannel's in each round.
    'bare/weft-ebpf-vxlan-monitor': result('weft-ebpf-vxlan-monitor', same([9.5, 9.5, 9.5]), 'bare'),
  };
  summarise(dataplane);
  const monitor = dataplane['bare/weft-ebpf-vxlan-monitor'].summary!;
  assert.equal(monitor.ref, 'weft-ebpf-vxlan');
  assert.equal(monitor.vsRef, 0.95);
  assert.deepEqual(monitor.vsFlannel, { ref: 'flannel-vxlan', single: 9.5 / 8, spread: 0, rounds: 3, ahead: 3 });
  // A case whose reference is flannel's path carries no second ratio.
  assert.equal(dataplane['bare/weft-ebpf-vxlan'].summary!.vsFlannel, undefined);

  const r = { dataplane, control: null, netlink: null } as unknown as Results;
  const t = Object.fromEntries(targets(r).map((x) => [x.what, x]));
  assert.equal(t['[bare] weft-ebpf-vxlan-monitor single stream vs flannel-vxlan'].measured, '1.19x, ahead in 3 of 3 rounds');
  assert.equal(t['[bare] weft-ebpf-vxlan-monitor single stream vs flannel-vxlan'].met, true);
  assert.equal(t['[bare] weft-ebpf-vxlan single stream vs flannel-vxlan'].measured, '1.25x, ahead in 3 of 3 rounds');
  assert.equal(Object.keys(t).some((w) => w.includes('vs weft-ebpf-vxlan')), false);
});
