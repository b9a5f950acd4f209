// The iptables tools of this host, run as processes: whichever backend the
// host's `iptables` is (Debian's is iptables-nft), docker and kube-proxy use
// the same one, so our rules land in the same tables and chains as theirs.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { WeftError } from '../core/errors.js';
import type { Family } from '../core/ipnet.js';
import type { ChainState, Table } from './rules.js';

/** A saved ruleset: each table's lines between `*table` and `COMMIT` (chain declarations and `-A` rules). */
export type SavedRules = Map<string, string[]>;

/** A chain (null: not declared in its table) and the jumps to it from its parent, as a saved ruleset holds them. */
export function chainState(saved: SavedRules, table: Table, chain: string, parent: string): ChainState {
  const lines = saved.get(table) ?? [];
  const declared = lines.some((l) => l.startsWith(`:${chain} `));
  return {
    rules: declared ? lines.filter((l) => l.startsWith(`-A ${chain} `)) : null,
    jumps: lines.filter((l) => l.startsWith(`-A ${parent} `) && l.endsWith(` -j ${chain}`)),
  };
}

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
  ) {
    this.iptables = tools.iptables;
    this.restoreTool = tools.restore;
    this.saveTool = tools.save;
  }

  /** The tools for one family, or null when this host lacks any of them. */
  static find(family: Family): Iptables | null {
    const prefix = family === 4 ? 'iptables' : 'ip6tables';
    const iptables = findTool(prefix);
    const restore = findTool(`${prefix}-restore`);
    const save = findTool(`${prefix}-save`);
    return iptables && restore && save ? new Iptables(family, { iptables, restore, save }) : null;
  }

  get name(): string {
    return path.basename(this.iptables);
  }

  /**
   * The whole ruleset as iptables-save prints it, by table: one process per
   * check. (A `-S` per chain and per parent was four processes a check, and
   * a start pays for each: spawning blocks the agent's thread for 5 ms from
   * a 50 MB process, 15 to 30 ms from a 200 MB one listing 65,536 leases.)
   */
  async saveAll(): Promise<SavedRules> {
    const r = await run(this.saveTool, []);
    if (r.code !== 0) throw new WeftError(`${path.basename(this.saveTool)}: ${r.stderr.trim() || `exit ${r.code}`}`, 'failed');
    const tables: SavedRules = new Map();
    let lines: string[] | undefined;
    for (const l of r.stdout.split('\n')) {
      if (l.startsWith('*')) tables.set(l.slice(1), (lines = []));
      else if (l === 'COMMIT') lines = undefined;
      else lines?.push(l);
    }
    return tables;
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
    const r = await run(this.restoreTool, ['--noflush', '--wait=5'], input);
    if (r.code !== 0) throw new WeftError(`${path.basename(this.restoreTool)} --noflush: ${r.stderr.trim() || `exit ${r.code}`}`, 'failed');
  }
}
