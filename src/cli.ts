#!/usr/bin/env node
// weft: a flannel-compatible overlay agent with an eBPF dataplane.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { agentCommand, agentEnvFlags } from './cli/agent.js';
import { configCommand } from './cli/config.js';
import { statusCommand, statusEnvFlags } from './cli/status.js';
import { bpfCommand, bpfEnvFlags } from './cli/bpf.js';
import { leasesCommand, leasesEnvFlags } from './cli/leases.js';
import { CliError } from './cli/table.js';
import { uninstallCommand } from './cli/uninstall.js';
import { envArgs, UsageError } from './cli/options.js';
import { ConfigError } from './config/network.js';

function report(err: unknown): never {
  if (err instanceof CliError) {
    process.stderr.write(`weft: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  if (err instanceof UsageError) {
    process.stderr.write(`weft: ${err.message}\n`);
    process.exit(2);
  }
  if (err instanceof ConfigError) {
    process.stderr.write(`weft: ${err.message}\n`);
    process.exit(1);
  }
  const e = err as Error & { code?: string };
  process.stderr.write(`weft: ${e.message}\n`);
  if (process.env.WEFT_DEBUG) process.stderr.write(`${e.stack}\n`);
  process.exit(1);
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
    .demandCommand(1, 'name a command: weft <command> --help')
    .strict()
    .help()
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(`${msg} (see weft --help)`);
    })
    .parseAsync();
} catch (err) {
  report(err);
}
