// What the programs' shortcuts depend on outside weft: the pods' bridge, its
// ports, the MACs it has learned, the gateway address. weft configures none
// of it, so it follows it: one rtnetlink monitor, bursts of events (a pod
// starting is a link, addresses and FDB entries) gathered into one pass over
// the tasks, and a periodic pass because notifications can be lost.
import type { Monitor, NetlinkEvent, NetlinkHandle } from '../../native/netlink.js';
import type { Logger } from '../../core/log.js';

const SETTLE_MS = 20;
const RESYNC_MS = 30_000;

export interface HostTask {
  name: string;
  run(): void;
}

export class HostWatch {
  private monitor: Monitor | undefined;
  private settle: NodeJS.Timeout | undefined;
  private periodic: NodeJS.Timeout | undefined;

  constructor(
    private readonly nl: NetlinkHandle,
    private readonly tasks: HostTask[],
    private readonly log: Logger,
  ) {}

  /** Runs every task now; a failing task is logged and does not stop the others. */
  runNow(): void {
    for (const t of this.tasks) {
      try {
        t.run();
      } catch (err) {
        this.log.warn({ task: t.name, err: (err as Error).message }, 'cannot follow the host\'s devices; peers\' pod traffic takes the kernel\'s path meanwhile');
      }
    }
  }

  start(): void {
    if (this.monitor || !this.tasks.length) return;
    this.monitor = this.nl.monitor((e: NetlinkEvent) => {
      // Routes and ARP entries change nothing the tasks read (links, addresses, the bridges' FDB).
      if (e.kind === 'route' || e.kind === 'nexthop' || (e.kind === 'neigh' && !e.fdb)) return;
      this.schedule();
    });
    this.periodic = setInterval(() => this.schedule(), RESYNC_MS);
    this.periodic.unref();
  }

  private schedule(): void {
    if (this.settle) return;
    this.settle = setTimeout(() => {
      this.settle = undefined;
      this.runNow();
    }, SETTLE_MS);
    this.settle.unref();
  }

  close(): void {
    this.monitor?.close();
    this.monitor = undefined;
    if (this.settle) clearTimeout(this.settle);
    if (this.periodic) clearInterval(this.periodic);
    this.settle = this.periodic = undefined;
  }
}
