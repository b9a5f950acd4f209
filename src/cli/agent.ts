// `weft agent`: the per-host daemon, with flanneld's flags.
import type { Argv, CommandModule, Options } from 'yargs';
import { Agent } from '../agent/agent.js';
import { selectDataplane, type DataplaneChoice } from '../agent/dataplane.js';
import { selectInterface } from '../agent/iface.js';
import { snapshotInterfaces } from '../agent/iface-netlink.js';
import { usageError, WeftError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { ebpfOptionsFromEnv } from '../dataplane/ebpf/index.js';
import { checkFirewallTools, type FirewallOptions } from '../firewall/firewall.js';
import { SystemdNotifier } from '../agent/notify.js';
import { etcdFromArgs, etcdOptions, pinDirOption, withOptions, type EtcdArgs } from './options.js';
import { statusSocketOption } from './status.js';

interface AgentArgs extends EtcdArgs {
  iface: string[];
  'iface-regex': string[];
  'iface-can-reach'?: string;
  'public-ip'?: string;
  'public-ipv6'?: string;
  'subnet-file': string;
  'subnet-lease-renew-margin': number;
  'subnet-lease-ttl': number;
  'ip-masq': boolean;
  'ip-masq-fully-random-disable': boolean;
  'iptables-forward-rules': boolean;
  'iptables-resync': number;
  'healthz-ip': string;
  'healthz-port': number;
  dataplane: DataplaneChoice;
  'bpf-pin-dir': string;
  'log-level'?: string;
  'status-socket': string;
  v?: number;
  logtostderr?: boolean;
  vmodule?: string;
  log_backtrace_at?: string;
  'kube-subnet-mgr'?: boolean;
  'kube-api-url'?: string;
  'kubeconfig-file'?: string;
  'kube-annotation-prefix'?: string;
  'net-config-path'?: string;
  'set-node-network-unavailable'?: boolean;
}

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
  const ttl = a['subnet-lease-ttl'];
  if (!Number.isInteger(ttl) || ttl < 10) throw usageError(`--subnet-lease-ttl ${ttl}: must be at least 10 seconds`);
  if (m * 60 >= ttl) throw usageError(`--subnet-lease-renew-margin ${m} min is not shorter than the lease TTL (${ttl} s): the lease would be renewed continuously`);
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

const agentOptions = {
  iface: { type: 'string', array: true, default: [], describe: 'interface (name or IPv4 address) for the overlay; repeatable, first match wins' },
  'iface-regex': { type: 'string', array: true, default: [], describe: 'regex over interface names and addresses; repeatable; tried when no --iface matched' },
  'iface-can-reach': { type: 'string', describe: 'the interface of the route to this address (as `ip route get`); tried when no --iface or --iface-regex matched' },
  'public-ip': { type: 'string', describe: 'IPv4 address other hosts use to reach this one (default: the interface address)' },
  'public-ipv6': { type: 'string', describe: 'IPv6 address published in the lease' },
  'subnet-file': { type: 'string', default: '/run/flannel/subnet.env', describe: 'where to write subnet.env' },
  'subnet-lease-renew-margin': { type: 'number', default: 60, describe: 'renew the lease this many minutes before it expires (1..1439)' },
  'subnet-lease-ttl': { type: 'number', default: 86400, describe: 'lease TTL in seconds (flannel: 24 h; lower only for testing)' },
  'ip-masq': { type: 'boolean', default: false, describe: "masquerade traffic from the Network to outside it (flannel's FLANNEL-POSTRTG chain); written to subnet.env as FLANNEL_IPMASQ" },
  'ip-masq-fully-random-disable': { type: 'boolean', default: false, describe: 'masquerade without --random-fully' },
  'iptables-forward-rules': { type: 'boolean', default: true, describe: 'ACCEPT forwarding from and to the Network (FLANNEL-FWD): docker sets the FORWARD policy to DROP' },
  'iptables-resync': { type: 'number', default: 5, describe: 'seconds between checks that the firewall rules are in place (put back if not)' },
  'healthz-ip': { type: 'string', default: '0.0.0.0', describe: 'address of the /healthz and /readyz endpoint' },
  'healthz-port': { type: 'number', default: 0, describe: 'port of the health endpoint (0 = off)' },
  dataplane: { choices: ['auto', 'ebpf', 'netlink', 'none'] as const, default: 'auto' as const, describe: 'auto: eBPF where the kernel supports it, else netlink (WEFT_PROBE_FAIL=bpf|verifier|clsact|bpffs fails that check on purpose, for testing)' },
  'log-level': { choices: ['trace', 'debug', 'info', 'warn', 'error'], describe: 'log level (default info, or WEFT_LOG_LEVEL)' },
} satisfies Record<string, Options>;

/** flanneld's flags that have no meaning here: glog's (-v maps to the log level), and the Kubernetes ones, which are refused. */
const flanneldOnlyOptions = {
  v: { type: 'number', hidden: true, describe: "glog's verbosity: 1 and up is --log-level debug, 5 and up trace" },
  logtostderr: { type: 'boolean', hidden: true },
  vmodule: { type: 'string', hidden: true },
  log_backtrace_at: { type: 'string', hidden: true },
  'kube-subnet-mgr': { type: 'boolean', hidden: true },
  'kube-api-url': { type: 'string', hidden: true },
  'kubeconfig-file': { type: 'string', hidden: true },
  'kube-annotation-prefix': { type: 'string', hidden: true },
  'net-config-path': { type: 'string', hidden: true },
  'set-node-network-unavailable': { type: 'boolean', hidden: true },
} satisfies Record<string, Options>;

/** Every flag of `weft agent` (goflags.ts reads flanneld's command lines with it). */
export const agentFlags: Record<string, Options> = { ...etcdOptions, ...pinDirOption, ...agentOptions, ...statusSocketOption, ...flanneldOnlyOptions };

/** The flags FLANNELD_<FLAG> variables may set for `weft agent`. */
export const agentEnvFlags = Object.keys(agentFlags);

export const agentCommand: CommandModule<object, AgentArgs> = {
  command: 'agent',
  describe: 'run the per-host agent: lease a subnet, write subnet.env, program the dataplane',
  builder: (y: Argv) =>
    withOptions(y, etcdOptions, pinDirOption, agentOptions, statusSocketOption, flanneldOnlyOptions) as unknown as Argv<AgentArgs>,
  handler: async (a) => {
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
    const selected = selectInterface(snapshotInterfaces(), {
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
        dataplane: a.dataplane,
        bpfPinDir: a['bpf-pin-dir'],
        statusSocket: a['status-socket'],
        firewall,
        notify: SystemdNotifier.fromEnv(log) ?? undefined,
      },
      selected,
      log,
      makeDataplane,
    );
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
  },
};
