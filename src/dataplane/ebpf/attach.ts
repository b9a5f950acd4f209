// How weft's programs sit on their hooks. On kernels with tcx (6.6+) each
// program is held by a bpf link pinned beside the maps (<pin dir>/link_<program>):
// a restarted agent finds the pin and swaps the program in place
// (BPF_LINK_UPDATE), so the link keeps its id and its place, and programs that
// others attached to the same hook, as links or as classic TC filters, keep
// running beside weft's. Elsewhere (or with WEFT_EBPF_TCX=0) a classic filter
// in weft's clsact slot (loader.ts). Switching between the two never leaves
// a hook without weft's program: the new attachment is made before the old
// one is removed.
//
// Beside other programs, weft's programs end with TC_ACT_UNSPEC (TCX_NEXT)
// for every packet they leave alone (counters.h), so that what follows on the
// hook still sees it.
import fs from 'node:fs';
import path from 'node:path';
import { BpfLink, isErrnoError, tcxPrograms, tcxSupported, progInfo, type TcHook } from '../../native/bpf.js';
import { ALL_PROGRAMS, attachProgram, detach, hookOf, type ProgramName } from './loader.js';

export type AttachMode = 'tcx' | 'tc';

/** The pin of the link that holds `program` on its hook. */
export function linkPin(pinDir: string, program: ProgramName): string {
  return path.join(pinDir, `link_${program}`);
}

/** tcx when the kernel has it and WEFT_EBPF_TCX is not 0; the classic clsact filter otherwise. */
export function attachMode(wantTcx: boolean): AttachMode {
  return wantTcx && tcxSupported() ? 'tcx' : 'tc';
}

export interface Attached {
  program: ProgramName;
  mode: AttachMode;
  progId: number;
  /** tcx: the link's id, the same across restarts. */
  linkId?: number;
  /** tcx: whether an existing link was updated in place (a restart) rather than created. */
  updated?: boolean;
}

/** Opens the pinned link if it holds this hook of this device; a pin for another device (or a deleted one) is removed. */
function adoptLink(pin: string, ifindex: number, hook: TcHook): BpfLink | null {
  if (!fs.existsSync(pin)) return null;
  let link: BpfLink;
  try {
    link = BpfLink.fromPin(pin);
  } catch {
    // Not a link (something else pinned at our name): ours to replace.
    fs.rmSync(pin, { force: true });
    return null;
  }
  const info = link.info();
  if (info.type === 'tcx' && info.ifindex === ifindex && info.hook === hook) return link;
  // The device was recreated, or the interface changed: the old link goes with its pin.
  if (info.type === 'tcx' && info.ifindex) link.detach();
  link.close();
  fs.rmSync(pin, { force: true });
  return null;
}

/**
 * Puts `program` (progFd) on `ifindex` at the hook PROGRAMS names for it:
 * a pinned tcx link, updated in place when one is already there, or a
 * classic filter. Whatever the other mode left for this program on this hook
 * is removed afterwards. opts.pin: where the link is pinned, for a program
 * that runs on many devices (from_pod: one link per port, podports.ts);
 * opts.first: a new link at the head of the hook's tcx chain (the default,
 * on weft's own devices) or at its tail.
 */
export function attachHook(pinDir: string, ifindex: number, program: ProgramName, progFd: number, mode: AttachMode, opts: { pin?: string; first?: boolean } = {}): Attached {
  const hook = hookOf(program);
  const pin = opts.pin ?? linkPin(pinDir, program);
  if (mode === 'tc') {
    const progId = attachProgram(ifindex, hook, progFd);
    removeLinkPin(pin);
    return { program, mode, progId };
  }
  let link = adoptLink(pin, ifindex, hook);
  const updated = link !== null;
  try {
    if (link) link.update(progFd);
    else {
      link = BpfLink.attachTcx(ifindex, hook, progFd, opts.first ?? true);
      link.pin(pin);
    }
    const info = link.info();
    // An older agent's (or a WEFT_EBPF_TCX=0 run's) filter in weft's clsact slot would run the old program too.
    detach(ifindex, hook);
    return { program, mode, progId: info.progId, linkId: info.id, updated };
  } finally {
    link?.close();
  }
}

/** Detaches and unpins the link a pin holds; false when there was none. */
export function removeLinkPin(pin: string): boolean {
  if (!fs.existsSync(pin)) return false;
  try {
    const link = BpfLink.fromPin(pin);
    try {
      link.detach();
    } catch (err) {
      // Already defunct (its device is gone): only the pin is left to remove.
      if (!isErrnoError(err)) throw err;
    } finally {
      link.close();
    }
  } catch (err) {
    if (!isErrnoError(err)) throw err;
  }
  fs.rmSync(pin, { force: true });
  return true;
}

export interface WeftLink {
  ifindex: number;
  hook: TcHook;
  program: ProgramName;
  progId: number;
  linkId: number;
}

/** weft's programs held by tcx links on a device (by program name), pinned or not. */
export function weftLinks(ifindex: number): WeftLink[] {
  if (!tcxSupported()) return [];
  const out: WeftLink[] = [];
  for (const hook of ['ingress', 'egress'] as const) {
    for (const e of tcxPrograms(ifindex, hook)) {
      if (!e.linkId) continue;
      let name: string;
      try {
        name = progInfo(e.progId).name;
      } catch {
        continue; // detached between the query and this call
      }
      if ((ALL_PROGRAMS as string[]).includes(name)) out.push({ ifindex, hook, program: name as ProgramName, progId: e.progId, linkId: e.linkId });
    }
  }
  return out;
}

/** Detaches a link by id (uninstall: a weft link whose pin is gone). */
export function detachLinkById(linkId: number): void {
  const link = BpfLink.fromId(linkId);
  try {
    link.detach();
  } finally {
    link.close();
  }
}

/** Every link pin in the pin dir (one per program, or per device for a program on many), for uninstall. */
export function linkPins(pinDir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(pinDir);
  } catch {
    return []; // no pin dir: nothing pinned
  }
  const ours = ALL_PROGRAMS.map((p) => path.basename(linkPin(pinDir, p)));
  return names.filter((n) => ours.some((o) => n === o || n.startsWith(`${o}_`))).map((n) => path.join(pinDir, n));
}
