// `weft bpf programs`: what is attached on which interface and hook, which
// pins exist, and what looks stale. Reads the kernel only (tcx link queries and
// TC filter dumps in this network namespace, bpffs pins, the pinned weft_config).
import fs from 'node:fs';
import path from 'node:path';
import { BpfLink, BpfMap, BpfProgram, progInfo, tcFilters, tcxPrograms, tcxSupported, type TcHook } from '../../native/bpf.js';
import { NetlinkHandle } from '../../native/netlink.js';
import { MAP_CONFIG, type DecodedConfig } from '../../dataplane/ebpf/maps.js';
import { ALL_PROGRAMS, PROGRAMS, TC_HANDLE, type ProgramName, type ProgramOf } from '../../dataplane/ebpf/loader.js';
import { findGatewayDevice } from '../../dataplane/ebpf/gateway.js';
import { IPNet } from '../../core/ipnet.js';
import { MAP_NAMES, PinnedMaps, noPinsError, type MapName } from './pins.js';
import { dash, table } from '../table.js';

const HOOKS: TcHook[] = ['ingress', 'egress'];
/** gateway.o's programs: on the pods' gateway bridge (gateway_ingress) and its ports (from_pod), not on weft's devices. */
const POD_SIDE = Object.keys(PROGRAMS['gateway.o']) as Array<string | null>;

/** The device each object's programs run on (src/dataplane/ebpf/index.ts); the hooks are the loader's PROGRAMS. */
const ROLE = { 'overlay.o': 'overlay', 'underlay.o': 'underlay' } as const;
type Expected = ProgramOf<keyof typeof ROLE>;
const EXPECTED = (Object.keys(ROLE) as Array<keyof typeof ROLE>).flatMap((file) =>
  Object.entries(PROGRAMS[file]).map(([program, hook]) => ({ role: ROLE[file], hook: hook as TcHook, program: program as Expected })),
);

/** A program on a hook: a tcx link (run first, in order) or a classic TC filter in the clsact qdisc. */
export interface AttachedFilter {
  ifindex: number;
  ifname: string;
  hook: TcHook;
  attach: 'tcx' | 'tc';
  /** tcx: the link's id (null for a program attached without a link); tc: null. */
  linkId: number | null;
  /** underlay / overlay per weft_config, or null for any other interface. */
  role: 'underlay' | 'overlay' | null;
  /** tc: the filter's handle; tcx: 0. */
  handle: number;
  /** tc: the filter's priority; tcx: its place in the chain, from 1. */
  priority: number;
  /** tc: the classifier ("bpf"); tcx: "tcx". */
  kind: string;
  progId: number | null;
  /** The program's own name (the kernel keeps 15 characters). */
  name: string | null;
  /** The filter's name as tc shows it, e.g. "overlay_egress:[42]". */
  filterName: string | null;
  tag: string | null;
  directAction: boolean;
  /** One of weft's programs, by name, or a program weft pinned. */
  weft: boolean;
  /** In weft's own TC slot (the handle the loader uses). */
  weftSlot: boolean;
}

export interface PinEntry {
  path: string;
  name: string;
  kind: 'map' | 'prog' | 'link' | 'dir' | 'other';
  id: number | null;
  /** Map or program type as libbpf names it. */
  type: string | null;
  /** The kernel's name of the object (maps and programs). */
  objectName: string | null;
  tag: string | null;
  error: string | null;
}

export interface Finding {
  /** stale: left behind or duplicated, worth cleaning; warning: not as weft would set it up. */
  severity: 'stale' | 'warning';
  message: string;
}

export interface ProgramsReport {
  pinDir: string;
  config: { underlayIfindex: number; underlayIfname: string | null; overlayIfindex: number; overlayIfname: string | null; ready: boolean; backend: string } | null;
  filters: AttachedFilter[];
  pins: PinEntry[];
  findings: Finding[];
}

/** What a bpffs file is: the fd's anon inode says map, prog or link (object info alone cannot tell them apart). */
function describePin(file: string): PinEntry {
  const base: PinEntry = { path: file, name: path.basename(file), kind: 'other', id: null, type: null, objectName: null, tag: null, error: null };
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    return { ...base, error: (err as Error).message };
  }
  if (st.isDirectory()) return { ...base, kind: 'dir' };
  let m: BpfMap;
  try {
    m = BpfMap.fromPin(file);
  } catch (err) {
    return { ...base, error: (err as Error).message };
  }
  let anon = '';
  try {
    anon = fs.readlinkSync(`/proc/self/fd/${m.fd}`);
  } catch {
    /* no /proc: fall through as a map */
  }
  if (anon.includes('bpf-prog')) {
    m.close();
    const p = BpfProgram.fromPin(file);
    const out: PinEntry = { ...base, kind: 'prog', id: p.id, type: p.type, objectName: p.name, tag: p.tag };
    p.close();
    return out;
  }
  if (anon.includes('bpf_link') || anon.includes('bpf-link')) {
    m.close();
    const l = BpfLink.fromPin(file);
    try {
      const info = l.info();
      return { ...base, kind: 'link', id: info.id, type: info.type, objectName: programName(info.progId) };
    } finally {
      l.close();
    }
  }
  const out: PinEntry = { ...base, kind: 'map', id: m.id, type: m.type, objectName: m.name };
  m.close();
  return out;
}

/** The filter dump names a filter ("overlay_egress:[42]"), not its program: ask the kernel for the program. */
function programName(id: number): string | null {
  try {
    return progInfo(id).name;
  } catch {
    return null; // detached and freed between the dump and this call
  }
}

/** Where a program sits on its hook, as `weft bpf programs` prints it. */
export function slot(f: Pick<AttachedFilter, 'attach' | 'linkId' | 'priority' | 'handle'>): string {
  return f.attach === 'tcx' ? `tcx #${f.priority}${f.linkId ? ` link ${f.linkId}` : ''}` : `tc pref ${f.priority} handle 0x${f.handle.toString(16)}`;
}

function listPins(dir: string): PinEntry[] {
  const out: PinEntry[] = [];
  const walk = (d: string): void => {
    for (const name of fs.readdirSync(d).sort()) {
      const e = describePin(path.join(d, name));
      out.push(e);
      if (e.kind === 'dir') walk(e.path);
    }
  };
  walk(dir);
  return out;
}

function readConfig(dir: string): DecodedConfig | null {
  if (!fs.existsSync(path.join(dir, MAP_CONFIG))) return null;
  const maps = PinnedMaps.open(dir, [MAP_CONFIG]);
  try {
    return maps.config();
  } finally {
    maps.close();
  }
}

/** The name of the map with this id, or null once it is gone. */
function mapName(id: number): string | null {
  try {
    const m = BpfMap.fromId(id);
    const name = m.name;
    m.close();
    return name;
  } catch {
    return null;
  }
}

/**
 * weft programs attached here whose maps are not the pinned ones: loaded by
 * another agent (another pin dir, a private bpffs), or left by one whose pins
 * were removed. They read a peer map the agent no longer writes.
 */
function foreignMaps(filters: AttachedFilter[], pins: PinEntry[]): Finding[] {
  const pinned = new Map(pins.filter((p) => p.kind === 'map' && p.id !== null).map((p) => [p.name, p.id!]));
  const out: Finding[] = [];
  for (const f of filters) {
    if (!f.weft || f.progId === null) continue;
    let ids: number[];
    try {
      ids = progInfo(f.progId).mapIds;
    } catch {
      continue; // detached and freed since the dump
    }
    for (const id of ids) {
      const name = mapName(id);
      const want = name === null ? undefined : pinned.get(name);
      if (want === undefined || want === id) continue;
      out.push({
        severity: 'stale',
        message: `${f.name ?? `prog ${f.progId}`} (prog ${f.progId}) on ${f.ifname} ${f.hook} uses ${name} id ${id}, but the pinned ${name} is id ${want}: it was loaded by another agent or before these pins were made, and reads a map no agent writes; restart the agent that owns this pin dir`,
      });
    }
  }
  return out;
}

const WHY_EXPECTED: Record<Expected, string> = {
  overlay_egress: 'packets routed to the Network are not forwarded to peers',
  overlay_ingress: 'decapsulated vxlan traffic is not counted, not held to the VNI and sender rule, and not handed to pods directly',
  underlay_decap: 'ipip and udp tunnels are not decapsulated, direct traffic not counted',
};

export function inspectPrograms(pinDir: string): ProgramsReport {
  if (!fs.existsSync(pinDir)) throw noPinsError(pinDir);
  const pins = listPins(pinDir);
  const cfg = readConfig(pinDir);
  const nl = NetlinkHandle.open();
  let links: Array<{ index: number; name: string }>;
  // The pods' gateway bridge and its ports, found as the agent finds them (by the address that holds our subnet).
  const podSide = new Set<number>();
  try {
    const all = nl.links();
    links = all.map((l) => ({ index: l.index, name: l.name }));
    const subnet = cfg ? IPNet.parse(cfg.subnet) : null;
    const gw = cfg && subnet ? findGatewayDevice(nl, subnet, [cfg.underlayIfindex, cfg.overlayIfindex]) : null;
    if (gw) for (const l of all) if (l.index === gw.index || l.master === gw.index) podSide.add(l.index);
  } finally {
    nl.close();
  }
  const nameOf = (i: number): string | null => links.find((l) => l.index === i)?.name ?? null;
  const pinnedProgIds = new Set(pins.filter((p) => p.kind === 'prog').map((p) => p.id));
  const roleOf = (i: number): AttachedFilter['role'] => (cfg && i === cfg.underlayIfindex ? 'underlay' : cfg && i === cfg.overlayIfindex ? 'overlay' : null);

  const filters: AttachedFilter[] = [];
  const pinnedLinkIds = new Set(pins.filter((p) => p.kind === 'link').map((p) => p.id));
  const tcx = tcxSupported();
  for (const l of links) {
    for (const hook of HOOKS) {
      // tcx programs run before the clsact filters: listed first, in their order.
      for (const [i, e] of (tcx ? tcxPrograms(l.index, hook) : []).entries()) {
        const name = programName(e.progId);
        let tag: string | null = null;
        try {
          tag = progInfo(e.progId).tag;
        } catch {
          /* detached meanwhile */
        }
        filters.push({
          ifindex: l.index,
          ifname: l.name,
          hook,
          attach: 'tcx',
          linkId: e.linkId || null,
          role: roleOf(l.index),
          handle: 0,
          priority: i + 1,
          kind: 'tcx',
          progId: e.progId,
          name,
          filterName: null,
          tag,
          directAction: true,
          weft: (name !== null && ALL_PROGRAMS.includes(name as ProgramName)) || pinnedProgIds.has(e.progId) || pinnedLinkIds.has(e.linkId),
          weftSlot: false,
        });
      }
      for (const f of tcFilters(l.index, hook)) {
        const name = f.progId === undefined ? null : programName(f.progId);
        const weft = (name !== null && ALL_PROGRAMS.includes(name as ProgramName)) || (f.progId !== undefined && pinnedProgIds.has(f.progId));
        filters.push({
          ifindex: l.index,
          ifname: l.name,
          hook,
          attach: 'tc',
          linkId: null,
          role: roleOf(l.index),
          handle: f.handle,
          priority: f.priority,
          kind: f.kind,
          progId: f.progId ?? null,
          name,
          filterName: f.name ?? null,
          tag: f.tag ?? null,
          directAction: f.directAction,
          weft,
          weftSlot: f.handle === TC_HANDLE,
        });
      }
    }
  }

  const findings: Finding[] = [];
  const used = new Set<number>(cfg ? [cfg.underlayIfindex, cfg.overlayIfindex].filter((i) => i > 0) : []);
  if (cfg) {
    for (const [role, i] of [['underlay', cfg.underlayIfindex], ['overlay', cfg.overlayIfindex]] as const) {
      if (i > 0 && nameOf(i) === null) findings.push({ severity: 'stale', message: `weft_config names ${role} ifindex ${i}, which does not exist in this network namespace: the device was deleted (restart the agent), or run this in the agent's namespace` });
    }
  }
  const byHook = new Map<string, AttachedFilter[]>();
  for (const f of filters) {
    const k = `${f.ifname} ${f.hook}`;
    byHook.set(k, [...(byHook.get(k) ?? []), f]);
    if (f.weft && !used.has(f.ifindex) && !(POD_SIDE.includes(f.name) && podSide.has(f.ifindex))) {
      findings.push({
        severity: 'stale',
        message: `${f.name ?? `prog id ${f.progId}`} is attached on ${f.ifname} ${f.hook}, an interface weft does not use${cfg ? ` (weft_config: underlay ${nameOf(cfg.underlayIfindex) ?? cfg.underlayIfindex}, overlay ${nameOf(cfg.overlayIfindex) ?? cfg.overlayIfindex})` : ' (no weft_config)'}`,
      });
    }
  }
  // Other software's programs beside weft's are fine (they run in turn); two of weft's on one hook are not.
  for (const [k, fs_] of byHook) {
    const mine = fs_.filter((f) => f.weft);
    if (mine.length > 1) {
      findings.push({ severity: 'stale', message: `${mine.length} weft programs on ${k}: ${mine.map((f) => `${f.name ?? f.kind} (prog ${f.progId ?? '-'}, ${slot(f)})`).join(', ')}; weft attaches one per hook` });
    }
  }
  if (cfg?.ready) {
    for (const e of EXPECTED) {
      const ifindex = e.role === 'overlay' ? cfg.overlayIfindex : cfg.underlayIfindex;
      const ifname = nameOf(ifindex);
      if (ifindex <= 0 || ifname === null) continue;
      const here = filters.filter((f) => f.ifindex === ifindex && f.hook === e.hook && f.weft);
      if (here.length === 0) findings.push({ severity: 'warning', message: `${e.program} is not attached on ${ifname} ${e.hook} (the ${e.role}): ${WHY_EXPECTED[e.program]}; restart the agent` });
      else if (!here.some((f) => f.name === e.program)) findings.push({ severity: 'warning', message: `${ifname} ${e.hook} runs ${here.map((f) => f.name).join(', ')} where weft attaches ${e.program}` });
    }
  }
  const attachedIds = new Set(filters.map((f) => f.progId));
  for (const p of pins) {
    if (p.error) findings.push({ severity: 'stale', message: `pin ${p.path} cannot be opened (${p.error}): not a BPF object weft can read` });
    else if (p.kind === 'prog' && !attachedIds.has(p.id)) findings.push({ severity: 'stale', message: `pinned program ${p.objectName} (id ${p.id}) at ${p.path} is attached nowhere in this namespace` });
    else if (p.kind === 'link' && !filters.some((f) => f.linkId !== null && f.linkId === p.id)) findings.push({ severity: 'stale', message: `pinned link ${p.name} (id ${p.id}, ${p.objectName ?? 'no program'}) at ${p.path} holds no hook in this namespace: its device is gone; restart the agent (or weft uninstall)` });
    else if (p.kind === 'map' && !(MAP_NAMES as string[]).includes(p.name)) findings.push({ severity: 'warning', message: `pin ${p.path} is a map weft does not know (${p.type} ${p.objectName})` });
  }
  findings.push(...foreignMaps(filters, pins));
  const missing = MAP_NAMES.filter((n: MapName) => !pins.some((p) => p.name === n && p.kind === 'map'));
  if (missing.length && missing.length < MAP_NAMES.length) findings.push({ severity: 'stale', message: `${pinDir} lacks ${missing.join(', ')}: a partial install; restart the agent` });
  if (pins.length === 0 && !filters.some((f) => f.weft)) throw noPinsError(pinDir);

  return {
    pinDir,
    config: cfg && {
      underlayIfindex: cfg.underlayIfindex,
      underlayIfname: nameOf(cfg.underlayIfindex),
      overlayIfindex: cfg.overlayIfindex,
      overlayIfname: nameOf(cfg.overlayIfindex),
      ready: cfg.ready,
      backend: cfg.backend,
    },
    // Other software's filters matter only where they share a hook with weft's.
    filters: filters.filter((f) => f.weft || used.has(f.ifindex)),
    pins,
    findings,
  };
}

/** `weft bpf programs` as a table. */
export function formatPrograms(r: ProgramsReport): string {
  const c = r.config;
  const name = (n: string | null, i: number): string => `${n ?? '(gone)'} (ifindex ${i})`;
  let out = `pin dir ${r.pinDir}; ` + (c ? `weft_config: underlay ${name(c.underlayIfname, c.underlayIfindex)}, overlay ${name(c.overlayIfname, c.overlayIfindex)}, backend ${c.backend === 'direct' ? 'host-gw' : c.backend}${c.ready ? '' : ', NOT READY'}` : 'no weft_config written') + '\n\n';
  out += r.filters.length
    ? table(
        ['INTERFACE', 'ROLE', 'HOOK', 'PROGRAM', 'PROG ID', 'TAG', 'ATTACHED', 'WEFT'],
        r.filters.map((f) => [f.ifname, dash(f.role), f.hook, dash(f.name ?? f.kind), dash(f.progId), dash(f.tag), slot(f), f.weft ? 'yes' : 'no']),
      )
    : 'no programs on the interfaces weft uses, and no weft program attached anywhere in this network namespace\n';
  out += '\n';
  out += r.pins.length
    ? table(['PIN', 'KIND', 'ID', 'NAME', 'TYPE', 'TAG'], r.pins.map((p) => [p.path, p.kind, dash(p.id), dash(p.objectName), dash(p.type), dash(p.tag)]))
    : `no pins in ${r.pinDir}\n`;
  out += '\n' + (r.findings.length ? `problems:\n${r.findings.map((f) => `  ${f.severity}: ${f.message}`).join('\n')}\n` : 'no problems found\n');
  return out;
}
