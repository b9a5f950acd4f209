// The bench's CPU clock: busy time is wall time less idle and steal, per CPU, never the kernel's busy fields
// (tick samples that a paced load phase-locks with; bench/measure.ts, cpuNow).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import os from 'node:os';
import { busyPerCpu, cpuNow, type CpuSample } from '../../bench/measure.js';

test('busyPerCpu: wall time less idle and steal, per CPU, within 0 and the wall time', () => {
  // USER_HZ 100 (getconf CLK_TCK on Linux): 5 s between the samples.
  const a: CpuSample = { at: 100, idle: [1000, 2000, 3000], steal: [0, 50, 0] };
  const b: CpuSample = { at: 105, idle: [1250, 2100, 3600], steal: [0, 60, 0] };
  // cpu0: 2.5 s idle -> 2.5 busy; cpu1: 1 s idle and 0.1 s stolen -> 3.9; cpu2: 6 s idle in 5 s (rounding) -> 0.
  assert.deepEqual(busyPerCpu(a, b).map((x) => Math.round(x * 1000) / 1000), [2.5, 3.9, 0]);
  // A CPU that was never idle, and one whose counters went backwards (offline and back): at most the wall time.
  const c: CpuSample = { at: 105, idle: [1000, 1900, 3000], steal: [0, 50, 0] };
  assert.deepEqual(busyPerCpu(a, c), [5, 5, 5]);
});

test('cpuNow: one process burning a CPU for a second shows as at least that much busy time', async () => {
  const a = cpuNow();
  assert.equal(a.idle.length, os.cpus().length, 'one idle counter per CPU');
  // The child spins until it has used 1 s of CPU and says how much it used: the machine was busy at least that long.
  const child = spawn(process.execPath, ['-e', 'const t=process.cpuUsage();let u;do{u=process.cpuUsage(t)}while(u.user+u.system<1e6);console.log(u.user+u.system)'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise<void>((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`child exited ${code}`)))));
  const b = cpuNow();
  const used = Number(out) / 1e6;
  const busy = busyPerCpu(a, b).reduce((x, y) => x + y, 0);
  assert.ok(used >= 1, `the child used ${used} s`);
  // USER_HZ resolution: 10 ms per CPU at each end.
  assert.ok(busy >= used - 0.02 * a.idle.length, `machine-wide busy ${busy.toFixed(3)} s, the child alone used ${used.toFixed(3)} s`);
  assert.ok(busy <= (b.at - a.at) * a.idle.length + 0.001, `busy ${busy.toFixed(3)} s is more than ${a.idle.length} CPUs x ${(b.at - a.at).toFixed(3)} s`);
});
