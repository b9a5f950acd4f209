// `weft status`: asks the running agent over its unix socket what it holds.
// The definition only; status-run.ts (and the status codec) load when it runs.
import type { Argv, CommandModule } from 'yargs';
import { outputOption, statusSocketOption } from './options.js';
import type { OutputArgs } from './table.js';

export const statusEnvFlags = Object.keys(statusSocketOption);

export interface StatusArgs extends OutputArgs {
  'status-socket': string;
  timeout: number;
}

export const statusCommand: CommandModule<object, StatusArgs> = {
  command: 'status',
  describe: 'ask the running agent for its lease, backend, dataplane, etcd connection, peers and recent errors',
  builder: (y: Argv) =>
    y
      .options({ ...statusSocketOption, ...outputOption, timeout: { type: 'number', default: 5000, describe: 'ms to wait for the answer' } })
      .epilogue('Exit codes: 0 the agent answered, 1 it failed to answer, 2 usage error, 3 no agent listens on the socket.') as unknown as Argv<StatusArgs>,
  handler: async (a) => (await import('./status-run.js')).runStatus(a),
};
