// The kernel's counters as rows: weft_stats by direction and encapsulation,
// weft_drops by reason, each per-CPU value summed. `weft bpf counters|drops`
// print them; the agent's /metrics exports them at scrape time.
import type { BpfMap } from '../../native/bpf.js';
import { DIR, DROP_DESCRIPTIONS, DROP_REASONS, ENCAP, decodeCounter, statsIndex, u32Key, type DirName, type DropReason, type EncapName } from './maps.js';

export interface CounterRow {
  direction: DirName;
  encap: EncapName;
  packets: bigint;
  bytes: bigint;
}

export interface DropRow {
  reason: DropReason;
  code: number;
  description: string;
  packets: bigint;
  bytes: bigint;
}

/** Every (direction, encapsulation) of weft_stats, in index order. */
export function readCounters(stats: BpfMap): CounterRow[] {
  const rows: CounterRow[] = [];
  for (const direction of Object.keys(DIR) as DirName[]) {
    for (const encap of Object.keys(ENCAP) as EncapName[]) {
      const c = decodeCounter(stats.lookup(u32Key(statsIndex(direction, encap))) ?? Buffer.alloc(0));
      rows.push({ direction, encap, packets: c.packets, bytes: c.bytes });
    }
  }
  return rows;
}

/** Every reason of weft_drops, in code order. */
export function readDrops(drops: BpfMap): DropRow[] {
  return DROP_REASONS.map((reason, code) => {
    const c = decodeCounter(drops.lookup(u32Key(code)) ?? Buffer.alloc(0));
    return { reason, code, description: DROP_DESCRIPTIONS[reason], packets: c.packets, bytes: c.bytes };
  });
}
