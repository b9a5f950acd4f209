// Checks of the pin dir made before anything is leased or created: the pins
// are the dataplane's state (the peer map the programs read), so whoever can
// write the directory can swap them. And pins only persist on a bpffs that
// outlives the agent: one the agent mounted in a private mount namespace
// (`ip netns exec`, a container without the host's /sys/fs/bpf) is gone when
// it exits, and the next agent starts from nothing.
import fs from 'node:fs';
import path from 'node:path';
import { usageError } from '../../core/errors.js';
import { BPF_FS_MAGIC, BPFFS_MOUNT } from '../probe.js';
import { PINNED_MAPS, MAP_PORTS } from './maps.js';

const FIX_MOUNT =
  `mount bpffs on the host (mount -t bpf bpf ${BPFFS_MOUNT}) and start the agent with nsenter --net=/run/netns/NAME, which keeps the host's mounts, ` +
  `rather than ip netns exec; in a container, share the host's ${BPFFS_MOUNT} into it (-v ${BPFFS_MOUNT}:${BPFFS_MOUNT}:rshared)`;

function onBpffs(p: string): boolean {
  try {
    return Number(fs.statfsSync(p).type) === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** The directories from the pin dir up to the root of the bpffs it is on (existing ones only). */
function bpffsAncestors(pinDir: string): string[] {
  const out: string[] = [];
  let dir = path.resolve(pinDir);
  while (!fs.existsSync(dir) && dir !== path.dirname(dir)) dir = path.dirname(dir);
  if (!onBpffs(dir)) return [];
  for (;;) {
    out.push(dir);
    const up = path.dirname(dir);
    if (up === dir || !onBpffs(up) || fs.statSync(up).dev !== fs.statSync(dir).dev) return out;
    dir = up;
  }
}

/**
 * Refuses a pin dir someone other than root could rewrite: the dir itself
 * must be root's and writable by root alone, each directory above it on the
 * bpffs root's and not writable by others (unless sticky, as /sys/fs/bpf
 * often is), and weft's pins in it neither symlinks nor anyone else's.
 */
export function checkPinDirOwnership(pinDir: string): void {
  const dir = path.resolve(pinDir);
  for (const d of bpffsAncestors(dir)) {
    const st = fs.lstatSync(d);
    const what = d === dir ? `--bpf-pin-dir ${pinDir}` : `${d} (above --bpf-pin-dir ${pinDir})`;
    if (st.isSymbolicLink()) throw usageError(`${what} is a symlink: whoever can change it chooses where weft's pins go; use the real path`, '--bpf-pin-dir');
    if (st.uid !== 0) {
      throw usageError(`${what} is owned by uid ${st.uid}, not root: that user can move weft's pins away or plant their own; chown root:root ${d} && chmod 0755 ${d}, or remove it and let weft create it`, '--bpf-pin-dir');
    }
    const othersWrite = (st.mode & 0o022) !== 0;
    const sticky = (st.mode & 0o1000) !== 0;
    if (othersWrite && (d === dir || !sticky)) {
      throw usageError(`${what} is writable by others (mode ${(st.mode & 0o7777).toString(8)}): anyone can replace weft's pins; chmod 0755 ${d}`, '--bpf-pin-dir');
    }
  }
  for (const name of [...PINNED_MAPS, MAP_PORTS]) {
    const p = path.join(dir, name);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      continue; // not pinned yet: the agent creates it
    }
    if (st.isSymbolicLink()) throw usageError(`${p} is a symlink (to ${fs.readlinkSync(p)}), not a pin weft made: remove it (rm ${p}) and start the agent again`, '--bpf-pin-dir');
    if (st.uid !== 0) throw usageError(`${p} is owned by uid ${st.uid}, not root: weft did not pin it; remove it (rm ${p}) and start the agent again`, '--bpf-pin-dir');
  }
}

/** The mount namespace of a process, as /proc names it ("mnt:[4026531841]"); null when unreadable. */
function mountNs(pid: number | 'self'): string | null {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return null;
  }
}

/**
 * A process whose mounts stand for the host's: PID 1 where we may read it,
 * else our parent (`ip netns exec` execs the agent in a mount namespace of its
 * own, so the parent is still in the one it was started from).
 */
function reference(): { pid: number; ns: string } | null {
  for (const pid of [1, process.ppid]) {
    const ns = mountNs(pid);
    if (ns) return { pid, ns };
  }
  return null;
}

/**
 * Whether the pins in `pinDir` will outlive this agent, said plainly with the
 * fix when they will not; null when they will (or when it cannot be told).
 * Two cases, both in a mount namespace other than the host's: no bpffs at the
 * pin dir (the agent would mount its own, private one), or a bpffs there that
 * is not the one the host sees at the same path.
 */
export function pinPersistence(pinDir: string): string | null {
  const ours = mountNs('self');
  const ref = reference();
  if (!ours || !ref || ours === ref.ns) return null;
  const dir = path.resolve(pinDir);
  let probe = dir;
  while (!fs.existsSync(probe) && probe !== path.dirname(probe)) probe = path.dirname(probe);
  if (!onBpffs(probe)) {
    return `pins will not survive a restart: there is no bpffs at ${pinDir} in this agent's mount namespace (${ours}; pid ${ref.pid}'s is ${ref.ns}), so the agent mounts one that is private to this agent's mount namespace and vanishes with it (ip netns exec does this: it gives the command a private mount namespace and a fresh /sys); ${FIX_MOUNT}`;
  }
  // The reference's view of the same path, through its root.
  let refDev: number | null = null;
  try {
    let h = path.join(`/proc/${ref.pid}/root`, probe);
    while (!fs.existsSync(h) && h !== `/proc/${ref.pid}/root`) h = path.dirname(h);
    if (onBpffs(h)) refDev = fs.statSync(h).dev;
  } catch {
    return null; // its root is not ours to read: nothing can be told
  }
  if (refDev === fs.statSync(probe).dev) return null;
  return `pins will not survive a restart: the bpffs at ${pinDir} is private to this agent's mount namespace (${ours}), not the one pid ${ref.pid} sees ${refDev === null ? '(it has no bpffs there)' : '(another mount)'}; ${FIX_MOUNT}`;
}
