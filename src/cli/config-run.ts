// `weft config check FILE` when it runs.
import fs from 'node:fs';
import { usageError } from '../core/errors.js';
import { effectiveConfig, encapOverhead, parseNetworkConfig } from '../config/network.js';
import type { CheckArgs } from './config.js';

export function checkConfig(a: CheckArgs): void {
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
}
