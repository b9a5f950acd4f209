// `weft config check FILE`: validates a network config offline and prints it
// with every default filled in. The definition only; config-run.ts does it.
import type { Argv, CommandModule } from 'yargs';

export interface CheckArgs {
  file: string;
}

export const checkCommand: CommandModule<object, CheckArgs> = {
  command: 'check <file>',
  describe: 'validate a network config file (- for stdin) and print the effective config',
  builder: (y: Argv) => y.positional('file', { type: 'string', demandOption: true }) as unknown as Argv<CheckArgs>,
  handler: async (a) => (await import('./config-run.js')).checkConfig(a),
};

export const configCommand: CommandModule = {
  command: 'config <command>',
  describe: 'network config tools',
  builder: (y: Argv) => y.command(checkCommand).demandCommand(1),
  handler: () => undefined,
};
