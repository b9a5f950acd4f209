// `weft uninstall`: removes every filter, pin, device, route and firewall chain
// weft created on this host (either dataplane), and nothing else. The agent must be stopped first (it would put them back).
// The definition only; uninstall-run.ts (and the addon) load when it runs.
import type { Argv, CommandModule } from 'yargs';
import { outputOption, pinDirOption, withOptions } from './options.js';
import type { OutputArgs } from './table.js';

export interface UninstallArgs extends OutputArgs {
  'bpf-pin-dir': string;
}

export const uninstallCommand: CommandModule<object, UninstallArgs> = {
  command: 'uninstall',
  describe: "remove weft's programs (tcx links, TC filters), pins, devices, routes and firewall chains from this host (stop the agent first)",
  builder: (y: Argv) => withOptions(y, pinDirOption, outputOption) as unknown as Argv<UninstallArgs>,
  handler: async (a) => (await import('./uninstall-run.js')).runUninstall(a),
};
