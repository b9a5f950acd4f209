// Control-plane measurements: an agent starting against 1,000 and 10,000
// leases (time until every peer is in its pinned map, with the agent's own log
// splitting where the time went), a new lease's journey from an etcd put to
// the remote agent's map (200 puts, p50/p99), and the agent's RSS holding
// 10,000 peers. The map is watched from a worker thread (map-watch.ts).
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { Etcd3 } from 'etcd3';
import { startAgent, subnetFile, type LabAgent, type LogLine } from '../lab/agent.js';
import { sleep } from '../lab/exec.js';
import { readEnvFile } from 'weft/agent/subnet-env.js';
import { encodeLpmKey } from 'weft/dataplane/ebpf/maps.js';
import { net } from '../lab/model.js';
import type { Bench } from './cases.js';
import type { WatchReply, WatchRequest } from './map-watch.js';
import { median, percentile } from './measure.js';

type Distribute<T> = T extends unknown ? Omit<T, 'id'> : never;

/** The main thread's side of map-watch.ts. */
export class MapWatcher {
  private readonly worker = new Worker(new URL('./map-watch.js', import.meta.url));
  private nextId = 1;
  private readonly waiting = new Map<number, { armed: () => void; done: (r: WatchReply) => void }>();

  constructor() {
    this.worker.on('message', (r: WatchReply) => {
      const w = this.waiting.get(r.id);
      if (!w) return;
      if (r.armed) return w.armed();
      this.waiting.delete(r.id);
      w.done(r);
    });
  }

  /** Starts a watch; `armed` resolves once the worker polls, `seen` with the hrtime (ns) of the first poll that saw it, or null on timeout. */
  watch(req: Distribute<WatchRequest>): { armed: Promise<void>; seen: Promise<bigint | null> } {
    const id = this.nextId++;
    let armed!: () => void;
    const armedP = new Promise<void>((r) => (armed = r));
    const seen = new Promise<bigint | null>((resolve, reject) => {
      this.waiting.set(id, {
        armed,
        done: (r) => (r.armed ? undefined : r.error ? reject(new Error(`map watch: ${r.error}`)) : resolve(r.seenNs === null ? null : BigInt(r.seenNs))),
      });
    });
    this.worker.postMessage({ ...req, id } as WatchRequest);
    return { armed: armedP, seen };
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

const NETWORK = '10.244.0.0/16';
const SUBNET_LEN = 30;
/** Fake peers' addresses: never a lab host's (those are .11 to .60 on 192.0.2.0/24). */
const fakePublicIP = (i: number): string => (i % 2 ? `198.51.100.${100 + (i % 150)}` : `192.0.2.${100 + (i % 150)}`);
const fakeMAC = (i: number): string => `0e:be:00:${[i >> 16, (i >> 8) & 0xff, i & 0xff].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
/** The i-th /30 of the Network, as "10.244.a.b/30". */
const subnetAt = (i: number): string => `10.244.${(i * 4) >> 8}.${(i * 4) & 0xff}/${SUBNET_LEN}`;
const leaseValue = (i: number): string =>
  JSON.stringify({ PublicIP: fakePublicIP(i), PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: fakeMAC(i) } });
const macHex = (i: number): string => fakeMAC(i).replaceAll(':', '');

/** Writes leases 1..n under prefix as flanneld would (one etcd lease for all of them), in transactions of etcd's default limit of 128 operations. */
async function writeLeases(client: Etcd3, prefix: string, indices: number[]): Promise<void> {
  const grant = await client.leaseClient.leaseGrant({ TTL: 24 * 3600 });
  for (let i = 0; i < indices.length; i += 128) {
    const success = indices.slice(i, i + 128).map((k) => ({
      request_put: { key: Buffer.from(`${prefix}/subnets/${subnetAt(k).replace('/', '-')}`), value: Buffer.from(leaseValue(k)), lease: grant.ID },
    }));
    await client.kv.txn({ success });
  }
}

const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

export interface StartRun {
  leases: number;
  /** Spawn to every lease's entry in the pinned map (the worker saw it). */
  toMapsMs: number | null;
  /** Spawn to each milestone the agent logs, from its log's own timestamps (ms resolution). */
  milestones: Record<string, number>;
}

export interface PutLatency {
  puts: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  timeouts: number;
  /** etcd acknowledging the put (client side). */
  ackP50Ms: number;
  /** From the put to the agent's 'peer added' line, and from there to the map (log timestamps, ms resolution). */
  toLogP50Ms: number;
  logToMapP50Ms: number;
  samplesMs: number[];
}

export interface Rss {
  peers: number;
  vmRssMB: number;
  vmHwmMB: number;
  afterPutsVmRssMB: number;
}

export interface ControlResult {
  start: StartRun[];
  put: PutLatency | null;
  rss: Rss | null;
  /** What stopped the control-plane part early; what was measured before it stays. */
  error?: string;
}

const MILESTONES: Array<[string, (l: LogLine) => boolean]> = [
  ['using interface', (l) => l.msg === 'using interface'],
  ['lease acquired', (l) => l.msg === 'lease acquired'],
  ['dataplane programmed', (l) => l.msg === 'eBPF dataplane programmed'],
  ['wrote subnet.env', (l) => l.msg === 'wrote subnet.env'],
  ['first peer added', (l) => l.msg === 'peer added'],
  ['last peer added', (l) => l.msg === 'peer added'],
  ['peer map synchronised', (l) => l.msg === 'peer map synchronised'],
  ['agent ready', (l) => l.msg === 'agent ready'],
];

function milestones(agent: LabAgent, spawnWallMs: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, pred] of MILESTONES) {
    const hits = agent.lines.filter(pred);
    const hit = name.startsWith('last') ? hits.at(-1) : hits[0];
    const t = typeof hit?.time === 'string' ? Date.parse(hit.time) : typeof hit?.time === 'number' ? hit.time : NaN;
    if (Number.isFinite(t)) out[name] = t - spawnWallMs;
  }
  return out;
}

/** The agent's own process: nsenter execs it (no fork), so the spawned pid is node's. */
function vmStatus(pid: number): { rssMB: number; hwmMB: number } {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  const comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  if (comm !== 'node') throw new Error(`pid ${pid} is ${comm}, not the agent's node process`);
  return { rssMB: kb('VmRSS') / 1024, hwmMB: kb('VmHWM') / 1024 };
}

export interface ControlOptions {
  sizes: number[];
  runs: number;
  puts: number;
  say: (line: string) => void;
}

/** Fills `result` as it goes, so that a failure part-way keeps what was measured. */
export async function runControl(b: Bench, o: ControlOptions, result: ControlResult): Promise<void> {
  const client = b.etcd.client();
  const watcher = new MapWatcher();
  let octet = 11;
  let last: { agent: LabAgent; pinDir: string; own: string } | null = null;
  try {
    for (const n of o.sizes) {
      const prefix = `/bench-control-${n}/network`;
      await b.etcd.etcdctl(['put', `${prefix}/config`, JSON.stringify({ Network: NETWORK, SubnetLen: SUBNET_LEN, Backend: { Type: 'vxlan' } })]);
      o.say(`writing ${n} leases under ${prefix}`);
      await writeLeases(client, prefix, range(1, n));
      for (let r = 0; r < o.runs; r++) {
        if (last) await last.agent.stop();
        const host = await b.lab.addHost(`k${n}r${r}`.slice(0, 12), { octet: octet++ });
        // The first, middle and last lease: the sync writes one batch, so these plus a full count pin the moment.
        const sentinels = [1, n >> 1, n].map((k) => encodeLpmKey(net(subnetAt(k))).toString('hex'));
        const w = watcher.watch({ kind: 'count', pinDir: host.pinDir, sentinels, count: n + 1, timeoutMs: 60_000 });
        await w.armed;
        const spawnNs = process.hrtime.bigint();
        const spawnWall = Date.now();
        const agent = startAgent(host, { etcdEndpoint: b.etcd.endpoint, dataplane: 'ebpf', extra: ['--etcd-prefix', prefix] });
        const seen = await Promise.race([w.seen, agent.exited.then((code) => Promise.reject(new Error(`${host.hostName}'s agent exited (${code}): ${agent.transcript().slice(-400)}`)))]);
        await agent.waitForMsg('agent ready', 60_000);
        const run: StartRun = { leases: n, toMapsMs: seen === null ? null : Number(seen - spawnNs) / 1e6, milestones: milestones(agent, spawnWall) };
        result.start.push(run);
        o.say(`agent start with ${n} leases, run ${r + 1}/${o.runs}: all peers in the map after ${run.toMapsMs?.toFixed(0) ?? 'never (60 s)'} ms`);
        last = { agent, pinDir: host.pinDir, own: readEnvFile(subnetFile(host))?.FLANNEL_SUBNET ?? '' };
      }
      if (n === Math.max(...o.sizes) && last) {
        await sleep(2000);
        const v = vmStatus(last.agent.pid);
        result.rss = { peers: n, vmRssMB: v.rssMB, vmHwmMB: v.hwmMB, afterPutsVmRssMB: NaN };
      }
    }
    if (last && o.puts > 0) {
      const n = Math.max(...o.sizes);
      result.put = await putLatency(client, `/bench-control-${n}/network`, last.agent, last.pinDir, watcher, o);
      if (result.rss) result.rss.afterPutsVmRssMB = vmStatus(last.agent.pid).rssMB;
    }
    if (last) await last.agent.stop();
  } finally {
    await watcher.close();
  }
}

/** Puts `o.puts` new leases one at a time and times each to its entry in the agent's map. */
async function putLatency(client: Etcd3, prefix: string, agent: LabAgent, pinDir: string, watcher: MapWatcher, o: ControlOptions): Promise<PutLatency> {
  const grant = await client.leaseClient.leaseGrant({ TTL: 24 * 3600 });
  const samples: number[] = [];
  const acks: number[] = [];
  const toLog: number[] = [];
  const logToMap: number[] = [];
  const marks: Array<{ from: number; subnet: string; wall0: number; ms: number }> = [];
  let timeouts = 0;
  o.say(`timing ${o.puts} new leases from etcd put to the agent's map`);
  for (let i = 0; i < o.puts; i++) {
    // Far above the first 10,000 leases and the 100 free subnets the agent chose its own from.
    const k = 12_000 + i;
    const subnet = subnetAt(k);
    const w = watcher.watch({ kind: 'key', pinDir, key: encodeLpmKey(net(subnet)).toString('hex'), needle: macHex(k), timeoutMs: 5000 });
    await w.armed;
    const from = agent.lines.length;
    const t0 = process.hrtime.bigint();
    const wall0 = Date.now();
    await client.kv.put({ key: Buffer.from(`${prefix}/subnets/${subnet.replace('/', '-')}`), value: Buffer.from(leaseValue(k)), lease: grant.ID });
    acks.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const seen = await w.seen;
    if (seen === null) {
      timeouts++;
      continue;
    }
    const ms = Number(seen - t0) / 1e6;
    samples.push(ms);
    marks.push({ from, subnet, wall0, ms });
    // Leases arrive one at a time in life; let the agent settle before the next.
    await sleep(10);
  }
  // The agent's log lines may reach us after the map entry does: read them once the last put's has come
  // (the log is in order). A line that never comes leaves its put out of the split, as a missing one did.
  const last = marks.at(-1);
  if (last) await agent.waitForLog(`the last put's peer added`, (l) => l.msg === 'peer added' && l.subnet === last.subnet, 5000, last.from).catch(() => undefined);
  for (const m of marks) {
    const line = agent.lines.slice(m.from).find((l) => l.msg === 'peer added' && l.subnet === m.subnet);
    const t = typeof line?.time === 'string' ? Date.parse(line.time) : typeof line?.time === 'number' ? line.time : NaN;
    if (!Number.isFinite(t)) continue;
    toLog.push(t - m.wall0);
    logToMap.push(m.ms - (t - m.wall0));
  }
  return {
    puts: o.puts,
    p50Ms: median(samples),
    p99Ms: percentile(samples, 99),
    maxMs: Math.max(...samples),
    timeouts,
    ackP50Ms: median(acks),
    toLogP50Ms: median(toLog),
    logToMapP50Ms: median(logToMap),
    samplesMs: samples.map((x) => Math.round(x * 1000) / 1000),
  };
}
