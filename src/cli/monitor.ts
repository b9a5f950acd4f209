// `weft monitor`: the programs' drops and sampled forwarding decisions, live,
// from the ring buffer pinned under --bpf-pin-dir (works with the agent
// stopped). The definition only; monitor-run.ts (and the addon) load when it runs.
import type { Argv, CommandModule } from 'yargs';
import { bpfPinDirOption, outputOption } from './options.js';
import type { OutputArgs } from './table.js';

export interface MonitorArgs extends OutputArgs {
  'bpf-pin-dir': string;
  type: 'drop' | 'trace' | 'all';
  sample: number;
  address: string[];
  peer: string[];
  reason: string[];
  count: number;
  duration: number;
}

/** FLANNELD_BPF_PIN_DIR works as for the agent. */
export const monitorEnvFlags = Object.keys(bpfPinDirOption);

export const monitorCommand: CommandModule<object, MonitorArgs> = {
  command: 'monitor',
  describe: 'live events from the eBPF programs: every drop with its reason, and with --type trace sampled forwarding decisions',
  builder: (y: Argv) =>
    y
      .options({
        ...bpfPinDirOption,
        ...outputOption,
        type: { choices: ['drop', 'trace', 'all'] as const, default: 'drop' as const, describe: 'drop: every drop; trace: forwarding decisions (which shortcut, which peer), sampled; all: both' },
        sample: { type: 'number', default: 1, describe: 'trace one forwarding decision in N (busy hosts: 100 or more)' },
        address: { type: 'string', array: true, default: [], describe: 'only events whose inner or outer addresses lie in this address or CIDR; repeatable' },
        peer: { type: 'string', array: true, default: [], describe: 'only events concerning this peer host (its PublicIP); repeatable' },
        reason: { type: 'string', array: true, default: [], describe: 'only these drop reasons (no_peer, wrong_vni, ...) or trace actions (encap, to_pod, ...); repeatable' },
        count: { type: 'number', default: 0, describe: 'stop after this many events (0: until Ctrl-C)' },
        duration: { type: 'number', default: 0, describe: 'stop after this many seconds (0: until Ctrl-C)' },
      })
      .coerce('bpf-pin-dir', (v: string | string[]) => (Array.isArray(v) ? v[0] : v))
      .epilogue('One monitor per host at a time (a ring buffer has one reader). Exit codes: 0 done, 1 failed, 2 usage error, 3 no pinned weft maps, or another monitor is reading.') as unknown as Argv<MonitorArgs>,
  handler: async (a) => (await import('./monitor-run.js')).runMonitor(a),
};
