// The iptables tools of this host, run as processes: whichever backend the
// host's `iptables` is (Debian's is iptables-nft), docker and kube-proxy use
// the same one, so our rules land in the same tables and chains as theirs.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { WeftError } from '../core/errors.js';
import type { Family } from '../core/ipnet.js';
import type { ChainState, Table } from './rules.js';
import type { Shell } from './shell.js';

/** Where the tools live on Debian and most distributions, whether or not PATH names sbin (a user's shell often does not). */
const SBIN = ['/usr/sbin', '/sbin', '/usr/local/sbin'];

/** The absolute path of a tool, or null when neither PATH nor the sbin directories hold it. */
export function findTool(name: string, envPath = process.env.PATH ?? ''): string | null {
  for (const dir of [...envPath.split(':').filter(Boolean), ...SBIN]) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // Not in this directory; try the next.
    }
  }
  return null;
}

/** The shell that runs a check's `-S` commands in one process (Iptables.states). */
const SH = '/bin/sh';
/** Ends each command's output in the shell's, followed by its exit code. */
const MARK = '@@weft-exit';
const quote = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;
/** Ends a restore's input in the shell (a here-document); input holding this line goes to a process of its own. */
const INPUT_END = '@@WEFT-INPUT-END';

/** A chain's state from `-S` of the chain and of its parent (null: no such chain). */
function stateOf(chain: string, rules: string[] | null, parentRules: string[] | null): ChainState {
  return { rules, jumps: (parentRules ?? []).filter((l) => l.endsWith(` -j ${chain}`)) };
}

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], input?: string): Promise<Output> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: 15_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : -1) : 0;
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') reject(new WeftError(`${file}: not found`, 'failed'));
      else resolve({ code, stdout, stderr });
    });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

export class Iptables {
  readonly iptables: string;
  readonly restoreTool: string;
  readonly saveTool: string;

  private constructor(
    readonly family: Family,
    tools: { iptables: string; restore: string; save: string },
    /** Where the commands run (the agent's, see shell.ts); null: a process each. */
    private readonly shell: Shell | null,
  ) {
    this.iptables = tools.iptables;
    this.restoreTool = tools.restore;
    this.saveTool = tools.save;
  }

  /** The tools for one family, or null when this host lacks any of them. With a shell, the commands run in it. */
  static find(family: Family, shell: Shell | null = null): Iptables | null {
    const prefix = family === 4 ? 'iptables' : 'ip6tables';
    const iptables = findTool(prefix);
    const restore = findTool(`${prefix}-restore`);
    const save = findTool(`${prefix}-save`);
    return iptables && restore && save ? new Iptables(family, { iptables, restore, save }, shell) : null;
  }

  /** A command, in this instance's shell when it has one (stdout and stderr then come together), else in a process of its own. */
  private async exec(file: string, args: string[], input?: string): Promise<Output> {
    if (!this.shell?.usable || input?.includes(`\n${INPUT_END}\n`)) return run(file, args, input);
    const command = [file, ...args].map(quote).join(' ');
    try {
      return await this.inShell(input === undefined ? command : `${command} <<'${INPUT_END}'\n${input.endsWith('\n') ? input : `${input}\n`}${INPUT_END}`);
    } catch (err) {
      if (!this.shell.usable) return run(file, args, input);
      throw err;
    }
  }

  private async inShell(script: string): Promise<Output> {
    const r = await this.shell!.run(script);
    return { code: r.code, stdout: r.output, stderr: r.output };
  }

  get name(): string {
    return path.basename(this.iptables);
  }

  /** `iptables -S chain` as its `-A` lines; null when the chain does not exist. */
  async listChain(table: Table, chain: string): Promise<string[] | null> {
    const r = await this.exec(this.iptables, ['-w', '5', '-t', table, '-S', chain]);
    return this.chainLines(table, chain, r.code, r.code === 0 ? r.stdout : r.stderr);
  }

  /** What `-S chain` printed (its error when code is not 0) as the chain's `-A` lines, or null when it does not exist. */
  private chainLines(table: Table, chain: string, code: number, text: string): string[] | null {
    if (code !== 0) {
      // A missing chain is an answer; anything else (no permission, no netfilter) is an error.
      if (/No chain|does not exist|incompatible|by that name/i.test(text)) return null;
      throw new WeftError(`${this.name} -t ${table} -S ${chain}: ${text.trim() || `exit ${code}`}`, 'failed');
    }
    return text.split('\n').filter((l) => l.startsWith('-A '));
  }

  /** A chain and the jumps to it from its parent. */
  async state(table: Table, chain: string, parent: string): Promise<ChainState> {
    const [rules, parentRules] = await Promise.all([this.listChain(table, chain), this.listChain(table, parent)]);
    return stateOf(chain, rules, parentRules);
  }

  /**
   * Several chains' states from one shell script, which runs each `-S` (of
   * the chain and of its parent) in turn: in the agent's shell (shell.ts),
   * else in a /bin/sh of its own, one process a check instead of one per
   * `-S`. Spawning blocks the caller's thread until the child has exec'd,
   * 5 ms from a 50 MB process and 15 to 30 ms from one holding 65,536
   * leases, and a shell forks its own children cheaply. (One iptables-save
   * would read kube-proxy's tables whole: 95 ms a run with 1,000 services,
   * against 10 to 12 for each -S.) Without /bin/sh, a process per `-S`.
   */
  async states(chains: ReadonlyArray<{ table: Table; name: string; parent: string }>): Promise<ChainState[]> {
    const lists = chains.flatMap((c) => [[c.table, c.name], [c.table, c.parent]] as const);
    const script = lists.map(([table, chain]) => `${quote(this.iptables)} -w 5 -t ${quote(table)} -S ${quote(chain)} 2>&1; echo "${MARK} $?"`).join('\n');
    let out: Output;
    try {
      out = this.shell?.usable ? await this.inShell(script) : await run(SH, ['-c', script]);
    } catch (err) {
      if (!(err instanceof WeftError) || fs.existsSync(SH)) throw err;
      return Promise.all(chains.map((c) => this.state(c.table, c.name, c.parent)));
    }
    const parts = out.stdout.split(new RegExp(`^${MARK} (\\d+)\n`, 'm'));
    // [text, code, text, code, ..., rest]: one text and code per -S, in order.
    if (parts.length !== lists.length * 2 + 1) throw new WeftError(`${SH} running ${this.name} -S: ${out.stderr.trim() || `exit ${out.code}`}`, 'failed');
    const listed = lists.map(([table, chain], i) => this.chainLines(table, chain, Number(parts[i * 2 + 1]), parts[i * 2]));
    return chains.map((c, i) => stateOf(c.name, listed[i * 2], listed[i * 2 + 1]));
  }

  /** Every rule of a table, as iptables-save prints them (for uninstall, which looks everywhere). */
  async save(table: Table): Promise<string[]> {
    const r = await this.exec(this.saveTool, ['-t', table]);
    if (r.code !== 0) throw new WeftError(`${path.basename(this.saveTool)} -t ${table}: ${r.stderr.trim() || `exit ${r.code}`}`, 'failed');
    return r.stdout.split('\n');
  }

  /**
   * One transaction: iptables-restore --noflush applies all of `tables` or
   * nothing (with the nft backend all tables in one batch), and leaves every
   * chain it is not told about alone.
   */
  async restore(tables: Map<Table, string[]>): Promise<void> {
    let input = '';
    for (const [table, lines] of tables) if (lines.length) input += `*${table}\n${lines.join('\n')}\nCOMMIT\n`;
    if (!input) return;
    const r = await this.exec(this.restoreTool, ['--noflush', '--wait=5'], input);
    if (r.code !== 0) throw new WeftError(`${path.basename(this.restoreTool)} --noflush: ${r.stderr.trim() || `exit ${r.code}`}`, 'failed');
  }
}
