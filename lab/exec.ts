// Running commands for the lab (tests, demo, bench): bounded in time, with
// their output captured, and an error that says what ran and what it printed.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  timeoutMs?: number;
  input?: string;
  allowFail?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export class CommandError extends Error {
  constructor(
    readonly cmd: string[],
    readonly result: RunResult,
  ) {
    const how = result.signal ? `killed by ${result.signal}` : `exit ${result.code}`;
    const out = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-5).join('\n');
    super(`${cmd.join(' ')}: ${how}${out ? `\n${out}` : ''}`);
  }
}

export function run(cmd: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0], cmd.slice(1), {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${cmd.join(' ')}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = { code, signal, stdout, stderr };
      if (code !== 0 && !opts.allowFail) reject(new CommandError(cmd, result));
      else resolve(result);
    });
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(opts.input ?? '');
  });
}

export function runSync(cmd: string[], opts: RunOptions = {}): RunResult {
  const r = spawnSync(cmd[0], cmd.slice(1), {
    encoding: 'utf8',
    input: opts.input ?? '',
    timeout: opts.timeoutMs ?? 30_000,
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  });
  const result = { code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  if (r.error && !opts.allowFail) throw new Error(`${cmd.join(' ')}: ${r.error.message}`);
  if (r.status !== 0 && !opts.allowFail) throw new CommandError(cmd, result);
  return result;
}

/** The command that runs `cmd` inside network namespace `ns` (keeping the caller's mounts, so /sys/fs/bpf stays visible). */
export function inNetns(ns: string | null, cmd: string[]): string[] {
  return ns ? ['nsenter', `--net=/run/netns/${ns}`, '--', ...cmd] : cmd;
}

/** Processes the lab started, so that they can be stopped by PID on teardown, even on a crash. */
const started = new Set<ChildProcess>();

let exitHook = false;

export function startProcess(cmd: string[], opts: SpawnOptions = {}): ChildProcess {
  if (!exitHook) {
    // A test that dies must not leave its etcd or agents running.
    exitHook = true;
    process.on('exit', killAllStartedSync);
  }
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  started.add(child);
  child.on('exit', () => started.delete(child));
  return child;
}

/** Sends SIGTERM, then SIGKILL after graceMs; resolves when the process has exited. */
export function stopProcess(child: ChildProcess, graceMs = 5000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

export function killAllStartedSync(): void {
  for (const child of started) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Thrown by a waitFor check to stop waiting at once (e.g. the process it waits on has exited). */
export class WaitAbort extends Error {}

/**
 * Polls `check` until it returns a value other than undefined/false, or throws
 * after timeoutMs with `what`. Errors thrown by check are retried (the last one
 * is reported on timeout), except WaitAbort, which ends the wait at once.
 */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      if (err instanceof WaitAbort) throw err;
      lastErr = err;
    }
    if (Date.now() > deadline) {
      const why = lastErr instanceof Error ? `: ${lastErr.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(everyMs);
  }
}
