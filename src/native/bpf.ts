// Typed wrapper over the addon's libbpf binding (native/src/bpf*.cc).
//
// Ownership: every BpfProgram and BpfMap owns its own fd (dup'ed from the
// object, or opened from a pin or an id), so BpfObject.close() never pulls a
// handle out from under its user. A program stays loaded while a TC filter or
// any handle refers to it; a map while it is pinned or any handle is open.
// Handles that are never closed are closed when garbage-collected.
//
// Errors from the kernel or libbpf are ErrnoErrors: the message names the
// call, the object and the errno ("bpf_tc_attach(ifindex 7, ingress): EEXIST
// (File exists)") and carries .code, .errno and .syscall. Load failures add
// the verifier log's tail on the following lines. Wrong buffer sizes or
// arguments are TypeErrors thrown before any syscall.
//
// Additions to the agreed API: BpfMap.updateBatch returns which path it took
// ('batch' | 'per-key'); testRun returns the output ctx when one was given;
// BpfProgram.fromId/fromPin/pin/dup; BpfMap.fromId; tcHookCreate returns
// whether it created the qdisc; tcFilters entries also carry `protocol`;
// encodeSkbContext/decodeSkbContext build and read struct __sk_buff;
// RingBuffer reads a ring buffer map on the event loop. The TC functions live
// in bpf_tc.ts, the ring buffer in bpf_ringbuf.ts and the raw binding's types
// in bpf_raw.ts; all are re-exported here, so importers need only this module.
import { isErrnoError, raw, type ErrnoError, type MapInfo, type PackedEntries, type ProgInfo, type RawObject } from './bpf_raw.js';

export { isErrnoError, type ErrnoError, type MapInfo, type ProgInfo, type TcFilter, type TcHook } from './bpf_raw.js';
export * from './bpf_tc.js';
export * from './bpf_tcx.js';
export * from './bpf_ringbuf.js';

/** Turns on the kernel's per-program run time and run counts (ProgInfo.runTimeNs, runCnt) until the returned function is called. */
export function enableRunStats(): () => void {
  const fd = raw().enableRunStats();
  return () => raw().closeFd(fd);
}

export function libbpfVersion(): string {
  return raw().libbpfVersion();
}

let possibleCpus: number | undefined;
export function numPossibleCpus(): number {
  return (possibleCpus ??= raw().numPossibleCpus());
}

const leaked = new FinalizationRegistry<number>((fd) => {
  try {
    raw().closeFd(fd);
  } catch {
    /* nothing useful to do from a finalizer */
  }
});

function closedError(what: string): ErrnoError {
  return Object.assign(new Error(`${what}: EBADF (handle already closed)`), { code: 'EBADF', errno: 9, syscall: what });
}

/** An fd this process owns; closed by close() or, failing that, by the GC. */
abstract class FdHandle {
  #fd: number;
  protected constructor(fd: number) {
    this.#fd = fd;
    leaked.register(this, fd, this);
  }
  protected abstract get label(): string;
  get fd(): number {
    if (this.#fd < 0) throw closedError(this.label);
    return this.#fd;
  }
  get closed(): boolean {
    return this.#fd < 0;
  }
  close(): void {
    if (this.#fd < 0) return;
    leaked.unregister(this);
    const fd = this.#fd;
    this.#fd = -1;
    raw().closeFd(fd);
  }
  pin(path: string): void {
    raw().objPin(this.fd, path, this.label);
  }
}

function adoptFd<T>(fd: number, make: (fd: number) => T): T {
  try {
    return make(fd);
  } catch (err) {
    raw().closeFd(fd);
    throw err;
  }
}

export interface TestRunOptions {
  /** For sched_cls: an Ethernet frame. */
  data: Buffer;
  /** Room for the output packet; default data.length + 512 (encapsulation grows packets). */
  dataSizeOut?: number;
  repeat?: number;
  /** struct __sk_buff for sched_cls (see encodeSkbContext); the kernel accepts only some fields. */
  ctx?: Buffer;
}

export interface TestRunResult {
  retval: number;
  data: Buffer;
  durationNs: number;
  /** The context after the run, when one was passed in. */
  ctx?: Buffer;
}

export class BpfProgram extends FdHandle {
  readonly name: string;
  readonly id: number;
  readonly tag: string;
  readonly type: string;

  private constructor(fd: number) {
    super(fd);
    const info = raw().progInfoByFd(fd);
    this.name = info.name;
    this.id = info.id;
    this.tag = info.tag;
    this.type = info.type;
  }

  /** Takes ownership of fd. */
  static fromFd(fd: number): BpfProgram {
    return adoptFd(fd, (f) => new BpfProgram(f));
  }
  static fromId(id: number): BpfProgram {
    return BpfProgram.fromFd(raw().progGetFdById(id));
  }
  static fromPin(path: string): BpfProgram {
    return BpfProgram.fromFd(raw().objGet(path));
  }

  protected get label(): string {
    return `prog ${this.name} id ${this.id}`;
  }

  /** A second handle on the same program, with its own lifetime. */
  dup(): BpfProgram {
    return BpfProgram.fromFd(raw().dupFd(this.fd));
  }

  testRun(opts: TestRunOptions): TestRunResult {
    const out = opts.dataSizeOut ?? opts.data.length + 512;
    const r = raw().progTestRun(this.fd, opts.data, out, opts.repeat ?? 1, opts.ctx ?? null, this.label);
    return opts.ctx ? r : { retval: r.retval, data: r.data, durationNs: r.durationNs };
  }
}

const PERCPU_TYPES = new Set(['percpu_hash', 'percpu_array', 'lru_percpu_hash', 'percpu_cgroup_storage']);
const UPDATE_FLAGS = { any: 0, noexist: 1, exist: 2 } as const;
export type UpdateFlag = keyof typeof UPDATE_FLAGS;
/** errnos meaning "this map type has no batch update": ENOTSUPP (kernel-internal 524) and EOPNOTSUPP. */
const BATCH_UNSUPPORTED = new Set([524, 95]);
const noBatchTypes = new Set<string>();

export class BpfMap extends FdHandle {
  readonly name: string;
  readonly id: number;
  readonly type: string;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
  /** Bytes a lookup returns: valueSize, or numPossibleCpus * round_up(valueSize, 8) for per-CPU maps. */
  readonly valueLength: number;

  private constructor(fd: number) {
    super(fd);
    const info = raw().mapInfoByFd(fd);
    this.name = info.name;
    this.id = info.id;
    this.type = info.type;
    this.keySize = info.keySize;
    this.valueSize = info.valueSize;
    this.maxEntries = info.maxEntries;
    this.flags = info.flags;
    this.valueLength = this.perCpu ? numPossibleCpus() * Math.ceil(info.valueSize / 8) * 8 : info.valueSize;
  }

  /** Takes ownership of fd. */
  static fromFd(fd: number): BpfMap {
    return adoptFd(fd, (f) => new BpfMap(f));
  }
  static fromPin(path: string): BpfMap {
    return BpfMap.fromFd(raw().objGet(path));
  }
  static fromId(id: number): BpfMap {
    return BpfMap.fromFd(raw().mapGetFdById(id));
  }

  get perCpu(): boolean {
    return PERCPU_TYPES.has(this.type);
  }

  protected get label(): string {
    return `map ${this.name} id ${this.id}`;
  }

  private checkKey(call: string, key: Buffer): void {
    if (!Buffer.isBuffer(key) || key.length !== this.keySize)
      throw new TypeError(`${call}(${this.label}): key is ${Buffer.isBuffer(key) ? `${key.length} bytes` : typeof key}, key_size is ${this.keySize}`);
  }

  private checkValue(call: string, value: Buffer): void {
    if (!Buffer.isBuffer(value) || value.length !== this.valueLength) {
      const want = this.perCpu ? `${this.valueLength} (${numPossibleCpus()} CPUs x ${this.valueLength / numPossibleCpus()})` : String(this.valueSize);
      throw new TypeError(`${call}(${this.label}): value is ${Buffer.isBuffer(value) ? `${value.length} bytes` : typeof value}, expected ${want}`);
    }
  }

  lookup(key: Buffer): Buffer | null {
    this.checkKey('bpf_map_lookup_elem', key);
    return raw().mapLookup(this.fd, key, this.valueLength, this.label);
  }

  /**
   * The index of the first of the packed `keys` (key_size bytes each), from
   * `from` on, that the map does not hold; the key count when it holds them
   * all. The lookups run in one native loop: 65,536 of them from JavaScript
   * took 300 ms, a copy of each value included. A lookup in an LPM trie
   * matches the longest prefix: there, a key under a prefix the map holds
   * counts as held.
   */
  presentUntil(keys: Buffer, from = 0): number {
    if (!Buffer.isBuffer(keys) || keys.length % this.keySize !== 0) {
      throw new TypeError(`presentUntil(${this.label}): keys are ${Buffer.isBuffer(keys) ? `${keys.length} bytes` : typeof keys}, not a multiple of key_size ${this.keySize}`);
    }
    return raw().mapPresentUntil(this.fd, keys, this.keySize, from, this.valueLength, this.label);
  }

  update(key: Buffer, value: Buffer, flag: UpdateFlag = 'any'): void {
    this.checkKey('bpf_map_update_elem', key);
    this.checkValue('bpf_map_update_elem', value);
    raw().mapUpdate(this.fd, key, value, updateFlag(flag), this.label);
  }

  /** false when the key was not there. */
  delete(key: Buffer): boolean {
    this.checkKey('bpf_map_delete_elem', key);
    return raw().mapDelete(this.fd, key, this.label);
  }

  keys(): Buffer[] {
    return raw().mapKeys(this.fd, this.keySize, this.label);
  }

  /**
   * Every entry, keys and values each in one buffer, read a few thousand a
   * system call where the kernel can (see PackedEntries): for reading a map
   * of 65,536 entries whole in 40 to 50 ms, where a get_next_key and a lookup
   * per entry took 0.4 s for the keys alone.
   */
  entriesPacked(chunk?: number): PackedEntries {
    return raw().mapEntriesPacked(this.fd, this.keySize, this.valueLength, this.label, chunk);
  }

  /** Every entry as a key and a value, each a view into entriesPacked's two buffers. */
  entries(): Array<[Buffer, Buffer]> {
    const { keys, values, count } = this.entriesPacked();
    const [ks, vs] = [this.keySize, this.valueLength];
    const out = new Array<[Buffer, Buffer]>(count);
    for (let i = 0; i < count; i++) out[i] = [keys.subarray(i * ks, (i + 1) * ks), values.subarray(i * vs, (i + 1) * vs)];
    return out;
  }

  /** How many entries the map holds (entriesPacked's count: a status or a scrape must not walk 65,536 keys one call each). */
  count(): number {
    return this.entriesPacked().count;
  }

  /**
   * Writes all pairs with one bpf_map_update_batch where the map type has it,
   * else (the kernel says ENOTSUPP) one update per key. Returns the path taken.
   */
  updateBatch(keys: Buffer[], values: Buffer[], flag: UpdateFlag = 'any'): 'batch' | 'per-key' {
    if (keys.length !== values.length)
      throw new TypeError(`bpf_map_update_batch(${this.label}): ${keys.length} keys but ${values.length} values`);
    keys.forEach((k) => this.checkKey('bpf_map_update_batch', k));
    values.forEach((v) => this.checkValue('bpf_map_update_batch', v));
    return this.updatePacked(Buffer.concat(keys), Buffer.concat(values), keys.length, flag);
  }

  /**
   * updateBatch for `count` keys and values laid end to end in two buffers
   * (keySize and valueSize bytes each), as the kernel takes them: a caller
   * writing many entries encodes them in place instead of a Buffer each.
   */
  updatePacked(keys: Buffer, values: Buffer, count: number, flag: UpdateFlag = 'any'): 'batch' | 'per-key' {
    const flags = this.checkPacked(keys, values, count, flag);
    if (count === 0) return 'batch';
    if (!noBatchTypes.has(this.type)) {
      try {
        raw().mapUpdateBatch(this.fd, keys, values, count, flags, this.label);
        return 'batch';
      } catch (err) {
        this.batchRefused(err);
      }
    }
    return this.updateEach(keys, values, count, flags);
  }

  /**
   * updatePacked with the batch written on a libuv thread: the kernel's
   * inserts (0.5 µs an entry in an LPM trie) off the caller's thread. The
   * buffers must not change until it resolves. Per key, on this thread,
   * where the map type has no batch update.
   */
  async updatePackedAsync(keys: Buffer, values: Buffer, count: number, flag: UpdateFlag = 'any'): Promise<'batch' | 'per-key'> {
    const flags = this.checkPacked(keys, values, count, flag);
    if (count === 0) return 'batch';
    if (!noBatchTypes.has(this.type)) {
      try {
        await raw().mapUpdateBatchAsync(this.fd, keys, values, count, flags, this.label);
        return 'batch';
      } catch (err) {
        this.batchRefused(err);
      }
    }
    return this.updateEach(keys, values, count, flags);
  }

  /** The flags for `flag`, once the buffers are checked to hold `count` entries. */
  private checkPacked(keys: Buffer, values: Buffer, count: number, flag: UpdateFlag): number {
    if (keys.length !== count * this.keySize || values.length !== count * this.valueLength)
      throw new TypeError(`bpf_map_update_batch(${this.label}): ${count} entries need ${count * this.keySize} key and ${count * this.valueLength} value bytes, got ${keys.length} and ${values.length}`);
    return updateFlag(flag);
  }

  /** Rethrows a batch update's error unless the kernel has no batch update for this map type, which is then remembered. */
  private batchRefused(err: unknown): void {
    if (!isErrnoError(err) || !BATCH_UNSUPPORTED.has(err.errno)) throw err;
    noBatchTypes.add(this.type);
  }

  private updateEach(keys: Buffer, values: Buffer, count: number, flags: number): 'per-key' {
    for (let i = 0; i < count; i++) {
      const k = keys.subarray(i * this.keySize, (i + 1) * this.keySize);
      raw().mapUpdate(this.fd, k, values.subarray(i * this.valueLength, (i + 1) * this.valueLength), flags, this.label);
    }
    return 'per-key';
  }
}

function updateFlag(flag: UpdateFlag): number {
  const f = UPDATE_FLAGS[flag];
  if (f === undefined) throw new TypeError(`update flag must be 'any', 'noexist' or 'exist', got '${String(flag)}'`);
  return f;
}

export interface LoadOptions {
  /** Directory for maps declared with LIBBPF_PIN_BY_NAME: pinned there, or reused from there. */
  pinRoot?: string;
}

export class BpfObject {
  private obj: RawObject | undefined;
  private readonly programCache = new Map<string, BpfProgram>();
  private readonly mapCache = new Map<string, BpfMap>();

  private constructor(
    readonly path: string,
    obj: RawObject,
  ) {
    this.obj = obj;
  }

  static load(path: string, opts: LoadOptions = {}): BpfObject {
    return new BpfObject(path, new (raw().BpfObjectNative)(path, opts.pinRoot));
  }

  /** load() on a libuv thread: the kernel verifies the programs while the event loop goes on. */
  static async loadAsync(path: string, opts: LoadOptions = {}): Promise<BpfObject> {
    const r = raw();
    return new BpfObject(path, await r.loadAsync(path, opts.pinRoot ?? '', r.BpfObjectNative));
  }

  /** Loads the object with private maps and closes it, on a libuv thread: rejects as load() would throw. */
  static async checkLoad(path: string): Promise<void> {
    (await BpfObject.loadAsync(path)).close();
  }

  private live(call: string): RawObject {
    if (!this.obj) throw closedError(`${call}(${this.path})`);
    return this.obj;
  }

  programNames(): string[] {
    return this.live('programs').programs().map((p) => p.name);
  }

  /** Handles are made on first request and are the caller's to close (or keep past close()). */
  programs(): BpfProgram[] {
    return this.programNames().map((n) => this.program(n));
  }

  program(name: string): BpfProgram {
    const cached = this.programCache.get(name);
    if (cached && !cached.closed) return cached;
    const obj = this.live('program');
    if (!obj.programs().some((p) => p.name === name))
      throw new Error(`${this.path}: no program named '${name}'; it has ${this.programNames().join(', ') || 'none'}`);
    const prog = BpfProgram.fromFd(obj.programFd(name));
    this.programCache.set(name, prog);
    return prog;
  }

  /** Names of the object's maps, without libbpf's internal .data/.rodata/.bss maps. */
  mapNames(): string[] {
    return this.live('maps')
      .maps()
      .filter((m) => !m.internal)
      .map((m) => m.name);
  }

  maps(): BpfMap[] {
    return this.mapNames().map((n) => this.map(n));
  }

  map(name: string): BpfMap {
    const cached = this.mapCache.get(name);
    if (cached && !cached.closed) return cached;
    const obj = this.live('map');
    if (!obj.maps().some((m) => m.name === name))
      throw new Error(`${this.path}: no map named '${name}'; it has ${this.mapNames().join(', ') || 'none'}`);
    const map = BpfMap.fromFd(obj.mapFd(name));
    this.mapCache.set(name, map);
    return map;
  }

  /** Where libbpf pinned (or found) each pinned map. */
  pinPaths(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const m of this.live('pinPaths').maps()) if (m.pinPath) out[m.name] = m.pinPath;
    return out;
  }

  /** Frees libbpf's object. Handles already taken from it stay valid until closed. */
  close(): void {
    this.obj?.close();
    this.obj = undefined;
  }
}

export function progInfo(id: number): ProgInfo {
  const fd = raw().progGetFdById(id);
  try {
    return raw().progInfoByFd(fd, `prog id ${id}`);
  } finally {
    raw().closeFd(fd);
  }
}

/** Info of a pinned map (path) or of a map fd this process holds (number). */
export function mapInfo(pathOrFd: string | number): MapInfo {
  if (typeof pathOrFd === 'number') return raw().mapInfoByFd(pathOrFd);
  const fd = raw().objGet(pathOrFd);
  try {
    return raw().mapInfoByFd(fd, pathOrFd);
  } finally {
    raw().closeFd(fd);
  }
}
