// A real `weft agent` process inside a lab host, with its JSON log lines
// collected so that tests and the demo can wait for what it says.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { stopProcess, waitFor, WaitAbort } from './exec.js';
import type { LabHost } from './netns.js';

/** The built weft CLI (dist/cli.cjs, the bundle), found through the package's own exports as a user's tooling would. */
export const CLI = fileURLToPath(import.meta.resolve('weft/cli.cjs'));

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export class LabAgent {
  readonly lines: LogLine[] = [];
  stderr = '';
  private rest = '';
  readonly exited: Promise<number | null>;

  constructor(
    readonly host: LabHost,
    readonly child: ChildProcess,
  ) {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      const parts = (this.rest + d).split('\n');
      this.rest = parts.pop() ?? '';
      for (const p of parts) {
        if (!p.trim()) continue;
        try {
          this.lines.push(JSON.parse(p) as LogLine);
        } catch {
          this.lines.push({ level: 30, msg: p });
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the first log line (from `from` on) that satisfies pred. */
  waitForLog(what: string, pred: (l: LogLine) => boolean, timeoutMs = 10_000, from = 0): Promise<LogLine> {
    // A timeout says what the agent did say, so a CI failure can be read without a rerun.
    const withTranscript = (err: Error): never => {
      if (/^timed out/.test(err.message)) err.message += `\nlast lines of ${this.host.hostName}'s agent:\n${this.transcript().split('\n').slice(-12).join('\n')}`;
      throw err;
    };
    return waitFor(
      `${this.host.hostName}'s agent to log ${what}`,
      () => {
        const hit = this.lines.slice(from).find(pred);
        if (hit) return hit;
        if (!this.running) throw new WaitAbort(`agent exited (${this.child.exitCode ?? this.child.signalCode}): ${this.transcript().slice(-1500)}`);
        return undefined;
      },
      timeoutMs,
      20,
    ).catch(withTranscript);
  }

  waitForMsg(msg: string | RegExp, timeoutMs = 10_000, from = 0): Promise<LogLine> {
    return this.waitForLog(String(msg), (l) => (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg)), timeoutMs, from);
  }

  transcript(): string {
    return this.lines.map((l) => JSON.stringify(l)).join('\n') + (this.stderr ? `\nstderr: ${this.stderr}` : '');
  }

  /** The exit code of an agent expected to exit by itself; one still running after `ms` is stopped and this fails with what it said. */
  async exitCode(ms = 30_000): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), ms)));
    const code = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (code !== 'late') return code;
    await this.stop();
    throw new Error(`the agent still ran after ${ms} ms:\n${this.transcript().split('\n').slice(-8).join('\n')}`);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    await stopProcess(this.child, 8000, signal);
    return this.exited;
  }

  async kill9(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

export interface AgentArgs {
  etcdEndpoint: string;
  extra?: string[];
  dataplane?: string;
  env?: NodeJS.ProcessEnv;
}

/** Starts `weft agent` in the host with its subnet.env and pin dir under the lab. */
export function startAgent(host: LabHost, a: AgentArgs): LabAgent {
  const args = [
    process.execPath, CLI, 'agent',
    '--etcd-endpoints', a.etcdEndpoint,
    '--subnet-file', subnetFile(host),
    '--bpf-pin-dir', host.pinDir,
    '--dataplane', a.dataplane ?? 'none',
    // Each lab host's agent answers `weft status` on its own socket, never on the host machine's /run/weft.
    ...(a.extra?.includes('--status-socket') ? [] : ['--status-socket', statusSocket(host)]),
    ...(a.extra ?? []),
  ];
  const env = { ...process.env, ...a.env };
  delete env.WEFT_LOG_LEVEL;
  const child = host.spawn(args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  return new LabAgent(host, child);
}

export function subnetFile(host: LabHost): string {
  return path.join(host.dir, 'subnet.env');
}

export function statusSocket(host: LabHost): string {
  return path.join(host.dir, 'weft.sock');
}
