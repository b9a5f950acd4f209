// `weft agent`: the per-host daemon, with flanneld's flags. This module is the
// command's definition only; what the agent needs loads when it runs (agent-run.ts).
import type { Argv, CommandModule, Options } from 'yargs';
import type { DataplaneChoice } from '../agent/dataplane.js';
import { DEFAULT_SUBNET_FILE } from '../core/paths.js';
import { loadRunner } from './runner.js';
import { etcdOptions, pinDirOption, statusSocketOption, withOptions, type EtcdArgs } from './options.js';

export interface AgentArgs extends EtcdArgs {
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
  'metrics-port': number;
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

const agentOptions = {
  iface: { type: 'string', array: true, default: [], describe: 'interface (name or IPv4 address) for the overlay; repeatable, first match wins' },
  'iface-regex': { type: 'string', array: true, default: [], describe: 'regex over interface names and addresses; repeatable; tried when no --iface matched' },
  'iface-can-reach': { type: 'string', describe: 'the interface of the route to this address (as `ip route get`); tried when no --iface or --iface-regex matched' },
  'public-ip': { type: 'string', describe: 'IPv4 address other hosts use to reach this one (default: the interface address)' },
  'public-ipv6': { type: 'string', describe: 'IPv6 address published in the lease' },
  'subnet-file': { type: 'string', default: DEFAULT_SUBNET_FILE, describe: 'where to write subnet.env' },
  'subnet-lease-renew-margin': { type: 'number', default: 60, describe: 'renew the lease this many minutes before it expires (1..1439)' },
  'subnet-lease-ttl': { type: 'number', default: 86400, describe: 'lease TTL in seconds (flannel: 24 h; lower only for testing)' },
  'ip-masq': { type: 'boolean', default: false, describe: "masquerade traffic from the Network to outside it (flannel's FLANNEL-POSTRTG chain); written to subnet.env as FLANNEL_IPMASQ" },
  'ip-masq-fully-random-disable': { type: 'boolean', default: false, describe: 'masquerade without --random-fully' },
  'iptables-forward-rules': { type: 'boolean', default: true, describe: 'ACCEPT forwarding from and to the Network (FLANNEL-FWD): docker sets the FORWARD policy to DROP' },
  'iptables-resync': { type: 'number', default: 5, describe: 'seconds between checks that the firewall rules are in place (put back if not)' },
  'healthz-ip': { type: 'string', default: '0.0.0.0', describe: 'address of the /healthz and /readyz endpoint' },
  'healthz-port': { type: 'number', default: 0, describe: 'port of the health endpoint: /healthz, /readyz and /metrics (0 = off)' },
  'metrics-port': { type: 'number', default: 0, describe: 'a port of its own for /metrics, on --healthz-ip (0 = only on the health port)' },
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
    return (await loadRunner('agent-run', () => import('./agent-run.js'))).runAgent(a);
  },
};
