// The kernel's counters for /metrics, read from the maps pinned under the
// agent's --bpf-pin-dir at scrape time: opened, read and closed each time,
// so a scrape always reads the maps that are pinned now (a restarted agent
// may have replaced them). A map pinned by another weft version is refused.
import path from 'node:path';
import { BpfMap } from '../native/bpf.js';
import { readCounters, readDrops, type CounterRow, type DropRow } from '../dataplane/ebpf/counters.js';
import { MAP_DROPS, MAP_MONITOR, MAP_SCHEMA, MAP_STATS, MON, u32Key } from '../dataplane/ebpf/maps.js';

export interface KernelCounters {
  counters: CounterRow[];
  drops: DropRow[];
  /** undefined when the pin dir has no weft_monitor (programs older than weft monitor). */
  eventsLost: bigint | undefined;
}

function open(pinDir: string, name: keyof typeof MAP_SCHEMA): BpfMap {
  const m = BpfMap.fromPin(path.join(pinDir, name));
  const want = MAP_SCHEMA[name];
  if (m.type !== want.type || m.keySize !== want.keySize || m.valueSize !== want.valueSize) {
    m.close();
    throw new Error(`${path.join(pinDir, name)} is not the ${name} this weft reads (another weft version pinned it)`);
  }
  return m;
}

export function readKernelCounters(pinDir: string): KernelCounters {
  const opened: BpfMap[] = [];
  const take = (name: keyof typeof MAP_SCHEMA): BpfMap => {
    const m = open(pinDir, name);
    opened.push(m);
    return m;
  };
  try {
    const counters = readCounters(take(MAP_STATS));
    const drops = readDrops(take(MAP_DROPS));
    let eventsLost: bigint | undefined;
    try {
      eventsLost = take(MAP_MONITOR).lookup(u32Key(MON.lost))?.readBigUInt64LE(0);
    } catch {
      // Pinned by programs older than weft monitor: there is no lost count to report.
      eventsLost = undefined;
    }
    return { counters, drops, eventsLost };
  } finally {
    for (const m of opened) m.close();
  }
}
