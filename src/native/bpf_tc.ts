// TC through the clsact qdisc with libbpf's classic bpf_tc_* API, and the
// struct __sk_buff helpers for BPF_PROG_TEST_RUN. Re-exported by bpf.ts.
// Calls act in the calling thread's network namespace (wrap them in withNetns
// for a lab host).
import { raw, type TcFilter, type TcHook } from './bpf_raw.js';

export interface TcSlot {
  ifindex: number;
  hook: TcHook;
  /** Filter handle, 1..2^32-1. */
  handle: number;
  /** Filter priority, 1..65535. */
  priority: number;
}

function checkSlot(call: string, s: TcSlot): void {
  if (!Number.isInteger(s.ifindex) || s.ifindex <= 0) throw new TypeError(`${call}: ifindex must be a positive integer, got ${s.ifindex}`);
  if (s.hook !== 'ingress' && s.hook !== 'egress') throw new TypeError(`${call}: hook must be 'ingress' or 'egress', got '${String(s.hook)}'`);
  if (!Number.isInteger(s.handle) || s.handle < 1 || s.handle > 0xffffffff) throw new TypeError(`${call}: handle must be in 1..2^32-1, got ${s.handle}`);
  if (!Number.isInteger(s.priority) || s.priority < 1 || s.priority > 0xffff) throw new TypeError(`${call}: priority must be in 1..65535, got ${s.priority}`);
}

/** Adds the clsact qdisc; false if it was already there. */
export function tcHookCreate(ifindex: number): boolean {
  return raw().tcHookCreate(ifindex);
}

/** Deletes the clsact qdisc and with it every filter on both hooks. */
export function tcHookDestroy(ifindex: number): void {
  raw().tcHookDestroy(ifindex);
}

/** Attaches in direct-action mode; with replace (the default) atomically swaps whatever holds the slot. */
export function tcAttach(opts: TcSlot & { progFd: number; replace?: boolean }): { progId: number } {
  checkSlot('bpf_tc_attach', opts);
  return { progId: raw().tcAttach(opts.ifindex, opts.hook, opts.progFd, opts.handle, opts.priority, opts.replace ?? true) };
}

export function tcDetach(slot: TcSlot): void {
  checkSlot('bpf_tc_detach', slot);
  raw().tcDetach(slot.ifindex, slot.hook, slot.handle, slot.priority);
}

/** The program in the slot, or null if the slot is empty (also when the hook has no clsact qdisc). */
export function tcQuery(slot: TcSlot): { progId: number } | null {
  checkSlot('bpf_tc_query', slot);
  const id = raw().tcQuery(slot.ifindex, slot.hook, slot.handle, slot.priority);
  return id === null ? null : { progId: id };
}

/** Every filter on the hook, of any kind, from an RTM_GETTFILTER dump; [] without clsact. */
export function tcFilters(ifindex: number, hook: TcHook): TcFilter[] {
  return raw().tcFilters(ifindex, hook);
}

/** Fields of struct __sk_buff that BPF_PROG_TEST_RUN lets a sched_cls test set. */
export interface SkbContext {
  mark?: number;
  priority?: number;
  ingressIfindex?: number;
  ifindex?: number;
  cb?: number[];
}

const SKB = { size: 192, mark: 8, priority: 32, ingressIfindex: 36, ifindex: 40, cb: 48 } as const;

export function encodeSkbContext(c: SkbContext): Buffer {
  const b = Buffer.alloc(SKB.size);
  b.writeUInt32LE(c.mark ?? 0, SKB.mark);
  b.writeUInt32LE(c.priority ?? 0, SKB.priority);
  b.writeUInt32LE(c.ingressIfindex ?? 0, SKB.ingressIfindex);
  b.writeUInt32LE(c.ifindex ?? 0, SKB.ifindex);
  (c.cb ?? []).slice(0, 5).forEach((v, i) => b.writeUInt32LE(v, SKB.cb + 4 * i));
  return b;
}

export function decodeSkbContext(b: Buffer): Required<SkbContext> {
  return {
    mark: b.readUInt32LE(SKB.mark),
    priority: b.readUInt32LE(SKB.priority),
    ingressIfindex: b.readUInt32LE(SKB.ingressIfindex),
    ifindex: b.readUInt32LE(SKB.ifindex),
    cb: [0, 1, 2, 3, 4].map((i) => b.readUInt32LE(SKB.cb + 4 * i)),
  };
}
