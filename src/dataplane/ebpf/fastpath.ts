// The agent's half of the fast path for flows conntrack follows
// (bpf/include/conntrack.h): it tells the programs whether conntrack follows
// flows on this host and what its established TCP timeout is, and marks the
// established flows the programs found (weft_ct_wanted) as tracked liberally
// in conntrack, through ctnetlink, so that their packets may skip the host's
// forward path without conntrack's window falling behind. The kernel's own
// flowtable marks the flows it offloads the same way; this kernel has none
// (CONFIG_NF_FLOW_TABLE is not set), and no BPF program may write the mark.
// The programs wake the agent for each flow they add (a record in
// weft_ct_wake), so a flow is marked as soon as the agent reads the record;
// a sweep of the map once a second catches what the ring had no room for and
// retries what failed.
import fs from 'node:fs';
import type { BpfMap } from '../../native/bpf.js';
import { RingBuffer } from '../../native/bpf_ringbuf.js';
import { ctSetTcpLiberal } from '../../native/conntrack.js';
import type { Logger } from '../../core/log.js';
import { decodeCtTuple } from './maps.js';

export interface ConntrackState {
  /** Conntrack follows flows in this network namespace (it holds entries). */
  follows: boolean;
  /** net.netfilter.nf_conntrack_tcp_timeout_established, ms; 0 when unknown. */
  timeoutMs: number;
}

function sysctl(name: string): number | null {
  try {
    return Number(fs.readFileSync(`/proc/sys/net/netfilter/${name}`, 'utf8').trim());
  } catch {
    return null; // no conntrack in this kernel
  }
}

/**
 * Conntrack in the agent's network namespace: it follows flows once it holds
 * entries (its hooks register only when a rule needs them: docker's and
 * kube-proxy's do, a bare host has none). Sticky: a host that tracked once
 * goes on being judged so, even between flows.
 */
export function readConntrack(before?: ConntrackState): ConntrackState {
  const count = sysctl('nf_conntrack_count');
  const timeout = sysctl('nf_conntrack_tcp_timeout_established');
  return {
    follows: Boolean(before?.follows) || (count !== null && count > 0),
    timeoutMs: timeout !== null && Number.isFinite(timeout) ? Math.min(0xffffffff, timeout * 1000) : 0,
  };
}

/** How often conntrack's state is read while it follows nothing yet (its first flow changes what the programs must do). */
const FOLLOWS_POLL_MS = 100;
/** How often the timeout is read and weft_ct_wanted swept once it follows flows. */
const SWEEP_MS = 1000;

export class ConntrackFastPath {
  private state: ConntrackState;
  private timer: NodeJS.Timeout;
  private readonly ring: RingBuffer | undefined;
  private readonly counts = { wake: 0, sweep: 0, failures: 0 };

  /**
   * wanted: weft_ct_wanted; wake: weft_ct_wake (both closed with this).
   * enabled: WEFT_EBPF_CT_FASTPATH (on); off, the programs are told no
   * timeout and no flow conntrack follows skips the host. apply: writes the
   * state into weft_config.
   */
  constructor(
    private readonly wanted: BpfMap,
    private readonly wake: BpfMap,
    private readonly enabled: boolean,
    private readonly apply: (ct: ConntrackState) => void,
    private readonly log: Logger,
  ) {
    this.state = this.effective(readConntrack());
    // Said at the start too: with the firewall's rules going in beside the dataplane (52aaef3), conntrack often
    // holds entries (the agent's own etcd connection) before this is made, and the change below never comes.
    if (this.state.follows) this.sayFollows(this.state);
    this.ring = enabled
      ? RingBuffer.open(wake, {
          records: (records) => {
            for (const r of records) this.mark(r, false);
          },
          error: (err) => this.log.warn({ err: err.message }, 'cannot read weft_ct_wake; flows wait for the sweep of weft_ct_wanted (once a second)'),
        })
      : undefined;
    this.timer = this.schedule();
  }

  /** The next look: every 100 ms until conntrack follows flows here, then every second. */
  private schedule(): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.tick();
      this.timer = this.schedule();
    }, this.state.follows ? SWEEP_MS : FOLLOWS_POLL_MS);
    t.unref();
    return t;
  }

  /** What the programs are told: no timeout while switched off. */
  private effective(ct: ConntrackState): ConntrackState {
    return this.enabled ? ct : { ...ct, timeoutMs: 0 };
  }

  /** The state the config must carry now (written by the caller before the programs run). */
  get current(): ConntrackState {
    return this.state;
  }

  tick(): void {
    const next = this.effective(readConntrack(this.state));
    if (next.follows !== this.state.follows || next.timeoutMs !== this.state.timeoutMs) {
      this.apply(next);
      if (next.follows && !this.state.follows) this.sayFollows(next);
      else if (next.follows && next.timeoutMs !== this.state.timeoutMs) this.log.info({ ctTimeoutMs: next.timeoutMs }, "conntrack's established TCP timeout changed: the programs refresh fast flows' entries to it");
      this.state = next;
    }
    if (!this.enabled) return;
    // Until conntrack follows flows the map stays empty (a flow is wanted only for an entry conntrack holds).
    for (const key of this.wanted.keys()) this.mark(key, true);
  }

  /**
   * Marks one flow (a weft_tuple, from the ring or the map) liberal and takes it out of weft_ct_wanted. One
   * that cannot be marked stays there until the sweep, so that its packets, which the programs would otherwise
   * add again at once, cost a try a second, not one each.
   */
  private mark(key: Buffer, sweep: boolean): void {
    const t = decodeCtTuple(key);
    try {
      if (ctSetTcpLiberal(t.saddr, t.daddr, t.sport, t.dport)) this.counts[sweep ? 'sweep' : 'wake']++;
    } catch (err) {
      // The flow simply stays on the host's path; say so once in a while, not per flow.
      if (this.counts.failures++ % 1000 === 0) this.log.warn({ err: (err as Error).message, failures: this.counts.failures }, 'cannot mark a flow for the fast path through ctnetlink; it stays on the host\'s forward path');
      if (!sweep) return;
    }
    this.wanted.delete(key);
  }

  private sayFollows(ct: ConntrackState): void {
    this.log.info({ ctTimeoutMs: ct.timeoutMs, fastPath: this.enabled }, 'conntrack follows flows on this host: flows it has no entry for take its path; established ones it tracks liberally skip it');
  }

  /** Flows marked so far, by how they were found, and the marks that failed (the dataplane's status, /metrics). */
  get marks(): { wake: number; sweep: number; failures: number } {
    return { ...this.counts };
  }

  close(): void {
    clearTimeout(this.timer);
    this.ring?.close();
    this.wanted.close();
    this.wake.close();
  }
}
