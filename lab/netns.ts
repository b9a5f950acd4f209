// Simulated hosts for tests, the demo and the benchmark: network namespaces on
// one machine, joined by veth pairs to two underlay segments
// (192.0.2.0/24 and 198.51.100.0/24) that a router namespace connects.
// Everything lives in namespaces the lab made; the root namespace's links,
// routes and firewall are never touched.
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { inNetns, run, runSync, start, startProcess, stopProcess, waitFor, WaitAbort, type RunOptions, type RunResult, type Running } from './exec.js';

/** iperf3's default port: the tests' and the demo's servers listen on it. */
export const IPERF3_PORT = 5201;

export const LAB_PREFIX = 'wt';
export const BPFFS = '/sys/fs/bpf';
/**
 * bridge-nf's switches (one per family), as sysctl keys; empty where the kernel has no br_netfilter loaded or
 * built in (then no bridge hands anything to netfilter). Every new namespace starts with them on.
 */
export const BRIDGE_NF_SYSCTLS: readonly string[] = fs.existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables')
  ? ['iptables', 'ip6tables', 'arptables'].map((f) => `net.bridge.bridge-nf-call-${f}`)
  : [];

/** Underlay segments: a host on segment k gets an address in SEGMENTS[k]; the router is .1 on each. */
export const SEGMENTS = [
  { net: '192.0.2', gateway: '192.0.2.1', prefixLen: 24 },
  { net: '198.51.100', gateway: '198.51.100.1', prefixLen: 24 },
] as const;

export class Netns {
  private readonly children = new Set<ChildProcess>();

  constructor(readonly name: string) {}

  exec(cmd: string[], opts?: RunOptions): Promise<RunResult> {
    return run(inNetns(this.name, cmd), opts);
  }

  /** exec(), with the output to wait on while the command runs (e.g. tcpdump's "listening on"). */
  start(cmd: string[], opts?: RunOptions): Running {
    return start(inNetns(this.name, cmd), opts);
  }

  execSync(cmd: string[], opts?: RunOptions): RunResult {
    return runSync(inNetns(this.name, cmd), opts);
  }

  /** `ip` inside this namespace; returns stdout. */
  async ip(...args: string[]): Promise<string> {
    return (await run(['ip', '-n', this.name, ...args])).stdout;
  }

  async sysctl(key: string, value: string): Promise<void> {
    await this.exec(['sysctl', '-q', '-w', `${key}=${value}`]);
  }

  /** Starts a long-running process in this namespace; stopped on teardown. */
  spawn(cmd: string[], opts?: SpawnOptions): ChildProcess {
    const child = startProcess(inNetns(this.name, cmd), opts);
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /**
   * Resolves once a TCP socket in this namespace listens on port: the server is
   * ready for its client. Fails at once if `server` (the process that should
   * listen) exits first. Asks the kernel (ss), not the server's output, which
   * a server may buffer (iperf3 does, into a pipe).
   */
  async waitForListening(port: number, server?: ChildProcess, timeoutMs = 10_000): Promise<void> {
    await waitFor(`a TCP listener on port ${port} in ${this.name}`, async () => {
      if (server && (server.exitCode !== null || server.signalCode !== null)) throw new WaitAbort(`the server meant to listen on port ${port} in ${this.name} exited (${server.signalCode ?? server.exitCode})`);
      return (await this.exec(['ss', '-Hltn', `sport = :${port}`])).stdout.trim() !== '';
    }, timeoutMs);
  }

  /** `iperf3 -s -1` (serves one test, then exits), listening when this resolves; stopped on teardown. */
  async iperf3Server(): Promise<ChildProcess> {
    const server = this.spawn(['iperf3', '-s', '-1', '-p', String(IPERF3_PORT)]);
    await this.waitForListening(IPERF3_PORT, server);
    return server;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.children].map((c) => stopProcess(c, 3000)));
  }

  killAllSync(): void {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}

export interface HostOptions {
  /** Last octet of the host's underlay address, e.g. 11 for 192.0.2.11. */
  octet: number;
  /** Underlay segment, 0 (192.0.2.0/24, default) or 1 (198.51.100.0/24). */
  segment?: 0 | 1;
  mtu?: number;
  /**
   * net.ipv4.ip_forward, on unless false. A fresh host (a newly installed
   * machine) has it off until something turns it on: docker does, and then
   * sets the FORWARD policy to DROP.
   */
  ipForward?: boolean;
}

export class LabHost extends Netns {
  readonly pods: Netns[] = [];

  constructor(
    readonly lab: Lab,
    readonly hostName: string,
    readonly address: string,
    readonly segment: 0 | 1,
  ) {
    super(`${lab.id}-${hostName}`);
  }

  /** Underlay interface name inside the host. */
  readonly ifname = 'eth0';

  /** A per-host BPF pin directory on the root mount namespace's bpffs. */
  get pinDir(): string {
    return path.join(BPFFS, this.lab.id, this.hostName);
  }

  /** A per-host scratch directory (subnet.env, logs). */
  get dir(): string {
    return path.join(this.lab.dir, this.hostName);
  }

  /** Builds a bridge holding the host's subnet, the way docker builds docker0 from --bip and --mtu. */
  async addBridge(name: string, gatewayCidr: string, mtu: number): Promise<void> {
    await this.ip('link', 'add', name, 'type', 'bridge');
    await this.ip('link', 'set', name, 'mtu', String(mtu));
    await this.ip('addr', 'add', gatewayCidr, 'dev', name);
    await this.ip('link', 'set', name, 'up');
  }

  /** A pod's network namespace, empty but for lo (what a runtime makes before calling CNI ADD); removed with the lab. */
  async addPodNetns(podName: string): Promise<Netns> {
    const pod = new Netns(`${this.name}-${podName}`);
    await run(['ip', 'netns', 'add', pod.name]);
    this.lab.track(pod);
    await pod.ip('link', 'set', 'lo', 'up');
    return pod;
  }

  /** A pod: its own namespace, eth0 on `bridge` with `cidr`, default route via `gateway`. */
  async addPod(podName: string, opts: { bridge: string; cidr: string; gateway: string; mtu: number }): Promise<Netns> {
    const pod = await this.addPodNetns(podName);
    const hostEnd = `v${podName}`.slice(0, 15);
    await this.ip('link', 'add', hostEnd, 'mtu', String(opts.mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', String(opts.mtu), 'netns', pod.name);
    await this.ip('link', 'set', hostEnd, 'master', opts.bridge, 'up');
    await pod.ip('addr', 'add', opts.cidr, 'dev', 'eth0');
    await pod.ip('link', 'set', 'eth0', 'up');
    await pod.ip('route', 'add', 'default', 'via', opts.gateway);
    this.pods.push(pod);
    return pod;
  }
}

const liveLabs = new Set<Lab>();
let labCounter = 0;
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const lab of liveLabs) lab.destroySync();
      process.exit(130);
    });
  }
}

export class Lab {
  readonly id: string;
  readonly router: Netns;
  readonly hosts: LabHost[] = [];
  readonly dir: string;
  private readonly namespaces: Netns[] = [];
  private destroyed = false;

  private constructor() {
    this.id = `${LAB_PREFIX}${process.pid}-${labCounter++}`;
    this.router = new Netns(`${this.id}-net`);
    this.dir = path.join('/tmp', 'weft-lab', this.id);
  }

  /** Creates the router namespace with both segment bridges. */
  static async create(): Promise<Lab> {
    installExitHook();
    const lab = new Lab();
    liveLabs.add(lab);
    try {
      fs.mkdirSync(lab.dir, { recursive: true });
      await ensureBpffs();
      fs.mkdirSync(path.join(BPFFS, lab.id), { recursive: true });
      await run(['ip', 'netns', 'add', lab.router.name]);
      lab.track(lab.router);
      const r = lab.router;
      await r.ip('link', 'set', 'lo', 'up');
      await r.sysctl('net.ipv4.ip_forward', '1');
      // The router stands for the wire (a switch and a router), which runs no netfilter. This kernel has
      // br_netfilter built in and a new namespace starts with bridge-nf on, so without these every packet
      // of every case met bridge-nf on seg0 (45 ms/GB of a pinned stream in perf, flannel's and weft's alike).
      for (const key of BRIDGE_NF_SYSCTLS) await r.sysctl(key, '0');
      for (const [k, seg] of SEGMENTS.entries()) {
        await r.ip('link', 'add', `seg${k}`, 'type', 'bridge');
        await r.ip('addr', 'add', `${seg.gateway}/${seg.prefixLen}`, 'dev', `seg${k}`);
        await r.ip('link', 'set', `seg${k}`, 'up');
      }
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return lab;
  }

  track(ns: Netns): void {
    this.namespaces.push(ns);
  }

  /** A host namespace with eth0 on the given segment and a default route via the router. */
  async addHost(hostName: string, opts: HostOptions): Promise<LabHost> {
    const segment = opts.segment ?? 0;
    const seg = SEGMENTS[segment];
    const host = new LabHost(this, hostName, `${seg.net}.${opts.octet}`, segment);
    await run(['ip', 'netns', 'add', host.name]);
    this.track(host);
    fs.mkdirSync(host.dir, { recursive: true });
    fs.mkdirSync(host.pinDir, { recursive: true });
    const mtu = String(opts.mtu ?? 1500);
    const routerEnd = `${segment}-${hostName}`.slice(0, 15);
    await this.router.ip('link', 'add', routerEnd, 'mtu', mtu, 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', mtu, 'netns', host.name);
    await this.router.ip('link', 'set', routerEnd, 'master', `seg${segment}`, 'up');
    await host.ip('link', 'set', 'lo', 'up');
    await host.ip('addr', 'add', `${host.address}/${seg.prefixLen}`, 'dev', 'eth0');
    await host.ip('link', 'set', 'eth0', 'up');
    await host.ip('route', 'add', 'default', 'via', seg.gateway);
    if (opts.ipForward !== false) await host.sysctl('net.ipv4.ip_forward', '1');
    this.hosts.push(host);
    return host;
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    for (const ns of this.namespaces) await ns.stopAll();
    this.destroySync();
  }

  /** Kills what the lab started and deletes its namespaces, pins and scratch files. Safe to call twice. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    liveLabs.delete(this);
    for (const ns of this.namespaces) ns.killAllSync();
    for (const ns of [...this.namespaces].reverse()) {
      runSync(['ip', 'netns', 'del', ns.name], { allowFail: true });
    }
    fs.rmSync(path.join(BPFFS, this.id), { recursive: true, force: true });
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** bpffs at /sys/fs/bpf in the root mount namespace, as the agent itself expects it. */
export async function ensureBpffs(): Promise<void> {
  const mounts = fs.readFileSync('/proc/self/mounts', 'utf8');
  if (mounts.split('\n').some((l) => l.split(' ')[1] === BPFFS && l.split(' ')[2] === 'bpf')) return;
  await run(['mount', '-t', 'bpf', 'bpf', BPFFS]);
}

/** Removes namespaces and pins left behind by a lab whose process died (named wt<pid>-...). */
export function reapStaleLabs(): string[] {
  const reaped: string[] = [];
  const out = runSync(['ip', 'netns', 'list'], { allowFail: true }).stdout;
  for (const line of out.split('\n')) {
    const name = line.split(' ')[0];
    const m = /^wt(\d+)-\d+-/.exec(name);
    if (!m || fs.existsSync(`/proc/${m[1]}`)) continue;
    for (const pid of runSync(['ip', 'netns', 'pids', name], { allowFail: true }).stdout.split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    runSync(['ip', 'netns', 'del', name], { allowFail: true });
    reaped.push(name);
  }
  if (fs.existsSync(BPFFS)) {
    for (const entry of fs.readdirSync(BPFFS)) {
      const m = /^wt(\d+)-\d+$/.exec(entry);
      if (m && !fs.existsSync(`/proc/${m[1]}`)) fs.rmSync(path.join(BPFFS, entry), { recursive: true, force: true });
    }
  }
  return reaped;
}
