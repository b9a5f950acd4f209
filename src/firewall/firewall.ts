// flannel's --ip-masq and --iptables-forward-rules: the chains of rules.ts put
// in place in one iptables-restore transaction per address family, checked
// every --iptables-resync seconds and restored when someone flushed or
// deleted them, left in place when the agent stops (traffic keeps flowing
// across a restart), removed by `weft uninstall`.
import { WeftError, messageOf, usageError } from '../core/errors.js';
import type { Family, IPNet } from '../core/ipnet.js';
import { RateLimiter, type Logger } from '../core/log.js';
import { Iptables } from './iptables.js';
import { Shell } from './shell.js';
import { CHAINS, differences, ensureLines, forwardChain, masqChain, removeLines, type Chain, type Table } from './rules.js';

export interface FirewallOptions {
  /** --ip-masq: FLANNEL-POSTRTG. */
  ipMasq: boolean;
  /** --iptables-forward-rules: FLANNEL-FWD. */
  forwardRules: boolean;
  /** Not --ip-masq-fully-random-disable. */
  randomFully: boolean;
  /** --iptables-resync, seconds. */
  resyncSec: number;
}

/** One address family's network and our subnet in it. */
export interface FamilyNetwork {
  network: IPNet;
  subnet: IPNet;
}

/**
 * Refuses, before anything is leased, an --ip-masq this host cannot honour.
 * Forward rules alone only warn when iptables is missing (see Firewall.start):
 * a host without iptables has no FORWARD policy to get past either.
 */
export function checkFirewallTools(opts: FirewallOptions): void {
  if (opts.ipMasq && !Iptables.find(4)) {
    throw usageError('--ip-masq needs iptables, iptables-save and iptables-restore, which are not installed here (Debian: apt install iptables)', '--ip-masq');
  }
  if (!Number.isInteger(opts.resyncSec) || opts.resyncSec < 1) {
    throw usageError(`--iptables-resync ${opts.resyncSec}: must be a whole number of seconds, at least 1`, '--iptables-resync');
  }
}

interface FamilyRules {
  tools: Iptables;
  want: Chain[];
  /** Our chains these options do not want (left by a run with other flags): removed. */
  unwanted: Array<(typeof CHAINS)[number]>;
}

export class Firewall {
  private families: FamilyRules[] = [];
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<string[]> | undefined;
  private readonly limiter = new RateLimiter(60_000);
  /** Every chain is in place (what /readyz waits for, with subnet.env). */
  inPlace = false;
  private stopped = false;
  /** Where iptables runs (shell.ts): started by warm(), while the agent is small. */
  private readonly shell = new Shell();

  constructor(
    readonly opts: FirewallOptions,
    private readonly log: Logger,
  ) {}

  /** Starts the shell the commands will run in, before the agent holds a lease list (spawning then is cheap). */
  warm(): void {
    this.shell.start();
  }

  /** Puts the rules in place and starts the resync; throws when the first attempt fails. */
  async start(networks: FamilyNetwork[]): Promise<void> {
    for (const { network, subnet } of networks) {
      const family = network.family;
      const tools = Iptables.find(family, this.shell);
      const want = [...(this.opts.ipMasq ? [masqChain(network, subnet, this.opts.randomFully)] : []), ...(this.opts.forwardRules ? [forwardChain(network)] : [])];
      if (!tools) {
        if (want.length) this.log.warn({ family }, `${family === 4 ? 'iptables' : 'ip6tables'} is not installed: no ${want.map((c) => c.name).join(' or ')} rules for ${network}; on a host whose FORWARD policy is DROP (docker sets it) pods on other hosts cannot reach ours`);
        continue;
      }
      const unwanted = CHAINS.filter((c) => !want.some((w) => w.name === c.name));
      this.families.push({ tools, want, unwanted });
    }
    const changes = await this.sync();
    const chains = this.families.flatMap((f) => f.want.map((c) => `${f.tools.name} ${c.table} ${c.name}`));
    if (changes.length) this.log.info({ changes }, 'firewall: rules written');
    if (!chains.length || this.stopped) return;
    this.log.info({ chains, resyncSec: this.opts.resyncSec }, 'firewall rules in place; checked every --iptables-resync seconds');
    this.timer = setInterval(() => void this.resync(), this.opts.resyncSec * 1000);
    this.timer.unref();
  }

  private async resync(): Promise<void> {
    try {
      const repairs = await this.sync();
      if (repairs.length) this.log.warn({ repairs }, 'firewall: restored the rules someone changed');
      this.limiter.reset('resync');
    } catch (err) {
      if (this.limiter.allow('resync')) this.log.error({ err: messageOf(err) }, 'firewall: cannot check or restore the rules; retrying every --iptables-resync seconds');
    }
  }

  /** Checks every chain and puts back what differs, one transaction per family. Returns what it changed. */
  sync(): Promise<string[]> {
    // One sync at a time: a slow iptables must not stack resyncs up.
    this.syncing ??= this.syncOnce().finally(() => (this.syncing = undefined));
    return this.syncing;
  }

  private async syncOnce(): Promise<string[]> {
    const changes: string[] = [];
    for (const f of this.families) {
      const tables = new Map<Table, string[]>();
      const add = (table: Table, lines: string[]): void => void tables.set(table, [...(tables.get(table) ?? []), ...lines]);
      const states = await f.tools.states([...f.want, ...f.unwanted]);
      for (const [i, chain] of f.want.entries()) {
        const now = states[i];
        const diff = differences(chain, now);
        if (!diff.length) continue;
        changes.push(...diff.map((d) => `${f.tools.name}: ${d}`));
        add(chain.table, ensureLines(chain, now));
      }
      for (const [i, c] of f.unwanted.entries()) {
        const now = states[f.want.length + i];
        if (now.rules === null) continue;
        changes.push(`${f.tools.name}: removed ${c.table} ${c.name} (not wanted with these flags)`);
        add(c.table, removeLines(c.name, now.jumps));
      }
      await f.tools.restore(tables);
      f.unwanted = [];
    }
    this.inPlace = true;
    return changes;
  }

  /** Stops checking; the rules stay for the next start. */
  stop(): void {
    // A start still running (the agent stopped while it started) starts no resync.
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    this.shell.close();
  }
}

/**
 * `weft uninstall`: every FLANNEL-POSTRTG and FLANNEL-FWD chain (IPv4 and
 * IPv6) and every rule anywhere in their table that jumps to one.
 * Returns what it removed, e.g. "iptables nat FLANNEL-POSTRTG".
 */
export async function uninstallFirewall(): Promise<string[]> {
  const removed: string[] = [];
  for (const family of [4, 6] as Family[]) {
    const tools = Iptables.find(family);
    if (!tools) continue;
    const tables = new Map<Table, string[]>();
    for (const c of CHAINS) {
      let saved: string[];
      try {
        saved = await tools.save(c.table);
      } catch (err) {
        // A kernel without this table (no ip6tables nat, say) holds none of our chains.
        if (err instanceof WeftError) continue;
        throw err;
      }
      if (!saved.includes(`:${c.name} - [0:0]`) && !saved.some((l) => l.startsWith(`:${c.name} `))) continue;
      const jumps = saved.filter((l) => l.startsWith('-A ') && l.endsWith(` -j ${c.name}`));
      tables.set(c.table, [...(tables.get(c.table) ?? []), ...removeLines(c.name, jumps)]);
      removed.push(`${tools.name} ${c.table} ${c.name}${jumps.length ? ` (and ${jumps.length} jump${jumps.length > 1 ? 's' : ''} to it)` : ''}`);
    }
    await tools.restore(tables);
  }
  return removed;
}
