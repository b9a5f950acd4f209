// `weft bpf ...`: read straight from the pinned maps and the kernel's TC
// filters, so every subcommand works while the agent is stopped. Read-only.
// The definitions only; bpf-run.ts (and the addon) load when one runs.
import type { Argv, CommandModule, Options } from 'yargs';
import { bpfPinDirOption, outputOption } from './options.js';
import type { OutputArgs } from './table.js';

/** FLANNELD_BPF_PIN_DIR works as for the agent. */
export const bpfEnvFlags = Object.keys(bpfPinDirOption);

export interface BpfArgs extends OutputArgs {
  'bpf-pin-dir': string;
}

export interface LookupArgs extends BpfArgs {
  ip: string;
}

export interface CounterArgs extends BpfArgs {
  watch: boolean;
  interval: number;
  count: number;
}

const run = (): Promise<typeof import('./bpf-run.js')> => import('./bpf-run.js');

const peers: CommandModule<object, BpfArgs> = {
  command: 'peers',
  describe: 'every subnet in weft_peers: backend, PublicIP, VNI, VtepMAC, flags',
  handler: async (a) => (await run()).showPeers(a),
};

const lookupCmd: CommandModule<object, LookupArgs> = {
  command: 'lookup <ip>',
  describe: 'which weft_peers entry an address matches, and what the program does with a packet to it',
  builder: (y: Argv) => y.positional('ip', { type: 'string', demandOption: true, describe: 'IPv4 destination address' }) as unknown as Argv<LookupArgs>,
  handler: async (a) => (await run()).showLookup(a),
};

/** The options of `bpf counters` and `bpf drops`. */
export const counterOptions = {
  watch: { alias: 'w', type: 'boolean', default: false, describe: 'refresh every --interval seconds with rates per second' },
  interval: { type: 'number', default: 1, describe: 'seconds between refreshes with --watch' },
  count: { type: 'number', default: 0, describe: 'with --watch: stop after this many refreshes (0: until Ctrl-C)' },
} satisfies Record<string, Options>;

function countersCmd(kind: 'counters' | 'drops'): CommandModule<object, CounterArgs> {
  return {
    command: kind,
    describe: kind === 'counters' ? 'packets and bytes by direction and encapsulation, summed over CPUs' : 'dropped packets by reason, summed over CPUs',
    builder: (y: Argv) => y.options(counterOptions) as unknown as Argv<CounterArgs>,
    handler: async (a) => (await run()).showCounterMap(kind, a),
  };
}

const programs: CommandModule<object, BpfArgs> = {
  command: 'programs',
  describe: 'programs attached on weft\'s interfaces (tcx links and TC filters: ids, names, tags), the pins, and anything stale',
  handler: async (a) => (await run()).showPrograms(a),
};

/** Each subcommand's definition by name: yargs' commands, and the handlers src/cli/plain.ts calls. */
export const bpfSubcommands = {
  peers,
  lookup: lookupCmd,
  counters: countersCmd('counters'),
  drops: countersCmd('drops'),
  programs,
};

export const bpfCommand: CommandModule<object, BpfArgs> = {
  command: 'bpf',
  describe: 'inspect the eBPF dataplane from its pinned maps (works while the agent is stopped)',
  builder: (y: Argv) =>
    y
      .options({ ...bpfPinDirOption, ...outputOption })
      // --pin-dir on the command line and FLANNELD_BPF_PIN_DIR from the environment both arrive: the command line wins.
      .coerce('bpf-pin-dir', (v: string | string[]) => (Array.isArray(v) ? v[0] : v))
      .command(bpfSubcommands.peers)
      .command(bpfSubcommands.lookup as unknown as CommandModule<object, BpfArgs>)
      .command(bpfSubcommands.counters as unknown as CommandModule<object, BpfArgs>)
      .command(bpfSubcommands.drops as unknown as CommandModule<object, BpfArgs>)
      .command(bpfSubcommands.programs)
      .demandCommand(1, 'name a subcommand: weft bpf peers | lookup <ip> | counters | drops | programs')
      .epilogue('Exit codes: 0 answered, 1 failed (a kernel call; the message names it), 2 usage error, 3 no pinned weft maps in the pin dir.') as unknown as Argv<BpfArgs>,
  handler: () => undefined,
};
