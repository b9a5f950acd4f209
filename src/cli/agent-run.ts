// `weft agent` when it runs: checks what the command line and the environment
// say, then wires and runs the Agent until a signal stops it.
import v8 from 'node:v8';
import vm from 'node:vm';
import { Agent } from '../agent/agent.js';
import { lowMemoryNotification, mallocTrim } from '../native/addon.js';
import { selectDataplane } from '../agent/dataplane.js';
import { selectInterface } from '../agent/iface.js';
import { snapshotInterfaces } from '../agent/iface-netlink.js';
import { preflight } from '../agent/preflight.js';
import { checkSubnetFile } from '../agent/subnet-env.js';
import { usageError, WeftError } from '../core/errors.js';
import { IPAddr } from '../core/ipnet.js';
import { ETCD_MAX_LEASE_TTL_SEC } from '../subnet/etcd-client.js';
import { createLogger } from '../core/log.js';
import { ebpfOptionsFromEnv } from '../dataplane/ebpf/index.js';
import { checkFirewallTools, type FirewallOptions } from '../firewall/firewall.js';
import { SystemdNotifier } from '../agent/notify.js';
import { etcdFromArgs } from './options.js';
import type { AgentArgs } from './agent.js';

function splitList(v: string[] | string | undefined): string[] {
  const arr = Array.isArray(v) ? v : v ? [v] : [];
  return arr.flatMap((s) => String(s).split(',')).map((s) => s.trim()).filter(Boolean);
}

function check(a: AgentArgs): void {
  const m = a['subnet-lease-renew-margin'];
  if (!Number.isInteger(m) || m < 1 || m > 1439) {
    throw usageError(`--subnet-lease-renew-margin ${m}: must be a whole number of minutes from 1 to 1439 (the lease lives 24 h)`);
  }
  const p = a['healthz-port'];
  if (!Number.isInteger(p) || p < 0 || p > 65535) throw usageError(`--healthz-port ${p}: must be 0 (off) to 65535`);
  const mp = a['metrics-port'];
  if (!Number.isInteger(mp) || mp < 0 || mp > 65535) throw usageError(`--metrics-port ${mp}: must be 0 (/metrics on the health port only) to 65535`);
  if (mp && mp === p) throw usageError(`--metrics-port ${mp} is --healthz-port too: /metrics is served there already; give another port, or leave --metrics-port 0`);
  const ttl = a['subnet-lease-ttl'];
  if (!Number.isInteger(ttl) || ttl < 10) throw usageError(`--subnet-lease-ttl ${ttl}: must be at least 10 seconds`);
  if (ttl > ETCD_MAX_LEASE_TTL_SEC) throw usageError(`--subnet-lease-ttl ${ttl}: etcd grants leases of at most ${ETCD_MAX_LEASE_TTL_SEC} s; flannel's is 86400 (24 h)`);
  if (m * 60 >= ttl) throw usageError(`--subnet-lease-renew-margin ${m} min is not shorter than the lease TTL (${ttl} s): the lease would be renewed continuously`);
  if (!IPAddr.parse(a['healthz-ip'])) throw usageError(`--healthz-ip ${a['healthz-ip']}: not an IP address; give the address /healthz listens on, e.g. 0.0.0.0`);
  for (const f of ['etcd-keepalive-time', 'etcd-keepalive-timeout'] as const) {
    if (!(a[f] > 0) || !Number.isFinite(a[f])) throw usageError(`--${f} ${a[f]}: give a number of seconds above 0`);
  }
  checkSubnetFile(a['subnet-file']);
  const kube = KUBE_FLAGS.find((f) => a[f] !== undefined && a[f] !== false);
  if (kube) {
    throw usageError(`-${kube}: weft leases subnets from etcd, as flanneld does without -kube-subnet-mgr, and does not read the Kubernetes API; remove the Kubernetes flags and give -etcd-endpoints (and -etcd-prefix)`, `--${kube}`);
  }
}

/** flanneld's Kubernetes subnet manager and its settings: weft has no such mode, and says so rather than ignore them. */
const KUBE_FLAGS = ['kube-subnet-mgr', 'kube-api-url', 'kubeconfig-file', 'kube-annotation-prefix', 'net-config-path', 'set-node-network-unavailable'] as const;

/** glog's -v=N as a log level: flanneld's V(1..4) lines are debug detail. */
function glogLevel(v: number | undefined): string | undefined {
  if (v === undefined || v <= 0) return undefined;
  return v >= 5 ? 'trace' : 'debug';
}

export async function runAgent(a: AgentArgs): Promise<void> {
  // Everything a run needs from the command line and the environment is checked before anything is leased or created.
  check(a);
  const firewall: FirewallOptions = {
    ipMasq: a['ip-masq'],
    forwardRules: a['iptables-forward-rules'],
    randomFully: !a['ip-masq-fully-random-disable'],
    resyncSec: a['iptables-resync'],
  };
  checkFirewallTools(firewall);
  const log = createLogger({ level: a['log-level'] ?? glogLevel(a.v) });
  for (const f of ['logtostderr', 'vmodule', 'log_backtrace_at'] as const) {
    if (a[f] !== undefined) log.debug({ flag: `-${f}` }, "a glog flag of flanneld's, accepted and ignored: weft logs JSON lines to stdout");
  }
  const host = snapshotInterfaces();
  const selected = selectInterface(host, {
    iface: splitList(a.iface),
    ifaceRegex: splitList(a['iface-regex']),
    ifaceCanReach: a['iface-can-reach'],
    publicIP: a['public-ip'],
  });
  const makeDataplane = selectDataplane({ choice: a.dataplane, ebpf: ebpfOptionsFromEnv(), probeFail: process.env.WEFT_PROBE_FAIL });
  const agent = new Agent(
    {
      etcd: etcdFromArgs(a),
      subnetFile: a['subnet-file'],
      renewMarginMin: a['subnet-lease-renew-margin'],
      leaseTTLSec: a['subnet-lease-ttl'],
      ipMasq: a['ip-masq'],
      publicIPv6: a['public-ipv6'],
      healthzIP: a['healthz-ip'],
      healthzPort: a['healthz-port'],
      metricsPort: a['metrics-port'],
      dataplane: a.dataplane,
      bpfPinDir: a['bpf-pin-dir'],
      statusSocket: a['status-socket'],
      firewall,
      notify: SystemdNotifier.fromEnv(log) ?? undefined,
      onReady: collectAfterStart,
      host,
    },
    selected,
    log,
    makeDataplane,
  );
  // The host last: no other agent here, a pin dir that is root's (the flags and etcd options are checked by now).
  for (const note of preflight({ pinDir: a['bpf-pin-dir'], statusSocket: a['status-socket'], dataplane: a.dataplane }).notes) agent.note(note);
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      log.info({ signal: sig }, 'stopping; the lease stays in etcd for the next start');
      void agent.stop();
    });
  }
  try {
    await agent.run();
  } catch (err) {
    // Every fatal error reaches the log as one line (and stderr, for a terminal), then exit 1; only a bug carries its stack.
    if (err instanceof WeftError) log.fatal(err.message);
    else log.fatal({ stack: (err as Error).stack }, (err as Error).message);
    await agent.stop().catch((stopErr: unknown) => log.error({ err: (stopErr as Error).message }, 'stopping after the fatal error failed'));
    if (!process.stdout.isTTY) process.stderr.write(`weft: ${(err as Error).message}\n`);
    process.exit(1);
  }
  process.exit(0);
}

/**
 * Once the agent is ready, what its start used goes back. The start lets V8's
 * young generation grow (at its first size, a 1 MB semi-space, decoding
 * 65,536 leases took 340 scavenges and 0.5 s; grown to 16 MB, 30 and
 * 0.25 s); an agent's memory is then its peers, and a young generation kept
 * at 32 MB was a quarter of its RSS at 10,000 leases. So: no more growth, and
 * one collection for memory, which shrinks the young generation to its first
 * size and collects the old one (V8 collects it only when it allocates more,
 * which an idle agent hardly does). gc() does the latter only; it exists with
 * --expose-gc, which a context made after the flag is set receives.
 */
function collectAfterStart(): void {
  setImmediate(() => {
    v8.setFlagsFromString('--semi-space-growth-factor=1');
    try {
      lowMemoryNotification();
      // What the collection freed outside V8's heap (Buffers) goes back too.
      mallocTrim();
    } catch {
      // No addon (a --dataplane=none build): the old generation is collected, the young one keeps its size.
      v8.setFlagsFromString('--expose-gc');
      (vm.runInNewContext('gc') as () => void)();
    }
  });
}
