// The addon's libbpf binding as it comes out of native/src/bpf*.cc, typed.
// Only src/native/bpf*.ts use raw(); everything else goes through bpf.ts.
import { addon } from './addon.js';

export interface ErrnoError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

export function isErrnoError(err: unknown, code?: string): err is ErrnoError {
  return err instanceof Error && typeof (err as Partial<ErrnoError>).errno === 'number' && (code === undefined || (err as ErrnoError).code === code);
}

export interface ProgInfo {
  id: number;
  name: string;
  /** 16 hex digits, as `bpftool prog` shows it. */
  tag: string;
  /** libbpf's name for the program type, e.g. "sched_cls". */
  type: string;
  /** Time spent in the program and runs, counted while run statistics are on (enableRunStats). */
  runTimeNs: number;
  runCnt: number;
  /** Ids of the maps the program uses. */
  mapIds: number[];
}

export interface MapInfo {
  id: number;
  name: string;
  /** libbpf's name for the map type, e.g. "lpm_trie", "percpu_array". */
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

export type TcHook = 'ingress' | 'egress';

export interface LinkInfo {
  /** 'tcx', or 'type N' for kinds this binding does not name. */
  type: string;
  id: number;
  progId: number;
  /** tcx: the device; 0 once it is gone (the link is then defunct). */
  ifindex?: number;
  hook?: TcHook;
}

export interface TcFilter {
  handle: number;
  priority: number;
  /** Ethertype in host order (ETH_P_ALL = 3 for libbpf's filters). */
  protocol: number;
  kind: string;
  progId?: number;
  name?: string;
  tag?: string;
  directAction: boolean;
}

export interface RawObject {
  programs(): Array<{ name: string; section: string }>;
  maps(): Array<{ name: string; internal: boolean; pinPath?: string }>;
  programFd(name: string): number;
  mapFd(name: string): number;
  close(): void;
}

/** A map's entries laid end to end: entry i's key at i * keySize of keys, its value at i * value length of values. */
export interface PackedEntries {
  keys: Buffer;
  values: Buffer;
  count: number;
  /** Read with bpf_map_lookup_batch (false: walked key by key, the map type or kernel has no batch lookup). */
  batched: boolean;
}

export interface RawBpf {
  libbpfVersion(): string;
  enableRunStats(): number;
  numPossibleCpus(): number;
  closeFd(fd: number): void;
  dupFd(fd: number): number;
  objGet(path: string): number;
  objPin(fd: number, path: string, label: string): void;
  progGetFdById(id: number): number;
  mapGetFdById(id: number): number;
  progInfoByFd(fd: number, label?: string): ProgInfo;
  mapInfoByFd(fd: number, label?: string): MapInfo;
  BpfObjectNative: new (path: string, pinRoot?: string) => RawObject;
  loadAsync(path: string, pinRoot: string, ctor: new (path: string, pinRoot?: string) => RawObject): Promise<RawObject>;
  progTestRun(fd: number, data: Buffer, sizeOut: number, repeat: number, ctx: Buffer | null, label: string): { retval: number; data: Buffer; durationNs: number; ctx?: Buffer };
  mapLookup(fd: number, key: Buffer, valueLen: number, label: string): Buffer | null;
  mapPresentUntil(fd: number, keys: Buffer, keySize: number, from: number, valueLen: number, label: string): number;
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number, label: string): void;
  mapDelete(fd: number, key: Buffer, label: string): boolean;
  mapKeys(fd: number, keySize: number, label: string): Buffer[];
  mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: number, flags: number, label: string): number;
  mapUpdateBatchAsync(fd: number, keys: Buffer, values: Buffer, count: number, flags: number, label: string): Promise<number>;
  mapEntriesPacked(fd: number, keySize: number, valueLen: number, label: string, chunk?: number): PackedEntries;
  tcHookCreate(ifindex: number): boolean;
  tcHookDestroy(ifindex: number): void;
  tcAttach(ifindex: number, hook: TcHook, progFd: number, handle: number, priority: number, replace: boolean): number;
  tcDetach(ifindex: number, hook: TcHook, handle: number, priority: number): void;
  tcQuery(ifindex: number, hook: TcHook, handle: number, priority: number): number | null;
  tcFilters(ifindex: number, hook: TcHook): TcFilter[];
  tcxAttach(ifindex: number, hook: TcHook, progFd: number, first: boolean): number;
  linkUpdate(linkFd: number, progFd: number): void;
  linkInfoByFd(fd: number, label?: string): LinkInfo;
  tcxQuery(ifindex: number, hook: TcHook): { revision: number; programs: Array<{ progId: number; linkId: number }> };
  linkGetFdById(id: number): number;
  linkDetach(linkFd: number): void;
  ringBufferOpen(mapFd: number, cb: (err: Error | null, batch?: Buffer, count?: number) => void, label: string): { consume(): number; close(): void };
}

export const raw = (): RawBpf => addon().bpf as RawBpf;
