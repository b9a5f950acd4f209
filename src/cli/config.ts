// `weft config check FILE`: validates a network config offline and prints it
// with every default filled in. The definition only; config-run.ts does it.
import type { Argv, CommandModule } from 'yargs';

export interface CheckArgs {
  file: string;
}

const check: CommandModule<object, CheckArgs> = {
  command: 'check <file>',
  describe: 'validate a network config file (- for stdin) and print the effective config',
  builder: (y: Argv) => y.positional('file', { type: 'string', demandOption: true }) as unknown as Argv<CheckArgs>,
  handler: async (a) => (await import('./config-run.js')).checkConfig(a),
};

/**
 * `config check <file>` as scripts and pre-commit hooks run it (a file, or -
 * for stdin, and nothing more) is run without yargs (src/cli.ts), whose parser
 * is a third of this command's start. Any other line (--help, a flag, no file)
 * goes through yargs; test/unit/cli.test.ts checks that yargs reads each line
 * this accepts to the same arguments.
 */
export function plainCheck(args: readonly string[]): CheckArgs | undefined {
  if (args.length !== 3 || args[0] !== 'config' || args[1] !== 'check') return undefined;
  const file = args[2];
  return file === '-' || (file !== '' && !file.startsWith('-')) ? { file } : undefined;
}

export const configCommand: CommandModule = {
  command: 'config <command>',
  describe: 'network config tools',
  builder: (y: Argv) => y.command(check).demandCommand(1),
  handler: () => undefined,
};
