// The agent's Prometheus metrics (/metrics, prom-client's text format). What
// the agent holds (lease, peers, dataplane, etcd watch) and what the kernel
// counts (weft_stats, weft_drops, read from the pinned maps) are read when
// Prometheus scrapes; what happens between scrapes (renewals, reconnects,
// failed etcd requests, dataplane syncs) is counted as it happens. No label
// names a peer: at 65,536 peers every family keeps the same handful of
// series (README, "Metrics").
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { leaseBackendType, type SkipReason } from '../backend/types.js';
import type { Logger } from '../core/log.js';
import { RateLimiter } from '../core/log.js';
import { weftVersion } from '../core/version.js';
import type { DataplaneStatus } from '../dataplane/types.js';
import { DROP_REASONS } from '../dataplane/ebpf/maps.js';
import type { Lease } from '../subnet/lease.js';
import type { OwnLease } from '../subnet/manager.js';
import { ETCD_ERROR_KINDS, etcdErrorKind, type EtcdRegistry } from '../subnet/registry.js';
import type { LeaseSession } from '../subnet/session.js';
import { readKernelCounters } from './kernel.js';

/** What the metrics read from the agent at scrape time (the agent implements it over its own state). */
export interface MetricsSource {
  lease(): OwnLease | undefined;
  peers(): Iterable<{ lease: Lease; route?: unknown; skipReason?: SkipReason }>;
  etcd(): { connected: boolean; revision: string };
  dataplane(): { requested: string; kind: string; reason: string; pinDir: string };
  /** null while no dataplane runs. */
  dataplaneStatus(): Promise<DataplaneStatus | null>;
}

/** The agent's operations on the dataplane, timed: batches of the initial list's peers while it is applied, the full sync after it, and one peer at a time after that. */
export type SyncOp = 'full' | 'batch' | 'upsert' | 'remove';

/** How often the event loop's lag is sampled, ms (nodejs_eventloop_lag_seconds and its percentiles). */
export const EVENT_LOOP_SAMPLE_MS = 1000;

const BACKENDS = new Set(['vxlan', 'host-gw', 'ipip', 'udp']);
/** A peer's backend as a label: a lease may name anything, the label only what weft knows. */
const backendLabel = (lease: Lease): string => {
  const b = leaseBackendType(lease).toLowerCase();
  return BACKENDS.has(b) ? b : 'other';
};

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly limiter = new RateLimiter(300_000);
  private watchWasDown = false;

  private readonly leaseInfo: Gauge<'subnet' | 'subnet_v6' | 'reservation'>;
  private readonly leaseExpiry: Gauge;
  private readonly renewals: Counter;
  private readonly reacquisitions: Counter;
  private readonly peers: Gauge<'backend' | 'state' | 'reason'>;
  private readonly watchConnected: Gauge;
  private readonly watchRevision: Gauge;
  private readonly reconnects: Counter;
  private readonly etcdErrors: Counter<'kind'>;
  private readonly dataplaneInfo: Gauge<'dataplane' | 'requested' | 'reason'>;
  private readonly dataplanePeers: Gauge;
  private readonly syncDuration: Histogram<'op'>;
  private readonly syncErrors: Counter<'op'>;
  private readonly reconcileRuns: Counter;
  private readonly reconcileRepairs: Counter;
  private readonly reconcileFailures: Counter;
  private readonly ctMarks: Counter<'found'>;
  private readonly ctMarkFailures: Counter;
  private readonly packets: Counter<'direction' | 'encap'>;
  private readonly bytes: Counter<'direction' | 'encap'>;
  private readonly drops: Counter<'reason'>;
  private readonly droppedBytes: Counter<'reason'>;
  private readonly eventsLost: Counter;

  constructor(
    private readonly source: MetricsSource,
    private readonly log: Logger,
  ) {
    const registers = [this.registry];
    const gauge = <L extends string>(name: string, help: string, labelNames: L[] = []): Gauge<L> => new Gauge({ name, help, labelNames, registers });
    const counter = <L extends string>(name: string, help: string, labelNames: L[] = []): Counter<L> => new Counter({ name, help, labelNames, registers });

    gauge('weft_build_info', 'The weft version running, as a label; always 1.', ['version']).set({ version: weftVersion() }, 1);
    this.leaseInfo = gauge('weft_lease_info', 'The subnet this host leases (and its IPv6 subnet, and whether it is a reservation); 1 while held.', ['subnet', 'subnet_v6', 'reservation']);
    this.leaseExpiry = gauge('weft_lease_expiry_timestamp_seconds', 'When the lease expires unless renewed (Unix time); absent for a reservation, which never expires.');
    this.renewals = counter('weft_lease_renewals_total', 'Lease renewals that succeeded.');
    this.reacquisitions = counter('weft_lease_reacquisitions_total', 'Times the lease vanished (revoked, deleted, expired) and the agent took the same subnet back.');
    this.peers = gauge('weft_peers', 'Peers in the agent\'s view by their lease\'s backend: programmed, or skipped with the reason.', ['backend', 'state', 'reason']);
    this.watchConnected = gauge('weft_etcd_watch_connected', '1 while the watch of the subnet leases is connected to etcd.');
    this.watchRevision = gauge('weft_etcd_watch_revision', 'The last etcd revision the watch has seen; max() over all agents minus this is an agent\'s lag, in revisions.');
    this.reconnects = counter('weft_etcd_watch_reconnects_total', 'Times the watch reconnected after losing etcd.');
    this.etcdErrors = counter('weft_etcd_request_errors_total', 'etcd requests that failed, by kind (unavailable, deadline, auth, lease, other).', ['kind']);
    this.dataplaneInfo = gauge('weft_dataplane_info', 'The dataplane running (ebpf, netlink, none), what --dataplane asked for, and why it was chosen; always 1.', ['dataplane', 'requested', 'reason']);
    this.dataplanePeers = gauge('weft_dataplane_peers', 'Peer subnets the kernel holds (weft_peers map entries, or netlink routes); absent while not known.');
    this.syncDuration = new Histogram({
      name: 'weft_dataplane_sync_duration_seconds',
      help: 'Time to apply the peers to the dataplane: batches of the initial list while it is applied (eBPF), the full sync after it, then each peer upserted or removed.',
      labelNames: ['op'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers,
    });
    this.syncErrors = counter('weft_dataplane_sync_errors_total', 'Dataplane operations that failed, by operation.', ['op']);
    this.reconcileRuns = counter('weft_dataplane_reconcile_runs_total', 'Runs of the netlink dataplane\'s reconcile loop (every 10 s and after foreign changes).');
    this.reconcileRepairs = counter('weft_dataplane_reconcile_repairs_total', 'Routes, neighbours, FDB entries and device settings the reconcile loop restored.');
    this.reconcileFailures = counter('weft_dataplane_reconcile_failures_total', 'Reconcile runs that failed.');
    this.ctMarks = counter('weft_dataplane_ct_flows_marked_total', 'Established flows conntrack follows that the agent marked liberal for the eBPF fast path, by how it found them (wake: the programs\' record in weft_ct_wake; sweep: its once-a-second sweep of weft_ct_wanted).', ['found']);
    this.ctMarkFailures = counter('weft_dataplane_ct_mark_failures_total', 'Tries to mark a flow liberal through ctnetlink that failed (the flow stays on the host\'s path).');
    this.packets = counter('weft_dataplane_packets_total', 'Packets the eBPF programs forwarded, by direction (egress: to a peer, ingress: from one) and encapsulation.', ['direction', 'encap']);
    this.bytes = counter('weft_dataplane_bytes_total', 'Bytes of those packets (as the programs saw them: the inner packet with its Ethernet header).', ['direction', 'encap']);
    this.drops = counter('weft_dataplane_drops_total', 'Packets the eBPF programs dropped, by reason (weft bpf drops explains each).', ['reason']);
    this.droppedBytes = counter('weft_dataplane_dropped_bytes_total', 'Bytes of the dropped packets, by reason.', ['reason']);
    this.eventsLost = counter('weft_monitor_events_lost_total', 'Events for weft monitor the ring buffer had no room for.');
    // The event loop's lag is sampled by a timer at this interval (prom-client's default, 10 ms, woke an idle
    // agent 100 times a second: 1 % of a CPU per agent for nothing; a lag worth a look still shows at one per second).
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    // Gauges named like counters, which promtool rejects; sum() of nodejs_active_handles (and _requests, _resources) by type is each.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);

    // Series that exist from the start show 0 rather than nothing: rate() needs the zero, and the count of series stays put.
    for (const kind of ETCD_ERROR_KINDS) this.etcdErrors.inc({ kind }, 0);
    for (const op of ['full', 'batch', 'upsert', 'remove'] as const) {
      this.syncErrors.inc({ op }, 0);
      this.syncDuration.zero({ op });
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Renewals, re-acquisitions and the watch's reconnects, as the session reports them. */
  watchSession(s: LeaseSession): void {
    s.on('renewed', () => this.renewals.inc());
    s.on('reacquired', () => this.reacquisitions.inc());
    s.on('connection', (up) => {
      if (!up) this.watchWasDown = true;
      else if (this.watchWasDown) {
        this.watchWasDown = false;
        this.reconnects.inc();
      }
    });
  }

  /** Every failed etcd request the registry makes. */
  watchRegistry(r: EtcdRegistry): void {
    r.onRequestError((err) => this.etcdErrors.inc({ kind: etcdErrorKind(err) }));
  }

  /** Runs one dataplane operation, timed; a failure is counted and rethrown. */
  async timeSync<T>(op: SyncOp, fn: () => Promise<T>): Promise<T> {
    const end = this.syncDuration.startTimer({ op });
    try {
      return await fn();
    } catch (err) {
      this.syncErrors.inc({ op });
      throw err;
    } finally {
      end();
    }
  }

  /** The text Prometheus scrapes: the agent's state and the kernel's counters read now, then every family. */
  async render(): Promise<string> {
    await this.refresh();
    return this.registry.metrics();
  }

  private async refresh(): Promise<void> {
    const own = this.source.lease();
    this.leaseInfo.reset();
    this.leaseExpiry.reset();
    if (own) {
      this.leaseInfo.set({ subnet: own.subnet.toString(), subnet_v6: own.subnetV6?.toString() ?? '', reservation: String(own.reservation) }, 1);
      if (own.expiresAt !== null && !own.reservation) this.leaseExpiry.set(own.expiresAt / 1000);
    }

    this.peers.reset();
    const counts = new Map<string, { labels: { backend: string; state: string; reason?: string }; n: number }>();
    for (const p of this.source.peers()) {
      const backend = backendLabel(p.lease);
      const labels = p.route ? { backend, state: 'programmed' } : { backend, state: 'skipped', reason: p.skipReason ?? 'other' };
      const key = `${labels.backend}/${labels.state}/${'reason' in labels ? labels.reason : ''}`;
      const c = counts.get(key) ?? { labels, n: 0 };
      c.n++;
      counts.set(key, c);
    }
    for (const { labels, n } of counts.values()) this.peers.set(labels, n);

    const etcd = this.source.etcd();
    this.watchConnected.set(etcd.connected ? 1 : 0);
    this.watchRevision.set(Number(etcd.revision));

    const dp = this.source.dataplane();
    this.dataplaneInfo.reset();
    this.dataplaneInfo.set({ dataplane: dp.kind, requested: dp.requested, reason: dp.reason }, 1);
    this.dataplanePeers.reset();
    try {
      const st = await this.source.dataplaneStatus();
      if (st) this.dataplanePeers.set(st.peersInKernel);
      for (const c of [this.reconcileRuns, this.reconcileRepairs, this.reconcileFailures]) c.reset();
      this.setCounter(this.reconcileRuns, {}, st?.reconciles?.runs);
      this.setCounter(this.reconcileRepairs, {}, st?.reconciles?.repairs);
      this.setCounter(this.reconcileFailures, {}, st?.reconciles?.failures);
      for (const c of [this.ctMarks, this.ctMarkFailures] as Array<Counter<string>>) c.reset();
      this.setCounter(this.ctMarks, { found: 'wake' }, st?.ctMarks?.wake);
      this.setCounter(this.ctMarks, { found: 'sweep' }, st?.ctMarks?.sweep);
      this.setCounter(this.ctMarkFailures, {}, st?.ctMarks?.failures);
    } catch (err) {
      if (this.limiter.allow('status')) this.log.warn({ err: (err as Error).message }, 'metrics: cannot read the dataplane\'s status');
    }
    this.readKernel(dp.kind === 'ebpf' ? dp.pinDir : null);
  }

  /** A counter whose total someone else keeps (the kernel, the dataplane), reset before: exported as read; absent when unknown. */
  private setCounter<L extends string>(c: Counter<L>, labels: Partial<Record<L, string>>, value: bigint | number | undefined): void {
    if (value === undefined) return;
    if (Object.keys(labels).length) c.inc(labels, Number(value));
    else c.inc(Number(value));
  }

  private readKernel(pinDir: string | null): void {
    for (const c of [this.packets, this.bytes, this.drops, this.droppedBytes, this.eventsLost] as Array<Counter<string>>) c.reset();
    if (!pinDir) return;
    let k: ReturnType<typeof readKernelCounters>;
    try {
      k = readKernelCounters(pinDir);
    } catch (err) {
      if (this.limiter.allow('kernel')) this.log.warn({ pinDir, err: (err as Error).message }, 'metrics: cannot read the kernel\'s counters from the pinned maps');
      return;
    }
    for (const r of k.counters) {
      this.setCounter(this.packets, { direction: r.direction, encap: r.encap }, r.packets);
      this.setCounter(this.bytes, { direction: r.direction, encap: r.encap }, r.bytes);
    }
    for (const r of k.drops) {
      if (r.reason === DROP_REASONS[0]) continue; // "none" is no drop
      this.setCounter(this.drops, { reason: r.reason }, r.packets);
      this.setCounter(this.droppedBytes, { reason: r.reason }, r.bytes);
    }
    this.setCounter(this.eventsLost, {}, k.eventsLost);
  }
}

