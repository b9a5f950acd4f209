// `make demo`: the whole system on one machine in a minute. A local etcd and
// three simulated hosts (network namespaces on one underlay segment), a
// network config put with etcdctl, one weft agent per host, and two pods per
// host made through weft's CNI plugin as a container runtime makes them
// (--pods=bridge: a docker-style bridge built from subnet.env instead); then
// the leases, the subnet.env files, a pod-to-pod ping matrix, iperf3 across
// hosts, the dataplane's view, and weft monitor watching a flow and a drop.
// Everything is torn down at the end and on Ctrl-C.
//
//   node dist-test/demo/demo.js [--backend vxlan|host-gw|ipip|udp] [--dataplane ebpf|netlink|auto] [--pods cni|bridge]
import fs from 'node:fs';
import path from 'node:path';
import { Lab, BPFFS, reapStaleLabs, type LabHost } from '../lab/netns.js';
import { LabEtcd } from '../lab/etcd.js';
import { CLI, startAgent, subnetFile, type LabAgent } from '../lab/agent.js';
import { runSync } from '../lab/exec.js';
import { CniNetwork, SYSTEM_CNI_DIR } from '../lab/cni.js';
import { readEnvFile } from 'weft/agent/subnet-env.js';
import { IPNet } from 'weft/core/ipnet.js';
import { bold, dim, FAIL, info, OK, output, red, setSteps, shell, step, waiting, yellow } from './ui.js';
import { pingMatrix, iperfAcross, showDataplane, showLeases, type DemoPod } from './show.js';
import { showMonitor } from './monitor.js';

const BACKENDS = ['vxlan', 'host-gw', 'ipip', 'udp'];
const DATAPLANES = ['ebpf', 'netlink', 'auto'];
const PODS = ['cni', 'bridge'];
const PREFIX = '/coreos.com/network';

interface Options {
  backend: string;
  dataplane: string;
  pods: string;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { backend: 'vxlan', dataplane: 'ebpf', pods: 'cni' };
  for (const a of argv) {
    const m = /^--(backend|dataplane|pods)=(.*)$/.exec(a);
    if (!m) throw new UsageError(`unknown argument ${a}`);
    o[m[1] as keyof Options] = m[2].toLowerCase();
  }
  if (!BACKENDS.includes(o.backend)) throw new UsageError(`--backend=${o.backend}: choose one of ${BACKENDS.join(', ')}`);
  if (!DATAPLANES.includes(o.dataplane)) throw new UsageError(`--dataplane=${o.dataplane}: choose one of ${DATAPLANES.join(', ')}`);
  if (!PODS.includes(o.pods)) throw new UsageError(`--pods=${o.pods}: choose one of ${PODS.join(', ')}`);
  return o;
}

class UsageError extends Error {}
/** The agent refused this backend/dataplane combination, or this build lacks it: said plainly, not as a crash. */
class NotAvailable extends Error {}

interface State {
  lab?: Lab;
  etcd?: LabEtcd;
  agents: LabAgent[];
}
const state: State = { agents: [] };

/** Stops everything, then checks that nothing of the lab is left: no namespace, no pin. */
async function teardown(): Promise<void> {
  for (const a of state.agents) if (a.running) await a.stop();
  await state.etcd?.destroy();
  await state.lab?.destroy();
}

function leftovers(): string[] {
  const id = state.lab?.id;
  if (!id) return [];
  const ns = runSync(['ip', 'netns', 'list'], { allowFail: true }).stdout.split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith(`${id}-`));
  const pins = fs.existsSync(path.join(BPFFS, id)) ? [path.join(BPFFS, id)] : [];
  const etcdDir = state.etcd && fs.existsSync(state.etcd.dir) ? [state.etcd.dir] : [];
  return [...ns, ...pins, ...etcdDir];
}

/** Ctrl-C: synchronous teardown (the event loop may not run again), then exit 130. Installed before the lab's own hook so it runs first. */
function onSignal(sig: NodeJS.Signals): void {
  process.stdout.write(`\n${yellow(`${sig}: tearing everything down`)}\n`);
  for (const a of state.agents) if (a.running) a.child.kill('SIGKILL');
  state.lab?.destroySync();
  if (state.etcd) fs.rmSync(state.etcd.dir, { recursive: true, force: true });
  const left = leftovers();
  process.stdout.write(left.length ? `${FAIL} left behind: ${left.join(' ')}\n` : `${OK} nothing left behind\n`);
  process.exit(130);
}

function preflight(o: Options): void {
  if (process.getuid?.() !== 0) throw new UsageError('the demo needs root: it creates network namespaces and loads BPF programs (sudo make demo)');
  for (const tool of ['ip', 'etcd', 'etcdctl', 'iperf3', 'ping', 'nsenter', 'iptables']) {
    if (runSync(['sh', '-c', `command -v ${tool}`], { allowFail: true }).code !== 0) throw new UsageError(`${tool} is not installed: run make setup`);
  }
  if (o.pods === 'cni' && !fs.existsSync(path.join(SYSTEM_CNI_DIR, 'bridge'))) throw new UsageError(`no CNI plugins in ${SYSTEM_CNI_DIR}: run make setup (Debian's containernetworking-plugins), or make demo PODS=bridge`);
  const reaped = reapStaleLabs();
  if (reaped.length) info(dim(`removed ${reaped.length} namespaces left by an earlier, killed run`));
}

/** 'agent ready', or the agent's exit as soon as it happens (the lab's waitForMsg only notices an exit at its deadline). */
function untilReady(agent: LabAgent, timeoutMs = 30_000): Promise<unknown> {
  return Promise.race([
    agent.waitForMsg('agent ready', timeoutMs),
    agent.exited.then((code) => Promise.reject(new Error(`agent exited (${code})`))),
  ]);
}

async function startHosts({ backend, dataplane, pods: podMode }: Options): Promise<{ hosts: LabHost[]; pods: DemoPod[] }> {
  const lab = state.lab!;
  const etcd = state.etcd!;
  step('Three simulated hosts on one underlay segment (192.0.2.0/24)');
  const hosts = await waiting('creating network namespaces h1, h2, h3', async () => {
    const out: LabHost[] = [];
    for (const [i, name] of ['h1', 'h2', 'h3'].entries()) out.push(await lab.addHost(name, { octet: 11 + i }));
    return out;
  }, (hs) => `hosts ${hs.map((h) => `${h.hostName} ${h.address}`).join(', ')}, behind a router at 192.0.2.1`);

  // As kube-flannel runs flanneld: the CNI bridge then leaves pod-to-pod traffic untranslated.
  const masq = podMode === 'cni' ? ['--ip-masq'] : [];
  step(`A weft agent on each host (--dataplane=${dataplane})`);
  shell(`weft agent --etcd-endpoints ${etcd.endpoint} --subnet-file <host>/subnet.env --bpf-pin-dir ${BPFFS}/<lab>/<host> --dataplane ${dataplane}${masq.map((f) => ` ${f}`).join('')}`);
  if (masq.length) info(dim('--ip-masq as kube-flannel runs flanneld: FLANNEL_IPMASQ=true, so the CNI bridge does not masquerade pod traffic'));
  for (const h of hosts) {
    const agent = startAgent(h, { etcdEndpoint: etcd.endpoint, dataplane, extra: masq });
    state.agents.push(agent);
    await waiting(`${h.hostName}: starting the agent`, async () => {
      try {
        await untilReady(agent);
      } catch (err) {
        const said = agent.lines.filter((l) => l.level >= 50).map((l) => l.msg).at(-1) ?? agent.stderr.trim().split('\n').at(-1) ?? (err as Error).message;
        throw new NotAvailable(`${h.hostName}'s agent did not start with --backend ${backend} --dataplane=${dataplane}:\n    ${said}`);
      }
    }, () => {
      const env = readEnvFile(subnetFile(h)) ?? {};
      const sel = agent.lines.find((l) => l.msg === 'dataplane selected' || l.msg === 'eBPF dataplane programmed');
      return `${h.hostName}: ready, leased ${env.FLANNEL_SUBNET?.replace(/\.1\//, '.0/') ?? '?'}${sel?.dataplane ? ` (${String(sel.dataplane)} dataplane)` : ''}`;
    });
  }

  const pods = podMode === 'cni' ? await cniPods(hosts) : await bridgePods(hosts);
  return { hosts, pods };
}

/** Two pods per host through weft's CNI plugin, invoked as a container runtime invokes it (lab/cni.ts). */
async function cniPods(hosts: LabHost[]): Promise<DemoPod[]> {
  step("weft's CNI plugin on each host, and two pods through it");
  shell(`weft install-cni --bin-dir <host>/cni/bin --conf-dir <host>/cni/net.d --subnet-file <host>/subnet.env`);
  const nets: CniNetwork[] = [];
  for (const h of hosts) nets.push(await CniNetwork.install(h));
  info(dim(`the conflist it wrote (kube-flannel's, with the lab's dataDir for flannel and host-local), ${nets[0].confFile}:`));
  output(fs.readFileSync(nets[0].confFile, 'utf8'));
  info(dim('each pod: ip netns add, then CNI ADD through the conflist (flannel -> bridge + host-local, then portmap), with CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH and the config on stdin'));
  const pods: DemoPod[] = [];
  for (const [i, h] of hosts.entries()) {
    for (const n of [1, 2]) {
      const name = `p${n}`;
      const a = await waiting(`${h.hostName}/${name}: CNI ADD`, async () => {
        const ns = await h.addPodNetns(name);
        const t0 = Date.now();
        return { att: await nets[i].add(`${h.hostName}-${name}`, ns), ms: Date.now() - t0 };
      }, ({ att, ms }) => `${h.hostName}/${name}: ${(att.result.ips as Array<{ address: string }>)[0].address} on cni0, gateway ${(att.result.ips as Array<{ gateway?: string }>)[0].gateway ?? '-'} (ADD ${ms} ms)`);
      pods.push({ name: `${h.hostName}/${name}`, ns: a.att.netns, ip: a.att.ip, host: h });
    }
  }
  return pods;
}

/** docker0 from subnet.env, as docker builds it with --bip=$FLANNEL_SUBNET --mtu=$FLANNEL_MTU, and two pods on it. */
async function bridgePods(hosts: LabHost[]): Promise<DemoPod[]> {
  step("Each host's docker0 bridge and two pods, from its subnet.env");
  info(dim('as docker does with --bip=$FLANNEL_SUBNET --mtu=$FLANNEL_MTU'));
  const pods: DemoPod[] = [];
  for (const h of hosts) {
    const env = readEnvFile(subnetFile(h))!;
    const subnet = IPNet.parse(env.FLANNEL_SUBNET)!;
    const mtu = Number(env.FLANNEL_MTU);
    await waiting(`${h.hostName}: docker0 ${env.FLANNEL_SUBNET} mtu ${mtu}`, async () => {
      await h.addBridge('docker0', env.FLANNEL_SUBNET, mtu);
      for (const n of [1, 2]) {
        const ip = subnet.hostAt(BigInt(1 + n));
        const ns = await h.addPod(`p${n}`, { bridge: 'docker0', cidr: `${ip}/${subnet.prefixLen}`, gateway: subnet.hostAt(1n), mtu });
        pods.push({ name: `${h.hostName}/p${n}`, ns, ip, host: h });
      }
    }, () => `${h.hostName}: docker0 ${env.FLANNEL_SUBNET} mtu ${mtu}, pods ${pods.filter((p) => p.host === h).map((p) => p.ip).join(' and ')}`);
  }
  return pods;
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, onSignal);
  const t0 = Date.now();
  console.log(bold(`weft demo: ${o.backend} backend, ${o.dataplane} dataplane, pods through ${o.pods === 'cni' ? "weft's CNI plugin" : 'a docker-style bridge'}`) + dim('  (Ctrl-C tears everything down)'));
  preflight(o);
  setSteps(11);
  try {
    step('A local etcd');
    state.lab = await Lab.create();
    state.etcd = await waiting('starting etcd in the lab router namespace', () => LabEtcd.start({ netns: state.lab!.router }), (e) => `etcd serving at ${e.endpoint}`);

    step('The network config, put with etcdctl');
    const config = JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: o.backend } });
    shell(`ETCDCTL_API=3 etcdctl --endpoints ${state.etcd.endpoint} put ${PREFIX}/config '${config}'`);
    info((await state.etcd.etcdctl(['put', `${PREFIX}/config`, config])).trim());

    const { hosts, pods } = await startHosts(o);

    step('The leases in etcd');
    await showLeases(state.etcd, PREFIX);

    step('subnet.env on each host');
    for (const h of hosts) {
      info(bold(`${h.hostName}:`) + ' ' + dim(subnetFile(h)));
      for (const line of fs.readFileSync(subnetFile(h), 'utf8').trim().split('\n')) info(`  ${line}`);
    }

    step('Pod-to-pod ping matrix (3 pings each; average round trip in ms)');
    const allOk = await pingMatrix(pods);

    step('iperf3 for 3 seconds, pod to pod across hosts');
    await iperfAcross(pods.find((p) => p.host === hosts[0])!, pods.find((p) => p.host === hosts[1])!);

    step(o.dataplane === 'netlink' ? "The dataplane on h1: what netlink mode programmed" : 'weft bpf peers on h1: the eBPF peer map');
    await showDataplane(hosts[0], o.dataplane, path.relative(process.cwd(), CLI));

    step('weft monitor on h1: a flow to h2 and a ping to an address no lease holds');
    await showMonitor(hosts[0], pods.find((p) => p.host === hosts[0])!, pods.find((p) => p.host === hosts[1])!, path.relative(process.cwd(), CLI));

    if (!allOk) info(red('some pods did not reach each other: see the matrix above'));
    return allOk ? 0 : 1;
  } catch (err) {
    if (err instanceof NotAvailable) {
      console.log(`\n${red(err.message)}`);
      if (/not available in this build/i.test(err.message)) info(yellow('the netlink dataplane is not in this build yet (issue 4 is finishing it); make demo runs the eBPF dataplane'));
      return 2;
    }
    throw err;
  } finally {
    console.log(`\n${bold('Teardown')}`);
    await waiting('stopping agents and etcd, deleting namespaces and pins', teardown);
    const left = leftovers();
    info(left.length ? `${FAIL} left behind: ${left.join(' ')}` : `${OK} nothing left behind (ip netns list and ${BPFFS} hold nothing of this run)`);
    info(dim(`${((Date.now() - t0) / 1000).toFixed(0)} s in all`));
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`demo: ${err.message}\nusage: make demo [BACKEND=vxlan|host-gw|ipip|udp] [DATAPLANE=ebpf|netlink|auto] [PODS=cni|bridge]`);
      process.exit(2);
    }
    console.error(`demo failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    process.exit(1);
  },
);
