// What `weft agent` checks about the host before anything is leased or
// created: that no other agent runs here, and that the pin dir is root's and
// will outlive the agent.
//
// One agent per host is a lock held for the agent's life. Node has no flock,
// and a pid file or a probe of the status socket goes stale when an agent is
// killed (and races when two start together), so the lock is flock(2) through
// the addon: the kernel drops it when the process ends, however it ends. Three
// locks, one per thing two agents would fight over:
// - the network namespace (its nsfs file /proc/self/ns/net: every process in
//   the namespace opens the same inode), whose devices and routes the
//   dataplane owns; an abstract unix socket would do for this one, but not
//   for the two below, which are shared across namespaces;
// - the pin dir, whose maps the programs read (lab hosts and containers can
//   share one bpffs across network namespaces);
// - the status socket, through a lock file beside it (a socket file itself
//   cannot be opened to lock).
// A refusal names the agent holding the lock (its pid, from /proc/locks, and
// its command line), and comes before the status socket is touched, so a
// live agent's socket is never unlinked and its lease never re-leased.
import fs from 'node:fs';
import path from 'node:path';
import { WeftError } from '../core/errors.js';
import { lockHolders, tryLock } from '../native/lock.js';
import { checkPinDirOwnership, pinPersistence } from '../dataplane/ebpf/pin-check.js';
import { BPF_FS_MAGIC } from '../dataplane/probe.js';
import type { DataplaneChoice } from './dataplane.js';

export interface PreflightOptions {
  pinDir: string;
  statusSocket?: string;
  dataplane: DataplaneChoice;
}

/** What the pre-flight found that the agent should report but that does not stop it (a private bpffs). */
export interface Preflight {
  notes: string[];
}

/** Fds of the locks this process holds; kept open (and referenced) for the process's life. */
const held: number[] = [];

function describeHolder(pid: number): string {
  let cmd = '';
  try {
    cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    // It exited between the lock check and this read: the pid is all there is.
  }
  const flag = (name: string): string | undefined => {
    const m = new RegExp(`--${name}(?:=| )(\\S+)`).exec(cmd);
    return m?.[1];
  };
  const where = [flag('status-socket') && `status socket ${flag('status-socket')}`, flag('bpf-pin-dir') && `pin dir ${flag('bpf-pin-dir')}`].filter(Boolean);
  return `another weft agent (pid ${pid})${where.length ? ` (${where.join(', ')})` : ''}`;
}

function lockOrRefuse(file: string, what: string): void {
  const fd = tryLock(file);
  if (fd !== null) {
    held.push(fd);
    return;
  }
  const pids = lockHolders(file).filter((p) => p !== process.pid);
  const who = pids.length ? describeHolder(pids[0]) : 'another weft agent';
  throw new WeftError(
    `${who} already uses ${what}; two agents there would fight over the same devices, maps and lease. ` +
      `Stop it first${pids.length ? ` (kill ${pids[0]})` : ''}, or give this one its own network namespace, --bpf-pin-dir and --status-socket`,
    'failed',
  );
}

function isBpffsDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory() && Number(fs.statfsSync(p).type) === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Takes the host's locks and checks the pin dir. Throws a WeftError naming
 * the running agent, or the pin dir's problem, before anything exists.
 */
export function preflight(o: PreflightOptions): Preflight {
  const notes: string[] = [];
  const wantsBpf = o.dataplane === 'auto' || o.dataplane === 'ebpf';
  // The pin dir's own problems first: they are the operator's to fix whether or not another agent runs.
  if (wantsBpf) checkPinDirOwnership(o.pinDir);
  lockOrRefuse('/proc/self/ns/net', 'this network namespace');
  // The pin dir is locked where it exists on a bpffs: an agent about to create it has nothing to share yet.
  if (isBpffsDir(o.pinDir)) lockOrRefuse(o.pinDir, `the pin dir ${o.pinDir}`);
  if (o.statusSocket) {
    fs.mkdirSync(path.dirname(o.statusSocket), { recursive: true, mode: 0o755 });
    const lockFile = `${o.statusSocket}.lock`;
    fs.closeSync(fs.openSync(lockFile, 'a', 0o600));
    lockOrRefuse(lockFile, `the status socket ${o.statusSocket}`);
  }
  if (wantsBpf) {
    const note = pinPersistence(o.pinDir);
    if (note) notes.push(note);
  }
  return { notes };
}
