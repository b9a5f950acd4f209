// `weft config check FILE`: validates a network config offline and prints it
// with every default filled in.
import { usageError } from '../core/errors.js';
import fs from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { effectiveConfig, encapOverhead, parseNetworkConfig } from '../config/network.js';

interface CheckArgs {
  file: string;
}

const check: CommandModule<object, CheckArgs> = {
  command: 'check <file>',
  describe: 'validate a network config file (- for stdin) and print the effective config',
  builder: (y: Argv) => y.positional('file', { type: 'string', demandOption: true }) as unknown as Argv<CheckArgs>,
  handler: (a) => {
    let text: string;
    try {
      // yargs hands '-' over as an empty string.
      text = fs.readFileSync(a.file === '-' || a.file === '' ? 0 : a.file, 'utf8');
    } catch (err) {
      throw usageError(`cannot read ${a.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const cfg = parseNetworkConfig(text);
    process.stdout.write(JSON.stringify(effectiveConfig(cfg), null, 2) + '\n');
    const notes: string[] = [];
    if (cfg.backendDefaulted) notes.push('no Backend given: flannel and weft run udp, which exists for debugging; consider "Backend": {"Type": "vxlan"}');
    for (const f of cfg.unknownFields) notes.push(`unknown field ${f} is ignored`);
    const r = cfg.ipv4;
    const count = (r.subnetMax.network - r.subnetMin.network) / (1n << BigInt(32 - r.subnetLen)) + 1n;
    notes.push(`${count} subnets of /${r.subnetLen} can be leased; pods get MTU = interface MTU - ${encapOverhead(cfg.backend.type)}${cfg.backend.mtu ? ` (Backend.MTU ${cfg.backend.mtu} overrides)` : ''}`);
    for (const n of notes) process.stderr.write(`note: ${n}\n`);
  },
};

export const configCommand: CommandModule = {
  command: 'config <command>',
  describe: 'network config tools',
  builder: (y: Argv) => y.command(check).demandCommand(1),
  handler: () => undefined,
};
