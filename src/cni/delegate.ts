// Running a delegated plugin exactly as libcni's invoke package does: the
// binary found in CNI_PATH (the first regular file of that name), the config
// on stdin, our whole environment with CNI_COMMAND set to the delegated
// operation, its stdout parsed as a result or an error, its stderr passed on
// to ours. Synchronous: one plugin invocation does one thing at a time, and
// spawnSync costs nothing an event loop would save.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { CniError, CODE, type Command, type Result } from './spec.js';

/** invoke.FindInPath: the first regular file named `plugin` in the CNI_PATH directories. */
export function findInPath(plugin: string, cniPath: string): string {
  if (!plugin) throw new CniError(CODE.internal, 'no plugin name provided');
  if (plugin.includes('/')) throw new CniError(CODE.internal, `invalid plugin name: ${plugin}`);
  const dirs = cniPath.split(':').filter(Boolean);
  if (!dirs.length) throw new CniError(CODE.invalidEnvironment, 'no paths provided', 'CNI_PATH is empty');
  for (const dir of dirs) {
    const full = path.join(dir, plugin);
    try {
      if (fs.statSync(full).isFile()) return full;
    } catch {
      /* not in this directory */
    }
  }
  throw new CniError(CODE.internal, `failed to find plugin "${plugin}" in path [${dirs.join(' ')}]`, `install it there (Debian: apt-get install containernetworking-plugins puts ${plugin} in /usr/lib/cni) or add its directory to CNI_PATH`);
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export interface DelegateOutput {
  /** Raw stdout, for passing a result through unchanged. */
  stdout: string;
  result: Result | null;
}

/**
 * Executes `plugin` with `command`; resolves with its output, or throws its
 * error as a CniError (its own code, msg and details; libcni's wording when
 * it printed no JSON).
 */
export function execDelegate(plugin: string, command: Command, conf: string, env: NodeJS.ProcessEnv, overrides: Record<string, string> = {}): DelegateOutput {
  const file = findInPath(plugin, env.CNI_PATH ?? '');
  const childEnv = { ...env, ...overrides, CNI_COMMAND: command };
  // A plugin binary being replaced right now (ETXTBSY) is retried, as libcni does: 5 times, a second apart.
  for (let attempt = 0; ; attempt++) {
    const r = spawnSync(file, [], { input: conf, env: childEnv, encoding: 'utf8', maxBuffer: 16 << 20 });
    if (r.error) {
      if ((r.error as NodeJS.ErrnoException).code === 'ETXTBSY' && attempt < 5) {
        sleepSync(1000);
        continue;
      }
      throw new CniError(CODE.internal, `netplugin failed with no error message: ${r.error.message}`, file);
    }
    const stdout = r.stdout ?? '';
    const stderr = r.stderr ?? '';
    if (r.status !== 0) throw pluginError(r.status, r.signal, stdout, stderr);
    if (stderr) process.stderr.write(stderr);
    if (!stdout.trim()) return { stdout, result: null };
    try {
      return { stdout, result: JSON.parse(stdout) as Result };
    } catch (err) {
      throw new CniError(CODE.decodingFailure, `${plugin} ${command}: cannot decode its result: ${(err as Error).message}`, stdout.slice(0, 500));
    }
  }
}

/** libcni's RawExec.pluginErr: the JSON error the plugin printed, or what it said on stderr. */
function pluginError(status: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string): CniError {
  const how = signal ? `signal: ${signal}` : `exit status ${status}`;
  if (!stdout.trim()) {
    return new CniError(CODE.internal, stderr ? `netplugin failed: ${JSON.stringify(stderr)}` : `netplugin failed with no error message: ${how}`);
  }
  try {
    const e = JSON.parse(stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    return new CniError(typeof e.code === 'number' ? e.code : 0, typeof e.msg === 'string' ? e.msg : '', typeof e.details === 'string' ? e.details : '');
  } catch (err) {
    return new CniError(CODE.internal, `netplugin failed but error parsing its diagnostic message ${JSON.stringify(stdout)}: ${(err as Error).message}`);
  }
}
