// The dataplane cases: each is a pair of lab hosts (and for the overlays a
// pod on each) that stays up for the whole run, so that the rounds can visit
// every case in turn. All pairs share one lab (one underlay segment, one
// router) and one etcd; each weft pair has its own etcd prefix and network
// config, so the pairs never see each other's leases.
import { IPERF3_PORT, Lab, reapStaleLabs, type LabHost, type Netns } from '../lab/netns.js';
import { LabEtcd } from '../lab/etcd.js';
import { startAgent, subnetFile, type LabAgent } from '../lab/agent.js';
import { FlannelHost } from '../lab/flannel.js';
import { waitFor } from '../lab/exec.js';
import { readEnvFile } from 'weft/agent/subnet-env.js';
import { IPNet } from 'weft/core/ipnet.js';
import { PROFILES, applyProfile, isProfile, type HostProfile } from '../lab/profiles.js';
import { startServers } from './measure.js';
import { OBJECT_DIR } from 'weft/dataplane/ebpf/loader.js';
import path from 'node:path';
import fs from 'node:fs';
import { CLI } from '../lab/agent.js';

/** The programs built with -DWEFT_NO_EVENTS (the Makefile's BPF_NOEV_OBJ), beside the usual ones. */
const NO_EVENTS_DIR = path.resolve(OBJECT_DIR, '../bpf-noevents');

/** A weft monitor in host for the whole case (stopped with the host's processes), once it listens. */
async function startMonitor(host: LabHost): Promise<void> {
  const child = host.spawn([process.execPath, CLI, 'monitor', '--bpf-pin-dir', host.pinDir, '--type', 'all', '--sample', '100', '-o', 'json'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  await waitFor(`weft monitor in ${host.hostName} to listen`, () => {
    if (child.exitCode !== null) throw new Error(`weft monitor exited ${child.exitCode}: ${err.trim()}`);
    return err.includes('listening for');
  });
}

export type Backend = 'vxlan' | 'host-gw' | 'ipip' | 'udp';

export interface CaseDef {
  name: string;
  label: string;
  kind: 'underlay' | 'flannel' | 'weft';
  backend?: Backend;
  dataplane?: 'ebpf' | 'netlink';
  /** The flannel kernel path this case is compared with (the targets: ipip and udp against vxlan). */
  ref?: string;
  /**
   * weft monitor's events (issue 14): 'compiled-out' runs the programs built without them (build/bpf-noevents), the
   * baseline for what the idle check costs; 'monitor' runs a weft monitor on both hosts for the whole case.
   */
  events?: 'compiled-out' | 'monitor';
}

export const CASES: CaseDef[] = [
  { name: 'underlay', label: 'underlay, host to host', kind: 'underlay' },
  { name: 'flannel-vxlan', label: "flannel's kernel vxlan (ip commands)", kind: 'flannel', backend: 'vxlan' },
  { name: 'flannel-host-gw', label: "flannel's kernel host-gw (ip commands)", kind: 'flannel', backend: 'host-gw' },
  { name: 'weft-ebpf-vxlan', label: 'weft eBPF vxlan', kind: 'weft', backend: 'vxlan', dataplane: 'ebpf', ref: 'flannel-vxlan' },
  { name: 'weft-ebpf-host-gw', label: 'weft eBPF host-gw', kind: 'weft', backend: 'host-gw', dataplane: 'ebpf', ref: 'flannel-host-gw' },
  { name: 'weft-ebpf-ipip', label: 'weft eBPF ipip', kind: 'weft', backend: 'ipip', dataplane: 'ebpf', ref: 'flannel-vxlan' },
  { name: 'weft-ebpf-udp', label: 'weft eBPF udp', kind: 'weft', backend: 'udp', dataplane: 'ebpf', ref: 'flannel-vxlan' },
  { name: 'weft-ebpf-vxlan-noevents', label: 'weft eBPF vxlan, programs built without events', kind: 'weft', backend: 'vxlan', dataplane: 'ebpf', ref: 'weft-ebpf-vxlan', events: 'compiled-out' },
  { name: 'weft-ebpf-vxlan-monitor', label: 'weft eBPF vxlan, weft monitor --type all --sample 100 listening', kind: 'weft', backend: 'vxlan', dataplane: 'ebpf', ref: 'weft-ebpf-vxlan', events: 'monitor' },
  { name: 'weft-netlink-vxlan', label: 'weft netlink vxlan', kind: 'weft', backend: 'vxlan', dataplane: 'netlink', ref: 'flannel-vxlan' },
  { name: 'weft-netlink-host-gw', label: 'weft netlink host-gw', kind: 'weft', backend: 'host-gw', dataplane: 'netlink', ref: 'flannel-host-gw' },
];

/**
 * The flannel kernel path a case stands against: its `ref`, or, for a case measured against another weft case (the
 * events variants against weft's vxlan), that case's. The bare-host target ("no case below 1.00x its flannel
 * counterpart") is taken against this one; the dataplane table keeps `ref`, what the variant costs over weft's own.
 */
export function flannelCounterpart(name: string): string | undefined {
  const ref = CASES.find((c) => c.name === name)?.ref;
  if (!ref) return undefined;
  return CASES.find((c) => c.name === ref)?.kind === 'flannel' ? ref : flannelCounterpart(ref);
}

export function caseDef(name: string): CaseDef {
  const d = CASES.find((c) => c.name === name);
  if (!d) throw new Error(`no case ${name}; cases: ${CASES.map((c) => c.name).join(', ')}`);
  return d;
}

/**
 * The single-purpose bench scripts' `--name value` pairs, with the two they
 * share checked: `--profile` (a host profile) and `--cases` (names of CASES).
 */
export function profileScriptArgs(argv: string[], defaults: { profile: HostProfile; cases: string[] }): { a: Map<string, string>; profile: HostProfile; cases: string[] } {
  const a = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) a.set(argv[i].replace(/^--/, ''), argv[i + 1] ?? '');
  const profile = a.get('profile') ?? defaults.profile;
  if (!isProfile(profile)) throw new Error(`--profile: ${PROFILES.join(', ')}, not ${profile}`);
  const cases = a.get('cases')?.split(',') ?? defaults.cases;
  for (const c of cases) caseDef(c);
  return { a, profile, cases };
}

/** Cases compared on the docker and kube profiles: the targets' pairs (the rest run on bare). */
export const PROFILE_CASES = ['flannel-vxlan', 'flannel-host-gw', 'weft-ebpf-vxlan', 'weft-ebpf-host-gw'];

/** A case on a host profile, as results and the command line name it: "docker/weft-ebpf-vxlan". */
export const setupKey = (profile: HostProfile, caseName: string): string => `${profile}/${caseName}`;

export interface CaseSetup {
  def: CaseDef;
  profile: HostProfile;
  /** 'unavailable': this build cannot run the case (reported, not measured); 'failed': it should have worked. */
  status: 'ready' | 'unavailable' | 'failed';
  reason?: string;
  client?: Netns;
  server?: Netns;
  serverIP?: string;
  sockperfPid?: number;
  /** Pod MTU (FLANNEL_MTU) or the underlay's. */
  mtu?: number;
  agents: LabAgent[];
  /** The network namespaces of the case's two hosts; their pods' are named after them (`<host>-<pod>`). */
  hosts: string[];
}

/** Whether a network namespace is one of the case's: a host's, or a pod's on it. */
export function inCase(s: CaseSetup, netns: string): boolean {
  return s.hosts.some((h) => netns === h || netns.startsWith(`${h}-`));
}

export interface Bench {
  lab: Lab;
  etcd: LabEtcd;
}

export async function createBench(): Promise<Bench> {
  const lab = await Lab.create();
  try {
    return { lab, etcd: await LabEtcd.start({ netns: lab.router }) };
  } catch (err) {
    await lab.destroy();
    throw err;
  }
}

export async function destroyBench(b: Bench): Promise<void> {
  await Promise.all(b.lab.hosts.map((h) => h.stopAll()));
  await b.etcd.destroy();
  await b.lab.destroy();
}

/**
 * The profiling scripts' frame (profile.ts, stream-profile.ts, bigtcp.ts): stale labs
 * reaped, a bench with every named case set up on `profile` (case i's hosts
 * from octet firstOctet + 2i), `body` run on them, and the bench torn down.
 */
export async function withReadyCases<T>(profile: HostProfile, cases: string[], firstOctet: number, body: (b: Bench, setups: CaseSetup[]) => Promise<T>): Promise<T> {
  reapStaleLabs();
  const b = await createBench();
  try {
    const setups: CaseSetup[] = [];
    for (const [i, name] of cases.entries()) {
      const s = await setupCase(b, caseDef(name), profile, i, firstOctet + 2 * i);
      if (s.status !== 'ready') throw new Error(`${name}: ${s.reason}`);
      setups.push(s);
    }
    return await body(b, setups);
  } finally {
    await destroyBench(b);
  }
}

const config = (backend: Backend): string => JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: backend } });

/** A docker0-style bridge from subnet.env (--bip=$FLANNEL_SUBNET --mtu=$FLANNEL_MTU) and one pod on it. */
async function podFromSubnetEnv(host: LabHost): Promise<{ pod: Netns; ip: string; mtu: number }> {
  const env = readEnvFile(subnetFile(host));
  const gw = env?.FLANNEL_SUBNET;
  const mtu = Number(env?.FLANNEL_MTU);
  if (!gw || !mtu) throw new Error(`${host.name}: no usable subnet.env at ${subnetFile(host)}`);
  await host.addBridge('docker0', gw, mtu);
  const subnet = IPNet.parse(gw)!;
  const ip = subnet.hostAt(2n);
  const pod = await host.addPod('p1', { bridge: 'docker0', cidr: `${ip}/${subnet.prefixLen}`, gateway: subnet.hostAt(1n), mtu });
  return { pod, ip, mtu };
}

/** Why an agent stopped: its last error line, or stderr. */
function agentFailure(a: LabAgent): string {
  const errors = a.lines.filter((l) => l.level >= 50).map((l) => l.msg);
  return (errors.at(-1) ?? a.stderr.trim().split('\n').at(-1) ?? 'exited without a reason').slice(0, 400);
}

/** Sets up one case on hosts with underlay octets `octet` and `octet + 1`, with the profile's rules; never throws for the case's own failure. */
export async function setupCase(b: Bench, def: CaseDef, profile: HostProfile, index: number, octet: number): Promise<CaseSetup> {
  const s: CaseSetup = { def, profile, status: 'failed', agents: [], hosts: [] };
  try {
    const h1 = await b.lab.addHost(`c${index}a`, { octet });
    const h2 = await b.lab.addHost(`c${index}b`, { octet: octet + 1 });
    s.hosts.push(h1.name, h2.name);
    if (def.kind === 'underlay') {
      Object.assign(s, { client: h1, server: h2, serverIP: h2.address, mtu: 1500 });
    } else if (def.kind === 'flannel') {
      const prefix = `/bench/${profile}/${def.name}/network`;
      const backend = def.backend as 'vxlan' | 'host-gw';
      const f = [
        new FlannelHost(h1, { backend, prefix, network: '10.244.0.0/16', subnet: '10.244.1.0/24' }),
        new FlannelHost(h2, { backend, prefix, network: '10.244.0.0/16', subnet: '10.244.2.0/24' }),
      ];
      await b.etcd.etcdctl(['put', `${prefix}/config`, config(def.backend!)]);
      for (const x of f) await x.start(b.etcd);
      await f[0].addPeer({ subnet: f[1].o.subnet, publicIP: h2.address, vtepMAC: f[1].vtepMAC });
      await f[1].addPeer({ subnet: f[0].o.subnet, publicIP: h1.address, vtepMAC: f[0].vtepMAC });
    } else {
      const prefix = `/bench/${profile}/${def.name}/network`;
      await b.etcd.etcdctl(['put', `${prefix}/config`, config(def.backend!)]);
      if (def.events === 'compiled-out' && !fs.existsSync(path.join(NO_EVENTS_DIR, 'overlay.o'))) {
        return { ...s, status: 'unavailable', reason: `no programs built without events in ${NO_EVENTS_DIR} (make build makes them)` };
      }
      const env = def.events === 'compiled-out' ? { WEFT_BPF_DIR: NO_EVENTS_DIR } : undefined;
      for (const h of [h1, h2]) {
        const agent = startAgent(h, { etcdEndpoint: b.etcd.endpoint, dataplane: def.dataplane, extra: ['--etcd-prefix', prefix], env });
        s.agents.push(agent);
        try {
          // The lab's waitForMsg notices an agent's exit only at its deadline: race the exit.
          await Promise.race([agent.waitForMsg('agent ready', 30_000), agent.exited.then((code) => Promise.reject(new Error(`agent exited (${code})`)))]);
        } catch (err) {
          const why = agent.running ? (err as Error).message.split('\n')[0] : agentFailure(agent);
          s.status = /not available in this build|Cannot find module/i.test(why) && def.dataplane === 'netlink' ? 'unavailable' : 'failed';
          s.reason = `${h.hostName}'s agent (--dataplane=${def.dataplane}): ${why}`;
          return s;
        }
      }
    }
    if (def.kind !== 'underlay') {
      const a = await podFromSubnetEnv(h1);
      const z = await podFromSubnetEnv(h2);
      Object.assign(s, { client: a.pod, server: z.pod, serverIP: z.ip, mtu: a.mtu });
      // The same rules on both hosts; kube's services lead to the server pod's iperf3.
      for (const h of [h1, h2]) {
        const env = readEnvFile(subnetFile(h))!;
        await applyProfile(h, profile, { network: env.FLANNEL_NETWORK, subnet: env.FLANNEL_SUBNET, bridge: 'docker0', endpoints: [{ ip: z.ip, port: IPERF3_PORT }] });
      }
    }
    if (def.events === 'monitor') for (const h of [h1, h2]) await startMonitor(h);
    s.sockperfPid = (await startServers(s.server!)).sockperfPid;
    await waitFor(
      `${def.name}: ${s.client!.name} to reach ${s.serverIP}`,
      async () => (await s.client!.exec(['ping', '-c', '1', '-W', '1', s.serverIP!], { allowFail: true })).code === 0,
      20_000,
      200,
    );
    s.status = 'ready';
  } catch (err) {
    s.status = 'failed';
    s.reason = (err as Error).message.split('\n').slice(0, 3).join(' ');
  }
  return s;
}
