// A worker thread that watches an agent's pinned weft_peers map and reports
// the moment (process.hrtime, the same monotonic clock as the main thread)
// an awaited state appears. It polls every POLL_MS (by kind) and sleeps in
// between with Atomics.wait, so it neither blocks the main thread's etcd
// traffic nor takes a core from the agent it measures. A put's poll is one
// bpf_map_lookup_elem (a few microseconds); a start's looks up, in one
// native loop, the keys it has not yet seen.
import fs from 'node:fs';
import path from 'node:path';
import { parentPort } from 'node:worker_threads';
import { BpfMap } from 'weft/native/bpf.js';
import { MAP_PEERS } from 'weft/dataplane/ebpf/maps.js';

/**
 * A put's entry is awaited for milliseconds: polled every 0.1 ms. An agent's
 * start is awaited for seconds, on a machine whose cores it needs: 10,000
 * wake-ups a second for that long took CPU from the agent being timed, so
 * a start's keys are polled every millisecond.
 */
const POLL_MS: Record<WatchRequest['kind'], number> = { key: 0.1, all: 1 };

export type WatchRequest =
  /**
   * Every key of `keys` (packed keys of the map's key_size) present. Give
   * them in the order the agent writes them: each poll looks up only those
   * not yet seen, so the last poll is short. Out of order, the last poll
   * looks up more and the moment comes out later, never earlier.
   */
  | { id: number; kind: 'all'; pinDir: string; keys: Uint8Array; timeoutMs: number }
  /** A lookup of `key` returns a value containing `needle` (hex bytes, e.g. the VtepMAC). */
  | { id: number; kind: 'key'; pinDir: string; key: string; needle: string; timeoutMs: number };

/** First `armed` (the state was not there at the first poll, and polling goes on: the caller may start its clock), then the result; or only the result, an error, when the state was there already. */
export type WatchReply = { id: number; armed: true } | { id: number; armed?: false; seenNs: string | null; polls: number; error?: string };

const pause = new Int32Array(new SharedArrayBuffer(4));
const maps = new Map<string, BpfMap>();

function open(pinDir: string): BpfMap | null {
  const cached = maps.get(pinDir);
  if (cached) return cached;
  const pin = path.join(pinDir, MAP_PEERS);
  if (!fs.existsSync(pin)) return null;
  const m = BpfMap.fromPin(pin);
  maps.set(pinDir, m);
  return m;
}

/** The hrtime at which the awaited state was first seen in this poll, or null. */
function seenAt(req: WatchRequest): bigint | null {
  const m = open(req.pinDir);
  if (!m) return null;
  if (req.kind === 'key') {
    const v = m.lookup(Buffer.from(req.key, 'hex'));
    return v !== null && v.toString('hex').includes(req.needle) ? process.hrtime.bigint() : null;
  }
  // Entries are only added while an agent starts: a key seen once stays seen.
  const keys = Buffer.from(req.keys.buffer, req.keys.byteOffset, req.keys.byteLength);
  const total = keys.length / m.keySize;
  const next = m.presentUntil(keys, cursor.get(req.id) ?? 0);
  cursor.set(req.id, next);
  // The moment the last missing key was found, not the poll's start: a key written during this poll was not there then.
  return next === total ? process.hrtime.bigint() : null;
}

/** How many of an 'all' watch's keys, in order, are known to be present. */
const cursor = new Map<number, number>();

/**
 * Polls until the state appears. The first poll comes before `armed` is
 * posted: a state already there when the caller starts its clock would be
 * reported before that clock's zero (a put that rewrote an existing entry
 * gave a p50 of -0.1 ms), so it is refused instead of timed.
 */
function watch(req: WatchRequest): WatchReply {
  try {
    return watchOnce(req);
  } finally {
    cursor.delete(req.id);
  }
}

function watchOnce(req: WatchRequest): WatchReply {
  if (seenAt(req) !== null) return { id: req.id, seenNs: null, polls: 1, error: `already present when armed (${req.kind === 'key' ? `key ${req.key}` : `all of ${req.keys.byteLength} bytes of keys`} in ${req.pinDir}): nothing to time` };
  parentPort!.postMessage({ id: req.id, armed: true } satisfies WatchReply);
  const deadline = process.hrtime.bigint() + BigInt(req.timeoutMs) * 1_000_000n;
  let polls = 1;
  for (;;) {
    polls++;
    const at = seenAt(req);
    if (at !== null) return { id: req.id, seenNs: at.toString(), polls };
    if (process.hrtime.bigint() > deadline) return { id: req.id, seenNs: null, polls };
    Atomics.wait(pause, 0, 0, POLL_MS[req.kind]);
  }
}

parentPort?.on('message', (req: WatchRequest) => {
  try {
    parentPort!.postMessage(watch(req));
  } catch (err) {
    parentPort!.postMessage({ id: req.id, seenNs: null, polls: 0, error: (err as Error).message } satisfies WatchReply);
  }
});
