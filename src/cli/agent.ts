// `weft agent`: the per-host daemon, with flanneld's flags. This module is the
// command's definition only; what the agent needs loads when it runs (agent-run.ts).
import type { Argv, CommandModule, Options } from 'yargs';
import type { DataplaneChoice } from '../agent/dataplane.js';
import { etcdOptions, pinDirOption, statusSocketOption, withOptions, type EtcdArgs } from './options.js';

export interface AgentArgs extends EtcdArgs {
  iface: string[];
  'iface-regex': string[];
  'public-ip'?: string;
  'public-ipv6'?: string;
  'subnet-file': string;
  'subnet-lease-renew-margin': number;
  'subnet-lease-ttl': number;
  'ip-masq': boolean;
  'healthz-ip': string;
  'healthz-port': number;
  dataplane: DataplaneChoice;
  'bpf-pin-dir': string;
  'log-level': string;
  'status-socket': string;
}

const agentOptions = {
  iface: { type: 'string', array: true, default: [], describe: 'interface (name or IPv4 address) for the overlay; repeatable, first match wins' },
  'iface-regex': { type: 'string', array: true, default: [], describe: 'regex over interface names and addresses; repeatable' },
  'public-ip': { type: 'string', describe: 'IPv4 address other hosts use to reach this one (default: the interface address)' },
  'public-ipv6': { type: 'string', describe: 'IPv6 address published in the lease' },
  'subnet-file': { type: 'string', default: '/run/flannel/subnet.env', describe: 'where to write subnet.env' },
  'subnet-lease-renew-margin': { type: 'number', default: 60, describe: 'renew the lease this many minutes before it expires (1..1439)' },
  'subnet-lease-ttl': { type: 'number', default: 86400, describe: 'lease TTL in seconds (flannel: 24 h; lower only for testing)' },
  'ip-masq': { type: 'boolean', default: false, describe: 'written to subnet.env as FLANNEL_IPMASQ' },
  'healthz-ip': { type: 'string', default: '0.0.0.0', describe: 'address of the /healthz and /readyz endpoint' },
  'healthz-port': { type: 'number', default: 0, describe: 'port of the health endpoint (0 = off)' },
  dataplane: { choices: ['auto', 'ebpf', 'netlink', 'none'] as const, default: 'auto' as const, describe: 'auto: eBPF where the kernel supports it, else netlink (WEFT_PROBE_FAIL=bpf|verifier|clsact|bpffs fails that check on purpose, for testing)' },
  'log-level': { choices: ['trace', 'debug', 'info', 'warn', 'error'], default: 'info', describe: 'log level' },
} satisfies Record<string, Options>;

/** The flags FLANNELD_<FLAG> variables may set for `weft agent`. */
export const agentEnvFlags = [...Object.keys(etcdOptions), ...Object.keys(pinDirOption), ...Object.keys(agentOptions), ...Object.keys(statusSocketOption)];

export const agentCommand: CommandModule<object, AgentArgs> = {
  command: 'agent',
  describe: 'run the per-host agent: lease a subnet, write subnet.env, program the dataplane',
  builder: (y: Argv) =>
    withOptions(y, etcdOptions, pinDirOption, agentOptions, statusSocketOption) as unknown as Argv<AgentArgs>,
  handler: async (a) => (await import('./agent-run.js')).runAgent(a),
};
