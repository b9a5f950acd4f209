// A whole simulated cluster for tests, the demo and the benchmark: etcd with a
// network config, one weft agent (or a flannel-style host) per lab host, and
// on each host a docker-style bridge built from its subnet.env with pods on it.
// connectivity() runs the matrix every backend must pass.
import type { ChildProcess } from 'node:child_process';
import { Lab, type LabHost, type Netns } from './netns.js';
import { LabEtcd } from './etcd.js';
import { startAgent, subnetFile, type LabAgent } from './agent.js';
import { FlannelHost } from './flannel.js';
import { PROBE } from './probe.js';
import { readEnvFile } from 'weft/agent/subnet-env.js';
import { IPNet } from 'weft/core/ipnet.js';
import { inNetns, Output, run } from './exec.js';
import { CniNetwork, type Attachment } from './cni.js';

export interface ClusterHostSpec {
  name: string;
  octet: number;
  segment?: 0 | 1;
  /** 'agent' (default): a weft agent; 'flannel': flannel's kernel setup by plain ip commands. */
  kind?: 'agent' | 'flannel';
  /** --dataplane for this host's agent (default: the cluster's). */
  dataplane?: string;
  /** Only for kind 'flannel': the subnet it leases. */
  subnet?: string;
}

export interface ClusterOptions {
  hosts: ClusterHostSpec[];
  /** The network config JSON put at <prefix>/config. */
  config: string;
  dataplane?: string;
  prefix?: string;
  podsPerHost?: number;
  bridge?: string;
  /**
   * How pods are made: 'bridge' (default) a docker0-style bridge from
   * subnet.env (--bip, --mtu) and veths by ip commands; 'cni' through weft's
   * CNI plugin (weft install-cni, the conflist, Debian's bridge, host-local
   * and portmap), as a container runtime makes them.
   */
  pods?: 'bridge' | 'cni';
  agentArgs?: string[];
  /** Called with progress lines (the demo shows them). */
  progress?: (line: string) => void;
}

export interface Pod {
  ns: Netns;
  ip: string;
  node: ClusterNode;
  /** For CNI pods: the attachment (container ID, cached result) DEL and CHECK need. */
  attachment?: Attachment;
}

export interface ClusterNode {
  spec: ClusterHostSpec;
  host: LabHost;
  agent: LabAgent | null;
  flannel: FlannelHost | null;
  env: Record<string, string>;
  pods: Pod[];
  /** With pods: 'cni': weft's plugin installed on this host. */
  cni: CniNetwork | null;
}

export class Cluster {
  readonly nodes: ClusterNode[] = [];
  readonly prefix: string;

  private constructor(
    readonly lab: Lab,
    readonly etcd: LabEtcd,
    readonly o: ClusterOptions,
  ) {
    this.prefix = o.prefix ?? '/coreos.com/network';
  }

  static async start(o: ClusterOptions): Promise<Cluster> {
    const say = o.progress ?? (() => undefined);
    const lab = await Lab.create();
    let cluster: Cluster | undefined;
    try {
      say('starting etcd in the lab router namespace');
      const etcd = await LabEtcd.start({ netns: lab.router });
      cluster = new Cluster(lab, etcd, o);
      await etcd.etcdctl(['put', `${cluster.prefix}/config`, o.config]);
      for (const spec of o.hosts) {
        const host = await lab.addHost(spec.name, { octet: spec.octet, segment: spec.segment });
        cluster.nodes.push({ spec, host, agent: null, flannel: null, env: {}, pods: [], cni: null });
      }
      for (const node of cluster.nodes) await cluster.startNode(node);
      await cluster.wireFlannelHosts();
      for (const node of cluster.nodes) await cluster.addPods(node, o.podsPerHost ?? 1);
      return cluster;
    } catch (err) {
      if (cluster) await cluster.destroy();
      else await lab.destroy();
      throw err;
    }
  }

  private async startNode(node: ClusterNode): Promise<void> {
    const say = this.o.progress ?? (() => undefined);
    if (node.spec.kind === 'flannel') {
      const cfg = JSON.parse(this.o.config) as { Network: string; Backend?: { Type?: string; VNI?: number; Port?: number } };
      const backend = (cfg.Backend?.Type ?? 'udp').toLowerCase();
      if (backend !== 'vxlan' && backend !== 'host-gw') throw new Error(`flannel-style hosts model vxlan and host-gw, not ${backend}`);
      node.flannel = new FlannelHost(node.host, { backend, prefix: this.prefix, network: cfg.Network, subnet: node.spec.subnet!, vni: cfg.Backend?.VNI, port: cfg.Backend?.Port });
      say(`${node.spec.name}: flannel-style host with ${node.spec.subnet} (plain ip commands)`);
      await node.flannel.start(this.etcd);
    } else {
      const dataplane = node.spec.dataplane ?? this.o.dataplane ?? 'ebpf';
      say(`${node.spec.name}: starting weft agent (--dataplane=${dataplane})`);
      node.agent = startAgent(node.host, { etcdEndpoint: this.etcd.endpoint, dataplane, extra: ['--etcd-prefix', this.prefix, ...(this.o.agentArgs ?? [])] });
      await node.agent.waitForMsg('agent ready', 30_000);
    }
    node.env = readEnvFile(subnetFile(node.host)) ?? {};
  }

  /** Gives each flannel-style host the leases of all other hosts, as flanneld's watch would. */
  async wireFlannelHosts(): Promise<void> {
    const flannels = this.nodes.filter((n) => n.flannel);
    if (!flannels.length) return;
    const list = JSON.parse(await this.etcd.etcdctl(['get', '--prefix', `${this.prefix}/subnets/`, '-w', 'json'])) as { kvs?: Array<{ key: string; value: string }> };
    for (const kv of list.kvs ?? []) {
      const name = Buffer.from(kv.key, 'base64').toString().split('/').pop()!;
      const v = JSON.parse(Buffer.from(kv.value, 'base64').toString()) as { PublicIP: string; BackendData?: { VtepMAC?: string } };
      const subnet = name.replace('-', '/');
      for (const f of flannels) {
        if (f.spec.subnet === subnet) continue;
        await f.flannel!.addPeer({ subnet, publicIP: v.PublicIP, vtepMAC: v.BackendData?.VtepMAC });
      }
    }
  }

  /** `count` pods: on a docker0-style bridge from subnet.env (--bip=$FLANNEL_SUBNET --mtu=$FLANNEL_MTU), or through CNI, 4 ADDs at a time. */
  async addPods(node: ClusterNode, count: number): Promise<void> {
    if (this.o.pods === 'cni') {
      node.cni ??= await CniNetwork.install(node.host);
      const names = Array.from({ length: count }, (_, i) => `p${node.pods.length + i + 1}`);
      const made: Pod[] = new Array(count);
      for (let i = 0; i < count; i += 4) {
        await Promise.all(names.slice(i, i + 4).map(async (name, k) => (made[i + k] = await this.addCniPod(node, name))));
      }
      node.pods.push(...made);
      return;
    }
    const gwCidr = node.env.FLANNEL_SUBNET;
    const mtu = Number(node.env.FLANNEL_MTU);
    if (!gwCidr || !mtu) throw new Error(`${node.spec.name}: no subnet.env to build pods from`);
    await node.host.addBridge(this.o.bridge ?? 'docker0', gwCidr, mtu);
    for (let i = 0; i < count; i++) await this.addPod(node);
  }

  /** A pod namespace attached through CNI ADD (container ID <host>-<pod>); the address is host-local's choice. */
  private async addCniPod(node: ClusterNode, name: string): Promise<Pod> {
    const ns = await node.host.addPodNetns(name);
    node.host.pods.push(ns);
    const attachment = await node.cni!.add(`${node.spec.name}-${name}`, ns);
    return { ns, ip: attachment.ip, node, attachment };
  }

  /** One more pod on the node's bridge (or through CNI), with the next free address. */
  async addPod(node: ClusterNode): Promise<Pod> {
    if (this.o.pods === 'cni') {
      const pod = await this.addCniPod(node, `p${node.pods.length + 1}`);
      node.pods.push(pod);
      return pod;
    }
    const subnet = IPNet.parse(node.env.FLANNEL_SUBNET)!;
    const n = node.pods.length;
    const ip = subnet.hostAt(BigInt(2 + n));
    const ns = await node.host.addPod(`p${n + 1}`, { bridge: this.o.bridge ?? 'docker0', cidr: `${ip}/${subnet.prefixLen}`, gateway: subnet.hostAt(1n), mtu: Number(node.env.FLANNEL_MTU) });
    const pod = { ns, ip, node };
    node.pods.push(pod);
    return pod;
  }

  node(name: string): ClusterNode {
    const n = this.nodes.find((x) => x.spec.name === name);
    if (!n) throw new Error(`no host ${name}`);
    return n;
  }

  get pods(): Pod[] {
    return this.nodes.flatMap((n) => n.pods);
  }

  async destroy(): Promise<void> {
    for (const n of this.nodes) if (n.agent?.running) await n.agent.stop();
    await this.etcd.destroy();
    await this.lab.destroy();
  }
}

export type Proto = 'icmp' | 'tcp' | 'udp';

export interface Reachability {
  from: string;
  to: string;
  proto: Proto;
  ok: boolean;
  detail: string;
}

/** One check from a namespace to an address; for tcp/udp the target namespace runs an echo server. */
/** The subnet a node leased, from its subnet.env (FLANNEL_SUBNET=10.244.3.1/24 -> 10.244.3.0/24). */
export function subnetOf(node: ClusterNode): string {
  return node.env.FLANNEL_SUBNET.replace(/\.1\//, '.0/');
}

/** lab/probe.ts's echo server in ns, serving when this resolves; the caller kills it. */
export async function echoServer(ns: Netns, proto: 'tcp' | 'udp', port: number): Promise<ChildProcess> {
  const server = ns.spawn([process.execPath, PROBE, 'serve', proto, String(port)]);
  try {
    await new Output(server).waitFor(`the ${proto} echo server in ${ns.name}`, /^ready$/m, 5000);
  } catch (err) {
    server.kill('SIGKILL');
    throw err;
  }
  return server;
}

export async function reach(from: Netns, to: string, proto: Proto, target?: Netns, port = 7777): Promise<{ ok: boolean; detail: string }> {
  if (proto === 'icmp') {
    const r = await from.exec(['ping', '-c', '2', '-i', '0.2', '-W', '2', to], { allowFail: true, timeoutMs: 10_000 });
    return { ok: r.code === 0, detail: r.code === 0 ? '' : (r.stdout + r.stderr).trim().split('\n').slice(-2).join(' ') };
  }
  if (!target) throw new Error('tcp/udp checks need the target namespace');
  const server = await echoServer(target, proto, port);
  try {
    const r = await run(inNetns(from.name, [process.execPath, PROBE, 'send', proto, to, String(port), `hello-${proto}`]), { allowFail: true, timeoutMs: 10_000 });
    return { ok: r.code === 0, detail: r.code === 0 ? '' : r.stderr.trim() };
  } finally {
    server.kill('SIGKILL');
  }
}

/**
 * The matrix every backend must pass: pod to pod across hosts both ways
 * (ICMP, TCP, UDP), a host to a pod on another host, a pod to another host's
 * own address, and pods on the same host.
 */
export async function connectivity(c: Cluster, protos: Proto[] = ['icmp', 'tcp', 'udp']): Promise<Reachability[]> {
  const out: Reachability[] = [];
  const pods = c.pods;
  for (const a of pods) {
    for (const b of pods) {
      if (a === b) continue;
      for (const proto of protos) {
        if (a.node === b.node && proto !== 'icmp') continue;
        const r = await reach(a.ns, b.ip, proto, b.ns);
        out.push({ from: `${a.ns.name}`, to: `${b.ns.name} ${b.ip}`, proto, ...r });
      }
    }
  }
  for (const n of c.nodes) {
    for (const b of pods) {
      if (b.node === n) continue;
      const r = await reach(n.host, b.ip, 'tcp', b.ns);
      out.push({ from: `host ${n.spec.name}`, to: `${b.ns.name} ${b.ip}`, proto: 'tcp', ...r });
      const back = await reach(b.ns, n.host.address, 'tcp', n.host);
      out.push({ from: `${b.ns.name}`, to: `host ${n.spec.name} ${n.host.address}`, proto: 'tcp', ...back });
    }
  }
  return out;
}

/**
 * The source address `target` sees a TCP connection from `from` arrive with
 * (masquerading shows here), or null when the connection fails.
 */
export async function sourceSeen(from: Netns, target: Netns, address: string, port = 7778): Promise<string | null> {
  const server = target.spawn([process.execPath, PROBE, 'whoami', String(port)]);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`whoami server in ${target.name} did not start`)), 5000);
      server.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      server.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`whoami server in ${target.name} exited ${code}`));
      });
    });
    const r = await run(inNetns(from.name, [process.execPath, PROBE, 'ask', address, String(port)]), { allowFail: true, timeoutMs: 10_000 });
    return r.code === 0 ? r.stdout.trim() : null;
  } finally {
    server.kill('SIGKILL');
  }
}

export function failures(results: Reachability[]): string {
  return results.filter((r) => !r.ok).map((r) => `${r.proto} ${r.from} -> ${r.to}: ${r.detail}`).join('\n');
}
