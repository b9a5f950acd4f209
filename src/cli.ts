#!/usr/bin/env node
// weft: a flannel-compatible overlay agent with an eBPF dataplane.
// Only the commands' definitions load here (src/cli/<command>.ts); a command's
// own modules (etcd and gRPC, protobufjs, pino, the native addon) load when it
// runs, so --version, --help and `config check` start fast
// (test/unit/cli-startup.test.ts keeps it so); the bundle answers --help from
// pages rendered when it was built (src/cli/help-pages.ts).
import { agentCommand, agentEnvFlags } from './cli/agent.js';
import { configCommand } from './cli/config.js';
import { statusCommand, statusEnvFlags } from './cli/status.js';
import { bpfCommand, bpfEnvFlags } from './cli/bpf.js';
import { leasesCommand, leasesEnvFlags } from './cli/leases.js';
import { uninstallCommand } from './cli/uninstall.js';
import { monitorCommand, monitorEnvFlags } from './cli/monitor.js';
import { installCniCommand } from './cli/install-cni.js';
import { mkDockerOptsCommand } from './cli/mk-docker-opts.js';
import { migrateV2Command, migrateEnvFlags } from './cli/migrate-v2.js';
import { envArgs, lastWins, oneLineUsage, pinDirOption } from './cli/options.js';
import { commandLine } from './cli/goflags.js';
import { MAX_HELP_WIDTH, RENDERED_HELP, renderedHelpPage } from './cli/help-pages.js';
import { plainLine } from './cli/plain.js';
import { WeftError, exitCodeOf, usageError } from './core/errors.js';
import { weftVersion } from './core/version.js';

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
  monitor: monitorEnvFlags,
  uninstall: Object.keys(pinDirOption),
  'migrate-v2': migrateEnvFlags,
};

/**
 * One function rather than top-level await: the bundle (packaging/bundle-cli.mjs)
 * is CommonJS, which Node loads faster than an ES module.
 */
async function main(): Promise<void> {
  let args: string[];
  try {
    // flanneld's command line (Go's flag syntax, or weft invoked as flanneld) as yargs reads it.
    args = commandLine(process.argv);
  } catch (err) {
    report(err);
  }

  // `weft --version`, as scripts and probes ask it, is answered before yargs loads: yargs is most of
  // what is left of a start (its text wrapping builds an Intl.Segmenter when it loads).
  if (args.length === 1 && args[0] === '--version') {
    process.stdout.write(`${weftVersion()}\n`);
    process.exit(0);
  }
  const command = args.find((a) => !a.startsWith('-')) ?? '';
  args.push(...envArgs(args, ENV_FLAGS[command] ?? []));
  // A reader that stops early (`weft bpf peers | head`) closes the pipe: the listing ends there, as it asked,
  // with no stack trace and exit 0. Not for the agent, whose log this is, nor weft monitor, which stops by itself.
  if (command !== 'agent' && command !== 'monitor') {
    process.stdout.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' ? process.exit(0) : report(err)));
  }

  const width = Math.min(MAX_HELP_WIDTH, process.stdout.columns || MAX_HELP_WIDTH);
  const page = renderedHelpPage(RENDERED_HELP, args, width, process.env);
  if (page !== undefined) {
    process.stdout.write(page);
    process.exit(0);
  }
  // The lines scripts run most (config check FILE, weft bpf ...) go straight to their handlers.
  const plain = plainLine(args);
  if (plain) {
    try {
      await plain.handler(plain.args);
    } catch (err) {
      report(err);
    }
    return;
  }
  const { default: yargs } = await import('yargs');

  try {
    await yargs(args)
      .scriptName('weft')
      .version(weftVersion())
      .command(agentCommand)
      .command(configCommand)
      .command(leasesCommand)
      .command(statusCommand)
      .command(bpfCommand)
      .command(monitorCommand)
      .command(uninstallCommand)
      .command(installCniCommand)
      .command(mkDockerOptsCommand)
      .command(migrateV2Command)
      .middleware(lastWins, true)
      .demandCommand(1, 'name a command: weft <command> --help')
      .strict()
      .help()
      .wrap(width)
      .fail((msg, err) => {
        if (err) throw err;
        throw usageError(`${oneLineUsage(msg)} (see weft --help)`);
      })
      .parseAsync();
  } catch (err) {
    report(err);
  }
}

void main();
