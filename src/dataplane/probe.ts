// Can this host run the eBPF dataplane? Four checks, in order, each with a
// reason a user can act on: bpf() is permitted; weft's own TC programs load
// and pass the verifier; a clsact qdisc can be made on the underlay; the pin
// dir is on bpffs. Synchronous, so a test can run it inside a lab namespace
// with withNetns().
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { BpfObject, isErrnoError, progInfo, tcHookCreate, tcHookDestroy } from '../native/bpf.js';
import { WeftError } from '../core/errors.js';
import { CORE_OBJECTS, OBJECT_DIR } from './ebpf/loader.js';

export const PROBE_STEPS = ['bpf', 'verifier', 'clsact', 'bpffs'] as const;
export type ProbeStep = (typeof PROBE_STEPS)[number];

/** WEFT_PROBE_FAIL=<step> makes that step fail (after the earlier ones ran for real), so the fallback is testable on a kernel that passes. */
export const PROBE_FAIL_ENV = 'WEFT_PROBE_FAIL';

export const BPF_FS_MAGIC = 0xcafe4a11;
export const BPFFS_MOUNT = '/sys/fs/bpf';


export type ProbeResult =
  | { ok: true; createdQdisc: boolean; checks: string[] }
  | { ok: false; step: ProbeStep; reason: string; checks: string[] };

export interface ProbeOptions {
  iface: { name: string; index: number };
  pinDir: string;
  objectDir?: string;
  /** A step to fail on purpose (normally from WEFT_PROBE_FAIL). */
  forceFail?: string;
  /** Whether bpffs may be mounted at /sys/fs/bpf when missing (default: running as root). */
  mayMount?: boolean;
  /** The verifier step's answer when it ran already (verifierCheckAsync); absent: it runs here. */
  verifier?: string | null;
}

/** The step WEFT_PROBE_FAIL names, or undefined; a name that is no step is an error, not silently ignored. */
export function forcedFailure(v: string | undefined): ProbeStep | undefined {
  if (!v) return undefined;
  if (!(PROBE_STEPS as readonly string[]).includes(v)) throw new WeftError(`${PROBE_FAIL_ENV}=${v}: expected one of ${PROBE_STEPS.join(', ')}`);
  return v as ProbeStep;
}

function firstLines(err: unknown, n = 3): string {
  return String((err as Error).message ?? err).split('\n').slice(0, n).join(' | ');
}

/** bpf(BPF_PROG_GET_FD_BY_ID) for an id that does not exist: ENOENT means the call itself is allowed. */
function checkBpfSyscall(): string | null {
  try {
    progInfo(0x7fffffff);
    return null;
  } catch (err) {
    if (isErrnoError(err, 'ENOENT')) return null;
    if (isErrnoError(err, 'EPERM') || isErrnoError(err, 'EACCES'))
      return `bpf() is not permitted (${(err as { code: string }).code}): the agent needs root or CAP_BPF + CAP_NET_ADMIN + CAP_SYS_ADMIN, and no seccomp or LSM policy that blocks bpf()`;
    if (isErrnoError(err, 'ENOSYS')) return 'this kernel has no bpf() system call (built without CONFIG_BPF_SYSCALL)';
    return `bpf() failed: ${firstLines(err)}`;
  }
}

/** weft's core objects through the verifier (private maps, closed at once): null, or why they do not load here. */
export function checkVerifier(dir: string): string | null {
  for (const name of CORE_OBJECTS) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) return missingObject(file);
    try {
      // No pin root: private maps, nothing left behind.
      BpfObject.load(file).close();
    } catch (err) {
      return doesNotLoad(file, err);
    }
  }
  return null;
}

const missingObject = (file: string): string => `${file} is missing (run make build, or set WEFT_BPF_DIR)`;
const doesNotLoad = (file: string, err: unknown): string => `weft's TC programs in ${file} do not load on this kernel: ${firstLines(err)}`;

/** The filesystem magic of the nearest existing directory at or above p. */
function fsMagic(p: string): { dir: string; magic: number } {
  let dir = path.resolve(p);
  while (!fs.existsSync(dir) && dir !== path.dirname(dir)) dir = path.dirname(dir);
  return { dir, magic: Number(fs.statfsSync(dir).type) };
}

function checkBpffs(pinDir: string, mayMount: boolean): { reason: string | null; mounted?: boolean } {
  let { dir, magic } = fsMagic(pinDir);
  if (magic === BPF_FS_MAGIC) return { reason: null };
  const underDefault = path.resolve(pinDir) === BPFFS_MOUNT || path.resolve(pinDir).startsWith(`${BPFFS_MOUNT}/`);
  if (underDefault && mayMount && fsMagic(BPFFS_MOUNT).magic !== BPF_FS_MAGIC) {
    try {
      execFileSync('mount', ['-t', 'bpf', 'bpf', BPFFS_MOUNT], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
    } catch (err) {
      const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim();
      return { reason: `bpffs is not mounted at ${BPFFS_MOUNT} and mounting it failed: mount -t bpf bpf ${BPFFS_MOUNT}: ${stderr || firstLines(err)}` };
    }
    ({ dir, magic } = fsMagic(pinDir));
    if (magic === BPF_FS_MAGIC) return { reason: null, mounted: true };
  }
  return {
    reason: `the pin dir ${pinDir} is not on a bpffs (${dir} has filesystem magic 0x${magic.toString(16)}, bpffs is 0x${BPF_FS_MAGIC.toString(16)}); mount one (mount -t bpf bpf ${BPFFS_MOUNT}) or choose --bpf-pin-dir on one`,
  };
}

/** Runs the checks in order and stops at the first that rules eBPF out. A clsact qdisc the probe made is removed again (attaching makes its own where it needs one). */
export function probeEbpf(o: ProbeOptions): ProbeResult {
  const forced = o.forceFail;
  const checks: string[] = [];
  let createdQdisc = false;
  const fail = (step: ProbeStep, reason: string): ProbeResult => {
    if (createdQdisc) {
      try {
        tcHookDestroy(o.iface.index);
      } catch {
        /* the qdisc went away by itself; nothing of ours is left */
      }
    }
    return { ok: false, step, reason, checks };
  };
  const forcedReason = (step: ProbeStep): string => `failed on purpose (${PROBE_FAIL_ENV}=${step}, for testing the fallback)`;

  if (forced === 'bpf') return fail('bpf', forcedReason('bpf'));
  let reason: string | null;
  try {
    reason = checkBpfSyscall();
  } catch (err) {
    // The addon itself did not load: there is no eBPF dataplane in this build.
    reason = firstLines(err);
  }
  if (reason) return fail('bpf', reason);
  checks.push('bpf() permitted');

  if (forced === 'verifier') return fail('verifier', forcedReason('verifier'));
  reason = o.verifier !== undefined ? o.verifier : checkVerifier(o.objectDir ?? OBJECT_DIR);
  if (reason) return fail('verifier', reason);
  checks.push('sched_cls programs pass the verifier');

  if (forced === 'clsact') return fail('clsact', forcedReason('clsact'));
  try {
    createdQdisc = tcHookCreate(o.iface.index);
  } catch (err) {
    return fail('clsact', `cannot create a clsact qdisc on ${o.iface.name}: ${firstLines(err)}`);
  }
  checks.push(`clsact on ${o.iface.name}`);
  if (createdQdisc) {
    // Only the answer was wanted: a classic attach makes its own qdisc, and tcx links need none.
    try {
      tcHookDestroy(o.iface.index);
    } catch {
      /* already gone */
    }
    createdQdisc = false;
  }

  if (forced === 'bpffs') return fail('bpffs', forcedReason('bpffs'));
  const fsCheck = checkBpffs(o.pinDir, o.mayMount ?? process.getuid?.() === 0);
  if (fsCheck.reason) return fail('bpffs', fsCheck.reason);
  checks.push(fsCheck.mounted ? `mounted bpffs at ${BPFFS_MOUNT}` : `bpffs at ${o.pinDir}`);
  return { ok: true, createdQdisc, checks };
}

/**
 * checkVerifier without holding up the event loop: each object is loaded on
 * a libuv thread, so the kernel verifies weft's programs on one CPU while the
 * agent lists its leases on another (at 65,536 leases both take a while, and
 * the probe ran after the list). undefined when the check itself could not
 * run (the probe then checks in this thread).
 */
export async function verifierCheckAsync(dir: string = OBJECT_DIR): Promise<string | null | undefined> {
  for (const name of CORE_OBJECTS) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) return missingObject(file);
    try {
      await BpfObject.checkLoad(file);
    } catch (err) {
      if (!(err instanceof Error)) return undefined;
      return doesNotLoad(file, err);
    }
  }
  return null;
}
