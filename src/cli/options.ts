// Options shared by several commands, named as flanneld names them. Each is
// also read from FLANNELD_<FLAG> (upper case, '-' -> '_') when the flag is absent
// (see envArgs: only the flags of the command being run are taken from the
// environment, so a FLANNELD_ variable meant for flanneld alone is ignored, not fatal).
// Light on purpose: every command's definition imports this module, and so
// does `weft --version`; nothing here may load etcd, gRPC or the addon
// (test/unit/cli-startup.test.ts).
import type { Argv, Arguments, Options } from 'yargs';
import type { EtcdOptions } from '../subnet/registry.js';
import { DEFAULT_KEEPALIVE_TIME_MS, DEFAULT_KEEPALIVE_TIMEOUT_MS } from '../subnet/etcd-defaults.js';

/** flannel's default etcd prefix: `<prefix>/config` and `<prefix>/subnets/` live under it. */
export const DEFAULT_PREFIX = '/coreos.com/network';
export const DEFAULT_PIN_DIR = '/sys/fs/bpf/weft';
export const DEFAULT_STATUS_SOCKET = '/run/weft/weft.sock';

export const etcdOptions = {
  'etcd-endpoints': { type: 'string', default: 'http://127.0.0.1:2379', describe: 'comma-separated etcd endpoints', group: 'etcd:' },
  'etcd-prefix': { type: 'string', default: DEFAULT_PREFIX, describe: 'etcd prefix holding config and subnets', group: 'etcd:' },
  'etcd-cafile': { type: 'string', describe: 'CA file for https endpoints', group: 'etcd:' },
  'etcd-certfile': { type: 'string', describe: 'client certificate (with --etcd-keyfile)', group: 'etcd:' },
  'etcd-keyfile': { type: 'string', describe: 'client key (with --etcd-certfile)', group: 'etcd:' },
  'etcd-username': { type: 'string', describe: 'etcd auth user', group: 'etcd:' },
  'etcd-password': { type: 'string', describe: 'etcd auth password (never logged)', group: 'etcd:' },
  'etcd-keepalive-time': { type: 'number', default: DEFAULT_KEEPALIVE_TIME_MS / 1000, describe: 'seconds of silence on an etcd connection before a keepalive ping', group: 'etcd:' },
  'etcd-keepalive-timeout': { type: 'number', default: DEFAULT_KEEPALIVE_TIMEOUT_MS / 1000, describe: 'seconds to wait for the ping\'s answer before dropping the connection', group: 'etcd:' },
} satisfies Record<string, Options>;

export interface EtcdArgs {
  'etcd-endpoints': string;
  'etcd-prefix': string;
  'etcd-cafile'?: string;
  'etcd-certfile'?: string;
  'etcd-keyfile'?: string;
  'etcd-username'?: string;
  'etcd-password'?: string;
  'etcd-keepalive-time': number;
  'etcd-keepalive-timeout': number;
}

export function etcdFromArgs(a: EtcdArgs): EtcdOptions {
  return {
    endpoints: a['etcd-endpoints'].split(',').map((s) => s.trim()).filter(Boolean),
    prefix: a['etcd-prefix'],
    caFile: a['etcd-cafile'],
    certFile: a['etcd-certfile'],
    keyFile: a['etcd-keyfile'],
    username: a['etcd-username'],
    password: a['etcd-password'],
    keepaliveTimeMs: a['etcd-keepalive-time'] * 1000,
    keepaliveTimeoutMs: a['etcd-keepalive-timeout'] * 1000,
  };
}

/**
 * A flag given twice takes its last value, as flanneld's Go flags do; only
 * the repeatable ones (array options) collect. yargs would otherwise hand a
 * single-valued flag over as an array. A global middleware, before validation.
 */
export function lastWins(argv: Arguments, ...rest: unknown[]): void {
  // yargs passes itself as the second argument (its typings leave it out): it knows which options are arrays.
  const y = rest[0] as { getOptions(): { array: string[] } };
  const arrays = new Set(y.getOptions().array);
  const kebab = (k: string): string => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  for (const [k, v] of Object.entries(argv)) {
    if (k === '_' || k === '$0' || !Array.isArray(v) || arrays.has(k) || arrays.has(kebab(k))) continue;
    argv[k] = v.at(-1);
  }
}

/** yargs' multi-line messages as one line: "Invalid values: Argument: x, Given: ..." says what to choose instead. */
export function oneLineUsage(msg: string): string {
  const m = /^Invalid values:\s*Argument: ([\w-]+), Given: (.*?), Choices: (.*)$/s.exec(msg.trim());
  if (m) return `--${m[1]} ${m[2]}: choose one of ${m[3].replace(/"/g, '').replace(/\s+/g, ' ')}`;
  return msg.replace(/\s*\n\s*/g, '; ');
}

export const pinDirOption = {
  'bpf-pin-dir': { type: 'string', default: DEFAULT_PIN_DIR, describe: 'bpffs directory of the pinned maps' },
} satisfies Record<string, Options>;

/** `weft bpf ...` names the agent's pin dir the same way, and takes --pin-dir for short. */
export const bpfPinDirOption = {
  'bpf-pin-dir': { ...pinDirOption['bpf-pin-dir'], alias: 'pin-dir', describe: "bpffs directory of the pinned maps (the agent's --bpf-pin-dir)" },
} satisfies Record<string, Options>;

export const statusSocketOption = {
  'status-socket': { type: 'string', default: DEFAULT_STATUS_SOCKET, describe: "unix socket of the agent's status API (mode 0600)" },
} satisfies Record<string, Options>;

export const outputOption = {
  output: { alias: 'o', choices: ['table', 'json'] as const, default: 'table' as const, describe: 'output format' },
} satisfies Record<string, Options>;

/** Adds option groups to a yargs builder. */
export function withOptions<T>(y: Argv<T>, ...groups: Array<Record<string, Options>>): Argv<T> {
  let out = y;
  for (const g of groups) out = out.options(g) as Argv<T>;
  return out;
}

/** FLANNELD_<FLAG> for a flag name. */
export function envName(flag: string): string {
  return `FLANNELD_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/**
 * Arguments to append for the FLANNELD_ variables of `flags` whose flag is not
 * on the command line. Variables for flags this command does not have are
 * left alone (flanneld's own, e.g. FLANNELD_KUBE_SUBNET_MGR).
 */
export function envArgs(args: string[], flags: string[], env: NodeJS.ProcessEnv = process.env): string[] {
  const given = new Set(args.filter((a) => a.startsWith('--')).map((a) => a.slice(2).split('=')[0]));
  const out: string[] = [];
  for (const flag of flags) {
    const value = env[envName(flag)];
    // An empty variable is unset, as flanneld's flagutil.SetFlagsFromEnv reads it.
    if (!value || given.has(flag)) continue;
    out.push(`--${flag}=${value}`);
  }
  return out;
}
