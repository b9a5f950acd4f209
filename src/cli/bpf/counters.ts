// `weft bpf counters` and `weft bpf drops`: the per-CPU counters summed, once
// or (--watch) every interval with rates per second since the last read.
import { byteSize, dash, print, rate, table, toJson, type OutputFormat } from '../table.js';
import type { CounterRow, DropRow, PinnedMaps } from './pins.js';

export interface Rated {
  packetsPerSec: number | null;
  bytesPerSec: number | null;
}

export type CounterOut = CounterRow & Rated;
export type DropOut = DropRow & Rated;

/** Rates per second between two reads of the same rows (null on the first read). */
export function withRates<T extends { packets: bigint; bytes: bigint }>(now: T[], prev: T[] | null, seconds: number): Array<T & Rated> {
  return now.map((r, i) => {
    const p = prev?.[i];
    if (!p || seconds <= 0) return { ...r, packetsPerSec: null, bytesPerSec: null };
    // A counter going down means the maps were re-created (agent reinstalled): rate from zero.
    const dp = r.packets >= p.packets ? r.packets - p.packets : r.packets;
    const db = r.bytes >= p.bytes ? r.bytes - p.bytes : r.bytes;
    return { ...r, packetsPerSec: Number(dp) / seconds, bytesPerSec: Number(db) / seconds };
  });
}

export function formatCounters(rows: CounterOut[], watching: boolean): string {
  const headers = ['DIRECTION', 'ENCAP', 'PACKETS', 'BYTES', ...(watching ? ['PKT/S', 'BYTES/S'] : [])];
  return table(
    headers,
    rows.map((r) => [
      r.direction,
      r.encap,
      String(r.packets),
      `${r.bytes} (${byteSize(r.bytes)})`,
      ...(watching ? [r.packetsPerSec === null ? '-' : rate(r.packetsPerSec), r.bytesPerSec === null ? '-' : byteSize(Math.round(r.bytesPerSec))] : []),
    ]),
  );
}

export function formatDrops(rows: DropOut[], watching: boolean): string {
  const headers = ['REASON', 'PACKETS', 'BYTES', ...(watching ? ['PKT/S'] : []), 'MEANING'];
  return table(
    headers,
    rows.map((r) => [r.reason, String(r.packets), String(r.bytes), ...(watching ? [r.packetsPerSec === null ? '-' : rate(r.packetsPerSec)] : []), dash(r.description)]),
  );
}

export interface WatchOptions {
  watch: boolean;
  intervalSec: number;
  /** Stop after this many reads (0: until interrupted). */
  count: number;
  output: OutputFormat;
}

/**
 * Prints counters once, or every interval until SIGINT / count. Tables are
 * redrawn in place on a terminal; JSON is one object per line per read.
 */
export async function showCounters(maps: PinnedMaps, kind: 'counters' | 'drops', o: WatchOptions): Promise<void> {
  if (kind === 'counters') await show(maps, kind, () => maps.counters(), formatCounters, o);
  else await show(maps, kind, () => maps.drops(), formatDrops, o);
}

async function show<T extends { packets: bigint; bytes: bigint }>(
  maps: PinnedMaps,
  kind: string,
  read: () => T[],
  format: (rows: Array<T & Rated>, watching: boolean) => string,
  o: WatchOptions,
): Promise<void> {
  if (!o.watch) {
    const rows = read();
    print(o.output === 'json' ? toJson({ pinDir: maps.dir, [kind]: rows }) : format(withRates(rows, null, 0), false));
    return;
  }
  let stop = false;
  const onSig = (): void => {
    stop = true;
  };
  process.once('SIGINT', onSig);
  try {
    let prev: T[] | null = null;
    let prevAt = 0;
    for (let n = 0; !stop && (o.count === 0 || n < o.count); n++) {
      if (n > 0) await sleepUnless(o.intervalSec * 1000, () => stop);
      if (stop) break;
      const at = Date.now();
      const now = read();
      const rows = withRates(now, prev, (at - prevAt) / 1000);
      prev = now;
      prevAt = at;
      if (o.output === 'json') {
        print(JSON.stringify({ at: new Date(at).toISOString(), pinDir: maps.dir, [kind]: rows }, (_k, x: unknown) => (typeof x === 'bigint' ? Number(x) : x)) + '\n');
      } else {
        const head = `${kind} in ${maps.dir} at ${new Date(at).toISOString()}, every ${o.intervalSec} s (Ctrl-C stops)\n\n`;
        print((process.stdout.isTTY ? '\x1b[H\x1b[2J' : n > 0 ? '\n' : '') + head + format(rows, true));
      }
    }
  } finally {
    process.removeListener('SIGINT', onSig);
  }
}

function sleepUnless(ms: number, stopped: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const started = Date.now();
    const tick = setInterval(() => {
      if (stopped() || Date.now() - started >= ms) {
        clearInterval(tick);
        resolve();
      }
    }, Math.min(ms, 100));
  });
}
