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

/**
 * What a process started by the lab says, kept as it arrives, so that a caller
 * can wait for a line (a server's "ready", tcpdump's "listening on") instead of
 * waiting a while.
 */
export class Output {
  stdout = '';
  stderr = '';
  /** Exited with its output read to the end ('close', not 'exit': what it said last may still be in the pipe at exit). */
  private closed = false;

  constructor(readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    child.on('close', () => (this.closed = true));
  }

  /** Resolves with the first match of re in stdout or stderr; fails at once if the process exits without saying it. */
  waitFor(what: string, re: RegExp, timeoutMs = 10_000): Promise<RegExpExecArray> {
    return waitFor(
      what,
      () => {
        const m = re.exec(this.stdout) ?? re.exec(this.stderr);
        if (m) return m;
        if (this.closed) {
          const said = (this.stderr.trim() || this.stdout.trim()).split('\n').slice(-3).join(' | ');
          throw new WaitAbort(`${what}: the process exited (${this.child.signalCode ?? this.child.exitCode}) without it${said ? `: ${said}` : ''}`);
        }
        return undefined;
      },
      timeoutMs,
      20,
    );
  }
}

/** A command started with run()'s bounds, whose output can be waited on while it runs. */
export interface Running {
  readonly child: ChildProcess;
  readonly output: Output;
  /** Settles as run() does: the result, or a CommandError for a non-zero exit unless allowFail. */
  readonly result: Promise<RunResult>;
}

export function start(cmd: string[], opts: RunOptions = {}): Running {
  const child = spawn(cmd[0], cmd.slice(1), {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  });
  const output = new Output(child);
  const result = new Promise<RunResult>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${cmd.join(' ')}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const r = { code, signal, stdout: output.stdout, stderr: output.stderr };
      if (code !== 0 && !opts.allowFail) reject(new CommandError(cmd, r));
      else resolve(r);
    });
  });
  // A caller that stops waiting on the output (it failed) may never read the result: that is no crash of its own.
  result.catch(() => undefined);
  child.stdin!.on('error', () => undefined);
  child.stdin!.end(opts.input ?? '');
  return { child, output, result };
}

export function run(cmd: string[], opts: RunOptions = {}): Promise<RunResult> {
  return start(cmd, opts).result;
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
