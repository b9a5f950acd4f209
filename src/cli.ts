#!/usr/bin/env node
// weft: a flannel-compatible overlay agent with an eBPF dataplane.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { agentCommand, agentEnvFlags } from './cli/agent.js';
import { configCommand } from './cli/config.js';
import { statusCommand, statusEnvFlags } from './cli/status.js';
import { bpfCommand, bpfEnvFlags } from './cli/bpf.js';
import { leasesCommand, leasesEnvFlags } from './cli/leases.js';
import { uninstallCommand } from './cli/uninstall.js';
import { envArgs, lastWins, oneLineUsage } from './cli/options.js';
import { WeftError, exitCodeOf, usageError } from './core/errors.js';

/**
 * The one place an error ends a command: a WeftError is the user's to act on
 * and prints as one line; anything else is a bug in weft, printed as one line
 * too (WEFT_DEBUG=1 adds the stack).
 */
function report(err: unknown): never {
  if (err instanceof WeftError) {
    process.stderr.write(`weft: ${err.message}\n`);
    process.exit(exitCodeOf(err));
  }
  const e = err as Error;
  process.stderr.write(`weft: ${e?.message ?? String(err)}\n`);
  if (process.env.WEFT_DEBUG) process.stderr.write(`${e?.stack}\n`);
  process.exit(exitCodeOf(err));
}

/** Per command, the flags that FLANNELD_<FLAG> environment variables may set. */
const ENV_FLAGS: Record<string, string[]> = {
  agent: agentEnvFlags,
  leases: leasesEnvFlags,
  status: statusEnvFlags,
  bpf: bpfEnvFlags,
  uninstall: ['bpf-pin-dir'],
};

const args = hideBin(process.argv);
const command = args.find((a) => !a.startsWith('-')) ?? '';
args.push(...envArgs(args, ENV_FLAGS[command] ?? []));

try {
  await yargs(args)
    .scriptName('weft')
    .command(agentCommand)
    .command(configCommand)
    .command(leasesCommand)
    .command(statusCommand)
    .command(bpfCommand)
    .command(uninstallCommand)
    .middleware(lastWins, true)
    .demandCommand(1, 'name a command: weft <command> --help')
    .strict()
    .help()
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((msg, err) => {
      if (err) throw err;
      throw usageError(`${oneLineUsage(msg)} (see weft --help)`);
    })
    .parseAsync();
} catch (err) {
  report(err);
}
