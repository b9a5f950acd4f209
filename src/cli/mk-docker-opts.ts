// `weft mk-docker-opts`: flannel's mk-docker-opts.sh, byte for byte: docker's
// daemon options from subnet.env, for `dockerd $DOCKER_OPTS` or a unit's
// EnvironmentFile. Same flags (getopts "f:d:ick:m": flannel's own script
// forgets the m), same lines in the same order, the same leading and
// trailing spaces in the combined value.
import fs from 'node:fs';
import path from 'node:path';
import type { Argv, CommandModule, Options } from 'yargs';
import { usageError } from '../core/errors.js';
import { DEFAULT_SUBNET_FILE } from '../core/paths.js';

const options = {
  f: { type: 'string', default: DEFAULT_SUBNET_FILE, describe: 'the subnet file to read' },
  d: { type: 'string', default: '/run/docker_opts.env', describe: 'the file to write (truncated)' },
  i: { type: 'boolean', default: false, describe: 'each option as its own variable, e.g. DOCKER_OPT_MTU="--mtu=1450"' },
  c: { type: 'boolean', default: false, describe: 'all options in one variable (-k); without -i or -c, both' },
  k: { type: 'string', default: 'DOCKER_OPTS', describe: 'the name of the combined variable' },
  m: { type: 'boolean', default: false, describe: 'no --ip-masq=false even when subnet.env says FLANNEL_IPMASQ=true (docker before 1.3)' },
} satisfies Record<string, Options>;

interface MkDockerOptsArgs {
  f: string;
  d: string;
  i: boolean;
  c: boolean;
  k: string;
  m: boolean;
}

const TAKES_VALUE = new Set(['f', 'd', 'k']);

/**
 * The script's arguments as bash's getopts reads them (`-ic`, `-kKEY`,
 * `-k KEY`, a stop at `--` or at the first word), in the one form yargs
 * reads without surprises.
 */
export function getoptsArgs(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      i++;
      if (i < args.length) throw usageError(`unexpected argument ${JSON.stringify(args[i])}: weft mk-docker-opts takes only options`);
      break;
    }
    if (a.length < 2 || a[0] !== '-') throw usageError(`unexpected argument ${JSON.stringify(a)}: weft mk-docker-opts takes only options`);
    // weft's own spelling of the two it shares with every command.
    if (a === '--help' || a === '--version') {
      out.push(a);
      continue;
    }
    for (let j = 1; j < a.length; j++) {
      const opt = a[j];
      if (TAKES_VALUE.has(opt)) {
        let value = a.slice(j + 1);
        if (!value) {
          if (i + 1 >= args.length) throw usageError(`option requires an argument -- ${opt} (see weft mk-docker-opts --help)`);
          value = args[++i];
        }
        out.push(`--${opt}=${value}`);
        break;
      }
      if (!(opt in options) && opt !== 'h') throw usageError(`illegal option -- ${opt} (see weft mk-docker-opts --help)`);
      out.push(opt === 'h' ? '--help' : `--${opt}`);
    }
  }
  return out;
}

export interface DockerOptsInput {
  /** The variables the script's `source` of subnet.env defines. */
  subnetEnv: Record<string, string>;
  /** The script's own environment (DOCKER_OPT_* and the combined key show through, as in bash). */
  environ: NodeJS.ProcessEnv;
  individual: boolean;
  combined: boolean;
  key: string;
  ipMasq: boolean;
}

/** The file mk-docker-opts.sh writes. */
export function dockerOpts(o: DockerOptsInput): string {
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(o.environ)) if (v !== undefined) vars[k] = v;
  Object.assign(vars, o.subnetEnv);
  if (vars.FLANNEL_SUBNET) vars.DOCKER_OPT_BIP = `--bip=${vars.FLANNEL_SUBNET}`;
  if (vars.FLANNEL_MTU) vars.DOCKER_OPT_MTU = `--mtu=${vars.FLANNEL_MTU}`;
  if (vars.FLANNEL_IPMASQ === 'true' && o.ipMasq) vars.DOCKER_OPT_IPMASQ = '--ip-masq=false';
  const [individual, combined] = !o.individual && !o.combined ? [true, true] : [o.individual, o.combined];
  let all = `${vars[o.key] ?? ''} `;
  let out = '';
  // compgen -v DOCKER_OPT_: every such variable, sorted by name.
  for (const name of Object.keys(vars).filter((k) => k.startsWith('DOCKER_OPT_')).sort()) {
    if (individual) out += `${name}="${vars[name]}"\n`;
    all += `${vars[name]} `;
  }
  if (combined) out += `${o.key}="${all}"\n`;
  return out;
}

export const mkDockerOptsCommand: CommandModule<object, MkDockerOptsArgs> = {
  command: 'mk-docker-opts',
  describe: "write docker's daemon options (--bip, --mtu, --ip-masq) from subnet.env, as flannel's mk-docker-opts.sh",
  builder: (y: Argv) =>
    (y.options(options) as Argv).epilogue(
      'Flags as the script takes them: -f FILE -d FILE -i -c -k KEY -m, clustered (-ic) or with the value attached (-kKEY).',
    ) as unknown as Argv<MkDockerOptsArgs>,
  handler: async (a) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(a.k)) throw usageError(`-k ${a.k}: not a shell variable name`, '-k');
    // Loaded when the command runs: it brings ipnet and ipaddr.js, which every other command's start would pay for.
    const { readEnvFile } = await import('../agent/subnet-env.js');
    const text = dockerOpts({ subnetEnv: readEnvFile(a.f) ?? {}, environ: process.env, individual: a.i, combined: a.c, key: a.k, ipMasq: !a.m });
    // Written whole (temporary file and rename): the script truncates first, so a reader could see it empty.
    const dir = path.dirname(a.d);
    fs.mkdirSync(dir, { recursive: true });
    const tmp = path.join(dir, `.${path.basename(a.d)}.${process.pid}.tmp`);
    try {
      fs.writeFileSync(tmp, text, { mode: 0o644 });
      fs.renameSync(tmp, a.d);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw usageError(`-d ${a.d}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, '-d');
    }
  },
};
