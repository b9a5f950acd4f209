// A BPF ring buffer's records as they arrive, read on Node's event loop
// (native/src/bpf_ringbuf.cc says why there is no thread). Re-exported by bpf.ts.
import { raw } from './bpf_raw.js';
import type { BpfMap } from './bpf.js';

export interface RingBufferHandlers {
  /** Every record of one wakeup, in order; each Buffer is a view into one batch. */
  records(records: Buffer[]): void;
  /** The ring cannot be read any more; no records follow. */
  error(err: Error): void;
}

export class RingBuffer {
  private constructor(
    private readonly native: { consume(): number; close(): void },
    readonly map: BpfMap,
  ) {}

  /** Starts reading map (a ringbuf); the map's fd must stay open until close(). */
  static open(map: BpfMap, h: RingBufferHandlers): RingBuffer {
    if (map.type !== 'ringbuf') throw new TypeError(`RingBuffer.open(map ${map.name} id ${map.id}): a ${map.type} map is not a ring buffer`);
    const native = raw().ringBufferOpen(map.fd, (err: Error | null, batch?: Buffer, count?: number) => {
      if (err) h.error(err);
      else h.records(splitRecords(batch!, count!));
    }, `map ${map.name} id ${map.id}`);
    return new RingBuffer(native, map);
  }

  /** Reads what the ring holds now (the records go to the handler before this returns); how many there were. */
  consume(): number {
    return this.native.consume();
  }

  /** Stops reading; the event loop is no longer held by it. */
  close(): void {
    this.native.close();
  }
}

/** The batch the binding hands over: each record preceded by its length, u32 in host order. */
export function splitRecords(batch: Buffer, count: number): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  for (let i = 0; i < count && off + 4 <= batch.length; i++) {
    const len = batch.readUInt32LE(off);
    out.push(batch.subarray(off + 4, off + 4 + len));
    off += 4 + len;
  }
  return out;
}
