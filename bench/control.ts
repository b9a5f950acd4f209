// Control-plane measurements at the scale of a /8 Network cut into /24
// subnets: 65,536 hosts. An agent starting against 1,000, 10,000 and 65,536
// leases (time until every lease is in its pinned map, with the agent's own
// log splitting where the time went, and how long choosing its subnet took
// when all but one are taken); a new lease's journey from an etcd put to the
// remote agent's map (p50/p99); the agent's RSS at each size; `weft leases`
// listing them all. The map is watched from a worker thread (map-watch.ts).
//
// The Network is 10.0.0.0/8, outside the lab's usual 10.244.0.0/16 (whose
// /30s stop at 16,384 leases): it exists only in etcd, in the agent's pinned
// map and as one route inside the agent's lab namespace; no packet is ever
// sent to it.
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Etcd3 } from 'etcd3';
import { CLI, startAgent, subnetFile, type LabAgent, type LogLine } from '../lab/agent.js';
import { sleep, waitFor } from '../lab/exec.js';
import { readEnvFile } from 'weft/agent/subnet-env.js';
import { encodeLpmKey, LPM_KEY_SIZE, MAP_PEERS } from 'weft/dataplane/ebpf/maps.js';
import { BpfMap } from 'weft/native/bpf.js';
import { IPNet } from 'weft/core/ipnet.js';
import { net } from '../lab/model.js';
import type { LabHost } from '../lab/netns.js';
import type { Bench } from './cases.js';
import type { WatchReply, WatchRequest } from './map-watch.js';
import { anotherRun, median, percentile, WIDE_SPREAD } from './measure.js';

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

  /**
   * Starts a watch. `armed` resolves once the worker has seen that the state
   * is not there yet and keeps polling (start the clock then); it rejects
   * when the state was there already. `seen`: the hrtime (ns) of the first
   * poll that saw it, or null on timeout.
   */
  watch(req: Distribute<WatchRequest>): { armed: Promise<void>; seen: Promise<bigint | null> } {
    const id = this.nextId++;
    let armed!: () => void;
    let refuse!: (err: Error) => void;
    const armedP = new Promise<void>((resolve, reject) => ((armed = resolve), (refuse = reject)));
    const seen = new Promise<bigint | null>((resolve, reject) => {
      this.waiting.set(id, {
        armed,
        done: (r) => {
          if (r.armed) return;
          if (r.error) {
            const err = new Error(`map watch: ${r.error}`);
            refuse(err);
            return reject(err);
          }
          resolve(r.seenNs === null ? null : BigInt(r.seenNs));
        },
      });
    });
    // Whoever awaits `armed` sees a refusal there; `seen` must not also surface as unhandled.
    seen.catch(() => undefined);
    this.worker.postMessage({ ...req, id } as WatchRequest);
    return { armed: armedP, seen };
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/** Every /24 of a /8: 65,536 subnets, WEFT_PEERS_MAX map entries. */
export const NETWORK = '10.0.0.0/8';
const SUBNET_LEN = 24;
export const MAX_LEASES = 1 << (SUBNET_LEN - 8);
/** Fake peers' addresses: never a lab host's (those are .11 to .60 on 192.0.2.0/24). */
const fakePublicIP = (i: number): string => (i % 2 ? `198.51.100.${100 + (i % 150)}` : `192.0.2.${100 + (i % 150)}`);
const fakeMAC = (i: number): string => `0e:be:00:${[i >> 16, (i >> 8) & 0xff, i & 0xff].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
/** The i-th /24 of the Network, as "10.a.b.0/24". */
const subnetAt = (i: number): string => `10.${i >> 8}.${i & 0xff}.0/${SUBNET_LEN}`;
const keyOf = (prefix: string, subnet: string): string => `${prefix}/subnets/${subnet.replace('/', '-')}`;
const leaseValue = (i: number): string =>
  JSON.stringify({ PublicIP: fakePublicIP(i), PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: fakeMAC(i) } });
const macHex = (i: number): string => fakeMAC(i).replaceAll(':', '');

/**
 * Writes leases as a cluster of flanneld hosts would: each on an etcd lease
 * of its own (every host grants its own), in transactions of etcd's default
 * limit of 128 operations. (One lease for all made `weft leases` one TTL call
 * instead of one per host.)
 */
async function writeLeases(client: Etcd3, prefix: string, indices: number[]): Promise<void> {
  for (let i = 0; i < indices.length; i += 128) {
    const batch = indices.slice(i, i + 128);
    const grants = await Promise.all(batch.map(() => client.leaseClient.leaseGrant({ TTL: 24 * 3600 })));
    const success = batch.map((k, j) => ({
      request_put: { key: Buffer.from(keyOf(prefix, subnetAt(k))), value: Buffer.from(leaseValue(k)), lease: grants[j].ID },
    }));
    await client.kv.txn({ success });
  }
}

/**
 * A size's fake leases: every index below n but the last, which stays free
 * for the agent (at 65,536 it is the only free subnet: the agent chooses with
 * all others taken). With the agent's own, etcd then holds n leases.
 */
const fakeIndices = (n: number): number[] => Array.from({ length: n - 1 }, (_, i) => i);

/**
 * The LPM keys of the n - 1 fake leases in the order the agent's start
 * writes them (after its own, which is not awaited: below 65,536 it is any
 * of 100 free subnets): etcd's key order, which is the order of the key's
 * bytes ("10.0.1.0-24" before "10.0.10.0-24" before "10.0.2.0-24").
 * (Three sentinel keys and a count of the map, before: the last sentinel
 * in etcd's order was a third of the way in, and a count of 65,536 entries
 * takes 300 to 500 ms, which the result then carried.)
 */
function mapKeysInWriteOrder(prefix: string, n: number): Uint8Array {
  const peers = fakeIndices(n).map((k) => ({ k, key: Buffer.from(keyOf(prefix, subnetAt(k))) }));
  peers.sort((a, b) => Buffer.compare(a.key, b.key));
  const order = peers.map((p) => p.k);
  const out = Buffer.alloc(order.length * LPM_KEY_SIZE);
  order.forEach((k, i) => encodeLpmKey(net(subnetAt(k))).copy(out, i * LPM_KEY_SIZE));
  return out;
}

export interface StartRun {
  leases: number;
  /** Spawn to every lease's entry in the pinned map (the worker saw it). */
  toMapsMs: number | null;
  /** Spawn to each milestone the agent logs, from its log's own timestamps (ms resolution). */
  milestones: Record<string, number>;
}

export interface PutLatency {
  /** Leases in etcd while the puts were timed. */
  leases: number;
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
  afterPutsVmRssMB?: number;
}

export interface LeasesCommand {
  leases: number;
  /** `weft leases -o json`, spawn to exit, per run. */
  ms: number[];
}

export interface ControlResult {
  start: StartRun[];
  put: PutLatency | null;
  /** The agent's memory holding each size's peers (the last run of each size). */
  rss: Rss[];
  leasesCommand: LeasesCommand[];
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
  /** More starts (and listings) of a size, up to this many, while their times spread over WIDE_SPREAD. */
  maxRuns: number;
  puts: number;
  say: (line: string) => void;
}

/** Times `weft leases -o json` in a lab host (spawn to exit, node's start included). */
async function leasesCommand(host: LabHost, endpoint: string, prefix: string, n: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  const r = await host.exec([process.execPath, CLI, 'leases', '--etcd-endpoints', endpoint, '--etcd-prefix', prefix, '-o', 'json'], { allowFail: true, timeoutMs: 120_000 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.code !== 0) throw new Error(`weft leases with ${n} leases: exit ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`);
  const got = (JSON.parse(r.stdout) as { leases: unknown[] }).leases.length;
  if (got !== n) throw new Error(`weft leases listed ${got} leases, etcd holds ${n}`);
  return ms;
}

/** Fills `result` as it goes, so that a failure part-way keeps what was measured. */
export async function runControl(b: Bench, o: ControlOptions, result: ControlResult): Promise<void> {
  const client = b.etcd.client();
  const watcher = new MapWatcher();
  let octet = 11;
  let last: { agent: LabAgent; host: LabHost; prefix: string; n: number } | null = null;
  const largest = Math.max(...o.sizes);
  try {
    for (const n of o.sizes) {
      const prefix = `/bench-control-${n}/network`;
      await b.etcd.etcdctl(['put', `${prefix}/config`, JSON.stringify({ Network: NETWORK, SubnetLen: SUBNET_LEN, Backend: { Type: 'vxlan' } })]);
      o.say(`writing ${n - 1} leases under ${prefix}`);
      await writeLeases(client, prefix, fakeIndices(n));
      const times = (): number[] => result.start.filter((x) => x.leases === n).map((x) => x.toMapsMs ?? NaN);
      for (let r = 0; anotherRun(r, times(), o); r++) {
        if (last) {
          await last.agent.stop();
          // Its lease stays in etcd: take it out, so that every run finds the same free subnet.
          const own = readEnvFile(subnetFile(last.host))?.FLANNEL_SUBNET;
          if (own && last.prefix === prefix) await client.delete().key(keyOf(prefix, IPNet.v4(own).canonical().toString()));
        }
        const host = await b.lab.addHost(`k${n}r${r}`.slice(0, 12), { octet: octet++ });
        const w = watcher.watch({ kind: 'all', pinDir: host.pinDir, keys: mapKeysInWriteOrder(prefix, n), timeoutMs: 120_000 });
        await w.armed;
        const spawnNs = process.hrtime.bigint();
        const spawnWall = Date.now();
        const agent = startAgent(host, { etcdEndpoint: b.etcd.endpoint, dataplane: 'ebpf', extra: ['--etcd-prefix', prefix] });
        const seen = await Promise.race([w.seen, agent.exited.then((code) => Promise.reject(new Error(`${host.hostName}'s agent exited (${code}): ${agent.transcript().slice(-400)}`)))]);
        await agent.waitForMsg('agent ready', 120_000);
        const run: StartRun = { leases: n, toMapsMs: seen === null ? null : Number(seen - spawnNs) / 1e6, milestones: milestones(agent, spawnWall) };
        result.start.push(run);
        o.say(`agent start with ${n} leases, run ${r + 1}${r < o.runs ? `/${o.runs}` : ` (the runs spread over ±${(WIDE_SPREAD * 50).toFixed(1)}%)`}: all peers in the map after ${run.toMapsMs?.toFixed(0) ?? 'never (120 s)'} ms`);
        last = { agent, host, prefix, n };
      }
      if (last) {
        // Settled: the start's garbage collected, as it would be an hour later.
        await sleep(2000);
        const v = vmStatus(last.agent.pid);
        result.rss.push({ peers: n - 1, vmRssMB: v.rssMB, vmHwmMB: v.hwmMB });
        const runs: number[] = [];
        for (let r = 0; anotherRun(r, runs, o); r++) runs.push(await leasesCommand(last.host, b.etcd.endpoint, prefix, n));
        result.leasesCommand.push({ leases: n, ms: runs });
        o.say(`weft leases with ${n} leases: ${runs.map((x) => x.toFixed(0)).join(', ')} ms`);
      }
    }
    if (last && o.puts > 0 && last.n === largest) {
      result.put = await putLatency(client, last.prefix, last.agent, last.host.pinDir, watcher, largest, o);
      const rss = result.rss.find((x) => x.peers === largest - 1);
      if (rss) rss.afterPutsVmRssMB = vmStatus(last.agent.pid).rssMB;
    }
    if (last) await last.agent.stop();
  } finally {
    await watcher.close();
  }
}

/**
 * Which leases the puts write. Above every size and the agent's choices when
 * the Network has room; in a full Network (65,536), existing fake leases
 * spread over it, deleted first and put back one at a time.
 */
function putIndices(n: number, puts: number): { indices: number[]; existing: boolean } {
  if (n + 100 + puts <= MAX_LEASES) return { indices: Array.from({ length: puts }, (_, i) => n + 100 + i), existing: false };
  const step = Math.max(1, Math.floor((n - 2) / puts));
  return { indices: Array.from({ length: puts }, (_, i) => 1 + i * step), existing: true };
}

/** Puts `o.puts` new leases one at a time and times each to its entry in the agent's map. */
async function putLatency(client: Etcd3, prefix: string, agent: LabAgent, pinDir: string, watcher: MapWatcher, n: number, o: ControlOptions): Promise<PutLatency> {
  const { indices, existing } = putIndices(n, o.puts);
  if (existing) {
    o.say(`deleting ${indices.length} of the ${n} leases, to put them back one at a time`);
    for (const k of indices) await client.delete().key(keyOf(prefix, subnetAt(k)));
    const peers = BpfMap.fromPin(path.join(pinDir, MAP_PEERS));
    try {
      // The watch applies events in order: the last deletion out of the map means all are.
      const last = encodeLpmKey(net(subnetAt(indices.at(-1)!)));
      await waitFor('the deleted leases out of the map', () => peers.lookup(last) === null, 60_000, 50);
    } finally {
      peers.close();
    }
  }
  const grant = await client.leaseClient.leaseGrant({ TTL: 24 * 3600 });
  const samples: number[] = [];
  const acks: number[] = [];
  const toLog: number[] = [];
  const logToMap: number[] = [];
  const marks: Array<{ from: number; subnet: string; wall0: number; ms: number }> = [];
  let timeouts = 0;
  o.say(`timing ${indices.length} new leases from etcd put to the agent's map (${n} leases in etcd)`);
  for (const k of indices) {
    const subnet = subnetAt(k);
    const w = watcher.watch({ kind: 'key', pinDir, key: encodeLpmKey(net(subnet)).toString('hex'), needle: macHex(k), timeoutMs: 5000 });
    await w.armed;
    const from = agent.lines.length;
    const t0 = process.hrtime.bigint();
    const wall0 = Date.now();
    await client.kv.put({ key: Buffer.from(keyOf(prefix, subnet)), value: Buffer.from(leaseValue(k)), lease: grant.ID });
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
    leases: n,
    puts: indices.length,
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
