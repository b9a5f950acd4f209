// `weft agent`: the per-host daemon, with flanneld's flags.
import type { Argv, CommandModule, Options } from 'yargs';
import { Agent } from '../agent/agent.js';
import { selectDataplane, type DataplaneChoice } from '../agent/dataplane.js';
import { selectInterface } from '../agent/iface.js';
import { snapshotInterfaces } from '../agent/iface-netlink.js';
import { preflight } from '../agent/preflight.js';
import { checkSubnetFile } from '../agent/subnet-env.js';
import { usageError, WeftError } from '../core/errors.js';
import { IPAddr } from '../core/ipnet.js';
import { ETCD_MAX_LEASE_TTL_SEC } from '../subnet/etcd-client.js';
import { createLogger } from '../core/log.js';
import { ebpfOptionsFromEnv } from '../dataplane/ebpf/index.js';
import { etcdFromArgs, etcdOptions, pinDirOption, withOptions, type EtcdArgs } from './options.js';
import { statusSocketOption } from './status.js';

interface AgentArgs extends EtcdArgs {
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
  if (ttl > ETCD_MAX_LEASE_TTL_SEC) throw usageError(`--subnet-lease-ttl ${ttl}: etcd grants leases of at most ${ETCD_MAX_LEASE_TTL_SEC} s; flannel's is 86400 (24 h)`);
  if (m * 60 >= ttl) throw usageError(`--subnet-lease-renew-margin ${m} min is not shorter than the lease TTL (${ttl} s): the lease would be renewed continuously`);
  if (!IPAddr.parse(a['healthz-ip'])) throw usageError(`--healthz-ip ${a['healthz-ip']}: not an IP address; give the address /healthz listens on, e.g. 0.0.0.0`);
  for (const f of ['etcd-keepalive-time', 'etcd-keepalive-timeout'] as const) {
    if (!(a[f] > 0) || !Number.isFinite(a[f])) throw usageError(`--${f} ${a[f]}: give a number of seconds above 0`);
  }
  checkSubnetFile(a['subnet-file']);
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
  handler: async (a) => {
    // Everything a run needs from the command line and the environment is checked before anything is leased or created.
    check(a);
    const log = createLogger({ level: a['log-level'] });
    const host = snapshotInterfaces();
    const selected = selectInterface(host, { iface: splitList(a.iface), ifaceRegex: splitList(a['iface-regex']), publicIP: a['public-ip'] });
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
  },
};
