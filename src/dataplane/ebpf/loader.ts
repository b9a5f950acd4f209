// Loading weft's BPF objects with their maps pinned under --bpf-pin-dir, and
// attaching the programs through clsact. Everything here is idempotent: a
// restarted agent reuses the pinned maps (peers and counters intact) and
// atomically replaces the programs in the same TC slots, so traffic never
// stops and no hook ever holds two weft filters.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfMap, BpfObject, isErrnoError, tcAttach, tcDetach, tcFilters, tcHookCreate, tcHookDestroy, type BpfProgram, type TcHook } from '../../native/bpf.js';
import { MAP_CONFIG, MAP_CT_WAKE, MAP_CT_WANTED, MAP_DROPS, MAP_PEERS, MAP_POD_PORTS, MAP_PORTS, MAP_STATS, PINNED_MAPS } from './maps.js';
import type { Logger } from '../../core/log.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** build/bpf, next to dist/ in the repository (or the installed package). */
export const OBJECT_DIR = process.env.WEFT_BPF_DIR ?? path.resolve(here, '../../../build/bpf');

/** The TC slot weft's filters occupy on every hook it uses: one filter per hook, replaced in place. */
export const TC_HANDLE = 0x77656674; // "weft"
export const TC_PRIORITY = 1;

/**
 * Every program weft attaches, by object: program -> the TC hook it runs at.
 * The loader, uninstallEbpf, `weft bpf programs` and the tests read it;
 * test/bpf/schema.test.ts checks it against the programs each object holds.
 */
export const PROGRAMS = {
  'overlay.o': { overlay_egress: 'egress', overlay_ingress: 'ingress' },
  'underlay.o': { underlay_decap: 'ingress' },
  /** gateway_ingress only with WEFT_EBPF_GATEWAY=1, on the pods' gateway device (gateway.ts); from_pod on each of its ports (podports.ts). */
  'gateway.o': { gateway_ingress: 'ingress', from_pod: 'ingress' },
} as const satisfies Record<string, Record<string, TcHook>>;
export type ObjectFile = keyof typeof PROGRAMS;
/** The programs of one object (or of several). */
export type ProgramOf<O extends ObjectFile> = { [K in O]: keyof (typeof PROGRAMS)[K] }[O];
export type ProgramName = ProgramOf<ObjectFile>;

const programsOf = (files: readonly ObjectFile[]): ProgramName[] => files.flatMap((f) => Object.keys(PROGRAMS[f]) as ProgramName[]);
/** Every program in PROGRAMS: what uninstallEbpf removes. */
export const ALL_PROGRAMS = programsOf(Object.keys(PROGRAMS) as ObjectFile[]);
/** The objects every eBPF dataplane loads (gateway.o's hooks have switches of their own). */
export const CORE_OBJECTS = ['overlay.o', 'underlay.o'] as const satisfies readonly ObjectFile[];
/** Their programs: what every eBPF dataplane attaches. */
export const WEFT_PROGRAMS = programsOf(CORE_OBJECTS);

const HOOK_OF = Object.assign({}, ...Object.values(PROGRAMS)) as Record<ProgramName, TcHook>;
/** The hook a program runs at. */
export const hookOf = (program: ProgramName): TcHook => HOOK_OF[program];

export const WEFT_MAPS: string[] = [...PINNED_MAPS];
/** Pinned only while the objects load, to share them (a crash in between can leave them; uninstall removes them then). */
export const TRANSIENT_MAPS = [MAP_PORTS, MAP_CT_WANTED, MAP_POD_PORTS, MAP_CT_WAKE] as const;

/** from_pod and the map that says which ports it runs on (weft_pod_ports). */
export interface FromPod {
  prog: BpfProgram;
  ports: BpfMap;
}

const BPF_FS_MAGIC = 0xcafe4a11;

export interface LoadedMaps {
  peers: BpfMap;
  config: BpfMap;
  stats: BpfMap;
  drops: BpfMap;
}

export interface Loaded {
  maps: LoadedMaps;
  /** weft_ports, shared by the objects and pinned nowhere: this process fills it. */
  ports: BpfMap;
  /** weft_ct_wanted, shared the same way: the programs fill it, this process empties it (fastpath.ts). */
  ctWanted: BpfMap;
  /** weft_ct_wake, shared the same way: a record for each flow the programs add to weft_ct_wanted. */
  ctWake: BpfMap;
  overlay: BpfObject;
  underlay: BpfObject;
  /** gateway_ingress (bpf/gateway.c), when asked for. */
  gateway?: BpfProgram;
  /** from_pod (bpf/gateway.c), when asked for. */
  fromPod?: FromPod;
}

/** Closes every handle of a load that will not be used. Pinned maps stay pinned: the next start reuses them. */
export function closeLoaded(l: Loaded): void {
  for (const m of Object.values(l.maps)) m.close();
  l.ports.close();
  l.ctWanted.close();
  l.ctWake.close();
  l.overlay.close();
  l.underlay.close();
  l.gateway?.close();
  l.fromPod?.prog.close();
  l.fromPod?.ports.close();
}

export function objectPath(name: ObjectFile): string {
  return path.join(OBJECT_DIR, name);
}

/** The pin dir must be on a bpffs, or pins vanish with the process. */
export function checkPinDir(pinDir: string): void {
  let dir = pinDir;
  while (!fs.existsSync(dir)) dir = path.dirname(dir);
  const type = Number(fs.statfsSync(dir).type);
  if (type !== BPF_FS_MAGIC && !fs.existsSync(pinDir)) {
    throw new Error(`--bpf-pin-dir ${pinDir}: ${dir} is not on a BPF filesystem; mount one (mount -t bpf bpf /sys/fs/bpf) or choose a directory inside one`);
  }
  fs.mkdirSync(pinDir, { recursive: true });
  if (Number(fs.statfsSync(pinDir).type) !== BPF_FS_MAGIC) {
    throw new Error(`--bpf-pin-dir ${pinDir} is not on a BPF filesystem (mount -t bpf bpf /sys/fs/bpf, or choose a directory inside one)`);
  }
}

/** Loads on a libuv thread (BpfObject.loadAsync): the verifier's 150 to 200 ms at a start no longer hold up the agent's other work. */
async function loadPinned(file: ObjectFile, pinDir: string, log: Logger): Promise<BpfObject> {
  try {
    return await BpfObject.loadAsync(objectPath(file), { pinRoot: pinDir });
  } catch (err) {
    // A pin from an older map layout cannot be reused: drop it (counters restart) and load again.
    if (!isErrnoError(err, 'EINVAL') || !/reuse pinned map|pinned map/i.test((err as Error).message)) throw err;
    log.warn({ pinDir, err: (err as Error).message.split('\n')[0] }, 'pinned maps do not match this version of the programs; replacing them');
    unpinMaps(pinDir);
    return BpfObject.loadAsync(objectPath(file), { pinRoot: pinDir });
  }
}

/**
 * Loads both objects; their maps are the same pinned instances. weft_ports
 * is shared the same way and then unpinned: it is a cache of the bridges'
 * FDB that every agent rebuilds, so the next agent starts from an empty one
 * (its programs replace these and drop the old map with them). So are
 * weft_ct_wanted, weft_ct_wake and weft_pod_ports (gateway.o's, when it is loaded).
 */
export async function loadObjects(pinDir: string, log: Logger, opts: { gateway?: boolean; fromPod?: boolean } = {}): Promise<Loaded> {
  checkPinDir(pinDir);
  // One after the other: underlay.o reuses the maps overlay.o pinned.
  const overlay = await loadPinned('overlay.o', pinDir, log);
  const underlay = await loadPinned('underlay.o', pinDir, log);
  let gateway: BpfProgram | undefined;
  let fromPodProg: BpfProgram | undefined;
  if (opts.gateway || opts.fromPod) {
    const obj = await loadPinned('gateway.o', pinDir, log);
    if (opts.gateway) gateway = obj.program('gateway_ingress' satisfies ProgramName);
    if (opts.fromPod) fromPodProg = obj.program('from_pod' satisfies ProgramName);
    obj.close();
  }
  const [ports, ctWanted, podPorts, ctWake] = TRANSIENT_MAPS.map((name) => {
    const m = overlay.map(name);
    if (underlay.map(name).id !== m.id) throw new Error(`${name}: overlay.o and underlay.o loaded different maps (pin dir ${pinDir})`);
    fs.rmSync(path.join(pinDir, name), { force: true });
    return m;
  });
  return {
    overlay,
    underlay,
    gateway,
    fromPod: fromPodProg ? { prog: fromPodProg, ports: podPorts } : (podPorts.close(), undefined),
    ports,
    ctWanted,
    ctWake,
    maps: { peers: overlay.map(MAP_PEERS), config: overlay.map(MAP_CONFIG), stats: overlay.map(MAP_STATS), drops: overlay.map(MAP_DROPS) },
  };
}

/** Opens the pinned maps without loading programs (a running or stopped agent's maps). */
export function openPinnedMaps(pinDir: string): LoadedMaps {
  const open = (name: string): BpfMap => BpfMap.fromPin(path.join(pinDir, name));
  return { peers: open(MAP_PEERS), config: open(MAP_CONFIG), stats: open(MAP_STATS), drops: open(MAP_DROPS) };
}

/** Attaches one of the loaded object's programs at the hook PROGRAMS names for it. */
export function attach(ifindex: number, obj: BpfObject, program: ProgramName): number {
  return attachProgram(ifindex, hookOf(program), obj.program(program).fd);
}

export function attachProgram(ifindex: number, hook: TcHook, progFd: number): number {
  tcHookCreate(ifindex);
  return tcAttach({ ifindex, hook, progFd, handle: TC_HANDLE, priority: TC_PRIORITY, replace: true }).progId;
}

/** Whether weft's filter (its handle and priority) is on the hook; with progId, whether it runs that program. */
export function weftFilterOn(ifindex: number, hook: TcHook, progId?: number): boolean {
  return tcFilters(ifindex, hook).some((f) => f.handle === TC_HANDLE && f.priority === TC_PRIORITY && (progId === undefined || f.progId === progId));
}

/** Detaches weft's filter from a hook, and removes the clsact qdisc if weft's was the last filter on it. */
export function detach(ifindex: number, hook: TcHook): boolean {
  if (!weftFilterOn(ifindex, hook)) return false;
  tcDetach({ ifindex, hook, handle: TC_HANDLE, priority: TC_PRIORITY });
  if (tcFilters(ifindex, 'ingress').length === 0 && tcFilters(ifindex, 'egress').length === 0) {
    try {
      tcHookDestroy(ifindex);
    } catch {
      /* already gone */
    }
  }
  return true;
}

export function unpinMaps(pinDir: string): string[] {
  const removed: string[] = [];
  for (const name of [...WEFT_MAPS, ...TRANSIENT_MAPS]) {
    const p = path.join(pinDir, name);
    if (fs.existsSync(p)) {
      fs.rmSync(p);
      removed.push(p);
    }
  }
  try {
    fs.rmdirSync(pinDir);
  } catch {
    /* not empty (someone else's pins) or already gone */
  }
  return removed;
}
