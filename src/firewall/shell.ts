// A /bin/sh the agent starts while it is small and keeps for its life: the
// firewall's iptables commands (a check's -S, a restore) run in it, not in
// processes the agent spawns. Node spawns with fork(), and the agent's thread
// waits while the kernel copies the page tables of the whole process: 5 ms at
// 50 MB, 15 to 30 ms holding 65,536 leases, twice in a start (the check, then
// the restore) and again at every --iptables-resync. The shell forks its
// commands from a process of a megabyte.
//
// The shell reads its commands from a pipe, one script at a time; each
// script's output (stdout and stderr together) ends in a line with a token
// of its own and the script's exit code. A script that outlives the timeout
// kills the shell (its commands run on to their end); the next script starts
// another. When the agent exits, the shell reads the end of its input and exits too.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { WeftError } from '../core/errors.js';

export interface ShellResult {
  /** The script's exit code; -1 when it timed out or the shell died. */
  code: number;
  /** What it printed, stdout and stderr together. */
  output: string;
}

interface Pending {
  token: string;
  resolve: (r: ShellResult) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class Shell {
  private child: ChildProcess | null = null;
  private out = '';
  private pending: Pending | null = null;
  /** Scripts run one at a time, in order. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private missing = false;

  constructor(
    readonly sh = '/bin/sh',
    private readonly timeoutMs = 15_000,
  ) {}

  /** False once the shell turned out not to exist (then run() always rejects): run the commands some other way. */
  get usable(): boolean {
    return !this.missing;
  }

  /** Starts the shell now, while this process is small (run() starts one too, when there is none). */
  start(): void {
    if (this.child || this.closed) return;
    const child = spawn(this.sh, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.out = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (text: string) => this.onOutput(child, text));
    // The shell's own complaints (a command not found) come through stdout: see run().
    child.stderr!.on('data', () => undefined);
    child.stdin!.on('error', () => undefined);
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') this.missing = true;
      this.gone(child, err.code === 'ENOENT' ? new WeftError(`${this.sh}: not found`, 'failed') : null);
    });
    child.on('exit', () => this.gone(child, null));
    // Idle, it holds nothing open: the agent exits as if it were not there (a script running keeps its timer).
    child.unref();
    for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as { unref?: () => void }).unref?.();
  }

  /** Runs a script (sh syntax) with /dev/null as its input; resolves with its exit code and output. Rejects with "not found" when there is no shell. */
  run(script: string): Promise<ShellResult> {
    const next = this.queue.then(() => this.runNow(script));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private runNow(script: string): Promise<ShellResult> {
    if (this.closed) return Promise.reject(new WeftError('the firewall shell is closed', 'failed'));
    this.start();
    const child = this.child!;
    const token = randomBytes(8).toString('hex');
    return new Promise<ShellResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        // Forgotten first: what it still prints or its exit is not the next script's.
        this.child = null;
        child.kill('SIGKILL');
        this.finish({ code: -1, output: this.out });
      }, this.timeoutMs);
      this.pending = { token, resolve, reject, timer };
      // The newline before the token line: a last line without one still ends before it.
      child.stdin!.write(`{\n${script}\n} </dev/null 2>&1\nprintf '\\n@@weft-done %s %s\\n' ${token} "$?"\n`);
    });
  }

  private onOutput(child: ChildProcess, text: string): void {
    if (child !== this.child) return;
    this.out += text;
    const p = this.pending;
    if (!p) return;
    const m = new RegExp(`\\n@@weft-done ${p.token} (\\d+)\\n`).exec(this.out);
    if (!m) return;
    const output = this.out.slice(0, m.index);
    this.out = this.out.slice(m.index + m[0].length);
    this.finish({ code: Number(m[1]), output });
  }

  private finish(r: ShellResult | Error): void {
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    clearTimeout(p.timer);
    if (r instanceof Error) p.reject(r);
    else p.resolve(r);
  }

  /** The shell exited or could not start: a script running ends with -1 (or the error), and the next starts another shell. */
  private gone(child: ChildProcess, err: Error | null): void {
    if (child !== this.child) return;
    this.child = null;
    const output = this.out;
    this.out = '';
    this.finish(err ?? { code: -1, output });
  }

  /** No more scripts: the shell exits once the one running (if any) is done. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    void this.queue.then(() => this.child?.stdin?.end());
  }
}
