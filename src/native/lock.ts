// flock through the addon (Node has none): an exclusive lock on an open file
// that the kernel releases when the process ends, however it ends.
import fs from 'node:fs';
import { addon } from './addon.js';

/**
 * (Node opens every file with O_CLOEXEC: children the agent runs do not inherit the lock.)
 *
 * Opens `file` (a directory or an nsfs file will do) and takes an exclusive
 * flock on it without waiting. Returns the fd, to be kept open for as long as
 * the lock is wanted, or null when another open file holds it.
 */
export function tryLock(file: string): number | null {
  const fd = fs.openSync(file, fs.constants.O_RDONLY);
  try {
    if (addon().lock.flock(fd) as boolean) return fd;
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  fs.closeSync(fd);
  return null;
}

/** Who holds a flock on `file`, from /proc/locks: pids in our pid namespace. */
export function lockHolders(file: string): number[] {
  const st = fs.statSync(file);
  // st_dev as the kernel encodes it for stat(2); /proc/locks prints MAJOR:MINOR:INODE in hex, hex, decimal.
  const major = (st.dev >>> 8) & 0xfff;
  const minor = (st.dev & 0xff) | ((st.dev >>> 12) & 0xfff00);
  const pids = new Set<number>();
  for (const line of fs.readFileSync('/proc/locks', 'utf8').split('\n')) {
    // "1: FLOCK  ADVISORY  WRITE 12345 00:04:4026531833 0 EOF"; a "1: ->" line is a waiter, not a holder.
    const f = line.trim().split(/\s+/);
    if (f[1] !== 'FLOCK' || !f[5]) continue;
    const [ma, mi, ino] = f[5].split(':');
    if (parseInt(ma, 16) === major && parseInt(mi, 16) === minor && Number(ino) === st.ino) pids.add(Number(f[4]));
  }
  return [...pids];
}
