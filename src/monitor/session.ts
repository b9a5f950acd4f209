// A monitor's hold on the programs' events. The programs emit only while a
// deadline in weft_monitor lies ahead (bpf/include/events.h), so a session
// writes deadlines a few seconds ahead and renews them every second: a
// monitor killed outright stops the events by itself, and nobody listening
// costs the programs one map lookup. A ring buffer has one consumer, so a
// session refuses to start while another live monitor holds the deadlines.
// The programs wake the session only once a batch waits in the ring
// (WEFT_EVENTS_WAKE_BYTES, events.h); it reads the rest every READ_MS.
import { WeftError } from '../core/errors.js';
import { RingBuffer, type BpfMap } from '../native/bpf.js';
import { MON, u32Key } from '../dataplane/ebpf/maps.js';
import { decodeEvent, type MonitorEvent } from './event.js';

/** How far ahead a deadline lies, and how often it is renewed. */
export const HOLD_NS = 5_000_000_000n;
export const RENEW_MS = 1000;
/** How often the ring is read without a wake-up: the longest an event waits for the monitor. */
export const READ_MS = 100;

export interface SessionOptions {
  drops: boolean;
  trace: boolean;
  /** Trace one forwarding decision in this many (1: every one). */
  sample: number;
}

export interface SessionHandlers {
  event(e: MonitorEvent): void;
  /** Events the ring had no room for since the last call (the programs count them). */
  lost(count: bigint): void;
  /** The ring cannot be read any more, or a record cannot be decoded. */
  error(err: Error): void;
}

type Slot = keyof typeof MON;

/** CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns(); libuv reads the same one. */
export const monotonicNs = (): bigint => process.hrtime.bigint();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, as someone else's.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class MonitorSession {
  private ring: RingBuffer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reader: NodeJS.Timeout | undefined;
  private lostSeen = 0n;
  private readonly startedNs = monotonicNs();
  private stopped = false;

  constructor(
    private readonly events: BpfMap,
    private readonly control: BpfMap,
    private readonly o: SessionOptions,
  ) {}

  private read(slot: Slot): bigint {
    return this.control.lookup(u32Key(MON[slot]))?.readBigUInt64LE(0) ?? 0n;
  }

  private write(slot: Slot, v: bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    this.control.update(u32Key(MON[slot]), b);
  }

  /** The pid of another live monitor holding the deadlines, or null. */
  otherMonitor(): number | null {
    const now = monotonicNs();
    const owner = Number(this.read('owner'));
    const held = this.read('drops_until') > now || this.read('trace_until') > now;
    return held && owner && owner !== process.pid && alive(owner) ? owner : null;
  }

  /** Moves the deadlines ahead; start() does it every second on the event loop, a caller that blocks the loop for longer does it itself. */
  renew(): void {
    const until = monotonicNs() + HOLD_NS;
    this.write('owner', BigInt(process.pid));
    this.write('trace_sample', BigInt(Math.max(1, this.o.sample)));
    this.write('drops_until', this.o.drops ? until : 0n);
    this.write('trace_until', this.o.trace ? until : 0n);
  }

  /** Takes the events: checks for another monitor, writes the deadlines, reads the ring on the event loop. */
  start(h: SessionHandlers): void {
    const other = this.otherMonitor();
    if (other !== null) {
      throw new WeftError(`another weft monitor (pid ${other}) is reading these events, and a ring buffer has one reader; stop it first`, 'unavailable');
    }
    this.lostSeen = this.read('lost');
    this.ring = RingBuffer.open(this.events, {
      records: (records) => {
        for (const r of records) {
          let e: MonitorEvent;
          try {
            e = decodeEvent(r);
          } catch (err) {
            h.error(err as Error);
            return;
          }
          // Left in the ring by an earlier monitor: not what this one was asked for.
          if (e.monotonicNs < this.startedNs) continue;
          if (!this.stopped) h.event(e);
        }
      },
      error: (err) => h.error(err),
    });
    this.renew();
    this.timer = setInterval(() => {
      this.renew();
      const lost = this.read('lost');
      if (lost > this.lostSeen) h.lost(lost - this.lostSeen);
      this.lostSeen = lost;
    }, RENEW_MS);
    this.timer.unref();
    this.reader = setInterval(() => {
      try {
        this.ring?.consume();
      } catch (err) {
        clearInterval(this.reader);
        h.error(err as Error);
      }
    }, READ_MS);
    this.reader.unref();
  }

  /** Reads what the ring holds now (tests; a wake-up or the READ_MS timer does it otherwise). */
  drain(): number {
    return this.ring?.consume() ?? 0;
  }

  /** Stops reading; the programs stop emitting at once unless another monitor has taken over since. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    clearInterval(this.reader);
    this.ring?.close();
    if (Number(this.read('owner')) === process.pid) {
      this.write('drops_until', 0n);
      this.write('trace_until', 0n);
      this.write('owner', 0n);
    }
  }
}
