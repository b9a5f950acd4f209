// The daemon: etcd -> lease session -> backend decisions (the peer table) ->
// dataplane, one way. The agent owns the peer table and the order in which
// the dataplane hears of changes; the session owns everything etcd says.
import os from 'node:os';
import { createBackend, type Backend } from '../backend/index.js';
import { parseNetworkConfig, type NetworkConfig } from '../config/network.js';
import { Backoff } from '../core/backoff.js';
import { WeftError, isWeftError, messageOf } from '../core/errors.js';
import { IPAddr } from '../core/ipnet.js';
import { RateLimiter, type Logger } from '../core/log.js';
import { describePeer, type LocalNetwork, type PeerRoute } from '../core/model.js';
import { weftVersion } from '../core/version.js';
import type { Dataplane } from '../dataplane/types.js';
import { Firewall, type FamilyNetwork, type FirewallOptions } from '../firewall/firewall.js';
import type { AgentStatus } from '../status/codec.js';
import { EtcdRegistry, explainEtcdError, type EtcdOptions } from '../subnet/registry.js';
import { endpointAddresses } from '../subnet/etcd-client.js';
import { LeaseSession, type PeerEvent } from '../subnet/session.js';
import { etcdRefusal } from '../subnet/etcd-tls.js';
import type { OwnLease } from '../subnet/manager.js';
import type { ConfigChange } from '../subnet/watch.js';
import type { DataplaneChoice, DataplaneFactory } from './dataplane.js';
import { ConfigFollower } from './config-change.js';
import { HealthServer, type Page } from './health.js';
import { AgentMetrics, type MetricsSource, type SyncOp } from '../metrics/metrics.js';
import { refuseNetworkConflict } from './host-check.js';
import type { IfaceSnapshot, SelectedInterface } from './iface.js';
import { LeasePolicy } from './lease-policy.js';
import type { Notifier } from './notify.js';
import { PeerTable, type Peer, type PeerChange } from './peers.js';
import { StatusServer } from './status.js';
import { previousSubnets, writeSubnetEnv } from './subnet-env.js';

const INITIAL_PEERS_LOGGED = 100;

export interface AgentOptions {
  etcd: EtcdOptions;
  subnetFile: string;
  renewMarginMin: number;
  leaseTTLSec: number;
  ipMasq: boolean;
  publicIPv6?: string;
  healthzIP: string;
  healthzPort: number;
  /** A port of its own for /metrics (at healthzIP); 0: /metrics only on the health port. */
  metricsPort?: number;
  /** What --dataplane asked for (the factory decides; the status shows both). */
  dataplane: DataplaneChoice;
  bpfPinDir: string;
  /** Unix socket for `weft status`; empty: none. */
  statusSocket?: string;
  /** The host's links, addresses and routes at start: the Network is checked against them before anything is leased. */
  host?: IfaceSnapshot;
  /** --ip-masq and --iptables-forward-rules; absent: the agent leaves the firewall alone. */
  firewall?: FirewallOptions;
  /** systemd's NOTIFY_SOCKET, when the agent runs in a Type=notify unit. */
  notify?: Notifier;
  /** Called once, when the agent is first ready (the runner collects the start's garbage then). */
  onReady?: () => void;
}

/** Thrown into waits when the agent stops; not an error of anyone's. */
class Stopping extends Error {}

export class Agent {
  readonly registry: EtcdRegistry;
  config: NetworkConfig | undefined;
  backend: Backend | undefined;
  session: LeaseSession | undefined;
  peers: PeerTable | undefined;
  dataplane: Dataplane | null = null;
  dataplaneReason = '';
  firewall: Firewall | undefined;
  readonly startedAt = Date.now();
  readonly errors: Array<{ atMs: number; message: string }> = [];
  readonly metrics: AgentMetrics;
  private readonly health: HealthServer;
  private readonly metricsServer: HealthServer | undefined;
  private readonly status = new StatusServer(() => this.snapshot());
  private queue: Promise<void> = Promise.resolve();
  private stopping = false;
  private readonly limiter = new RateLimiter(30_000);
  private peersSynced = false;
  /**
   * While the first list is applied and the dataplane takes peers in batches
   * (addPeers): the table's changes not yet handed to it, and whether a flush
   * is due (see flushEarly). Undefined before and after.
   */
  private early: PeerChange[] | undefined;
  private earlyDue = false;
  /** Why the last etcd call failed, until one succeeds. */
  private etcdError: string | undefined;
  private configFollower: ConfigFollower | undefined;
  private resolveDone!: () => void;
  private rejectDone!: (err: Error) => void;
  private readonly done = new Promise<void>((resolve, reject) => {
    this.resolveDone = resolve;
    this.rejectDone = reject;
  });

  constructor(
    readonly opts: AgentOptions,
    readonly selected: SelectedInterface,
    readonly log: Logger,
    private readonly makeDataplane: DataplaneFactory,
  ) {
    this.registry = new EtcdRegistry(opts.etcd);
    this.metrics = new AgentMetrics(this.metricsSource(), log);
    this.metrics.watchRegistry(this.registry);
    const metricsPage: Page = async () => ({ contentType: this.metrics.contentType, body: await this.metrics.render() });
    this.health = new HealthServer({ '/metrics': metricsPage }, true, () => this.phase());
    if (opts.metricsPort) this.metricsServer = new HealthServer({ '/metrics': metricsPage }, false);
  }

  /** What /metrics reads at scrape time: the agent's own state, nothing copied. */
  private metricsSource(): MetricsSource {
    return {
      lease: () => this.own,
      peers: () => this.peers?.values() ?? [],
      etcd: () => ({ connected: this.session?.connected ?? false, revision: this.session?.revision ?? '0' }),
      dataplane: () => ({ requested: this.opts.dataplane, kind: this.dataplane?.kind ?? 'none', reason: this.dataplaneReason, pinDir: this.opts.bpfPinDir }),
      dataplaneStatus: async () => (this.dataplane ? this.dataplane.status() : null),
    };
  }

  /** Something the operator should fix that does not stop the agent (the CLI's pre-flight finds these): logged, and shown by the status. */
  note(message: string): void {
    this.log.warn(message);
    this.recordError(message);
  }

  get own(): OwnLease | undefined {
    return this.session?.own;
  }

  /** subnet.env is written and the initial peers are programmed (what /readyz says). */
  get ready(): boolean {
    return this.health.ready;
  }

  /** Runs until stop() (resolves) or a fatal error (rejects). */
  async run(): Promise<void> {
    await this.listenStatus();
    // Before anything is leased: a port in use is the user's to fix, and /healthz, /readyz and /metrics answer
    // while the agent starts (/readyz says what it waits for: etcd unreachable, no config).
    if (this.opts.healthzPort) await this.health.listen(this.opts.healthzIP, this.opts.healthzPort);
    if (this.opts.metricsPort) await this.metricsServer!.listen(this.opts.healthzIP, this.opts.metricsPort, '--healthz-ip IP --metrics-port PORT');
    this.start().catch((err: unknown) => {
      if (!(err instanceof Stopping)) this.die(err as Error);
    });
    await this.done;
  }

  private die(err: Error): void {
    this.rejectDone(err);
    void this.stop();
  }

  private recordError(message: string): void {
    this.errors.push({ atMs: Date.now(), message });
    if (this.errors.length > 20) this.errors.shift();
  }

  private async pause(ms: number): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    if (this.stopping) throw new Stopping();
  }

  /**
   * Retries an etcd operation until it succeeds, logging (rate-limited) why
   * it cannot, with a jittered backoff up to 30 s. A WeftError is not retried.
   */
  private async withEtcd<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const backoff = new Backoff();
    for (;;) {
      if (this.stopping) throw new Stopping();
      try {
        const v = await fn();
        this.limiter.reset(what);
        this.etcdError = undefined;
        return v;
      } catch (err) {
        if (isWeftError(err)) throw err;
        const refusal = etcdRefusal(err, this.opts.etcd);
        if (refusal) throw refusal;
        this.etcdError = explainEtcdError(err as Error, this.opts.etcd.endpoints);
        const message = `cannot ${what}: ${this.etcdError}; retrying`;
        if (this.limiter.allow(what)) {
          this.log.error({ err: messageOf(err) }, message);
          this.recordError(message);
          this.opts.notify?.status(message);
        }
        await this.pause(backoff.next());
      }
    }
  }

  private async fetchConfig(): Promise<NetworkConfig> {
    for (;;) {
      const text = await this.withEtcd('read the network config', () => this.registry.getConfigText());
      if (text !== null) {
        const cfg = parseNetworkConfig(text);
        this.configFollower = new ConfigFollower({ config: cfg, text }, this.registry.configKey);
        if (cfg.backendDefaulted) {
          this.log.warn('the network config names no Backend, so it runs udp (flannel does the same); udp exists for debugging: consider {"Backend": {"Type": "vxlan"}}');
        }
        for (const f of cfg.unknownFields) this.log.warn({ field: f }, 'ignoring an unknown field in the network config');
        return cfg;
      }
      if (this.limiter.allow('no-config')) {
        // Only a hint for the message: an endpoint without the v2 API simply has no v2 config.
        const v2 = await this.registry.v2Config().catch(() => null);
        const key = this.registry.configKey;
        const message = v2
          ? `no network config at ${key} in etcd's v3 keyspace, but the v2 keyspace has one (written with ETCDCTL_API=2 etcdctl set), which the v3 API cannot see. Write it with the v3 API: ETCDCTL_API=3 etcdctl put ${key} '${v2.trim()}'`
          : `no network config at ${key}; waiting for it. Write one, e.g.: etcdctl put ${key} '{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}'`;
        this.log.error(message);
        this.recordError(message);
        this.opts.notify?.status(`waiting for the network config at ${key} in etcd`);
      }
      await this.pause(1000);
    }
  }

  private localNetwork(config: NetworkConfig, backend: Backend, own: OwnLease): LocalNetwork {
    const { iface, publicIP } = this.selected;
    const local: LocalNetwork = {
      backend: backend.type,
      network: config.ipv4.network,
      subnet: own.subnet,
      publicIP: IPAddr.v4(publicIP, 'PublicIP'),
      iface,
      mtu: backend.podMTU(iface.mtu),
      pinDir: this.opts.bpfPinDir,
      etcd: endpointAddresses(this.registry.hosts),
    };
    const c = config.backend;
    if (backend.type === 'vxlan') local.vxlan = { vni: c.vni, port: c.port, gbp: c.gbp, learning: c.learning, vtepMAC: backend.vtepMAC! };
    if (backend.type === 'udp') local.udp = { port: c.port };
    return local;
  }

  /** A Network that would shadow the host's own networks or routes is refused before anything is leased. */
  private checkHost(config: NetworkConfig): void {
    if (this.opts.host) refuseNetworkConflict(config.ipv4, { snapshot: this.opts.host, underlay: this.selected.iface, etcd: endpointAddresses(this.registry.hosts) });
  }

  private async start(): Promise<void> {
    const { iface, publicIP } = this.selected;
    this.log.info({ iface: iface.name, address: iface.address, publicIP, mtu: iface.mtu }, 'using interface');
    if (this.opts.firewall) {
      // Its shell starts now: spawned once the lease list is in, it would stop this thread twice as long.
      this.firewall = new Firewall(this.opts.firewall, this.log);
      this.firewall.warm();
    }
    const config = (this.config = await this.fetchConfig());
    this.checkHost(config);
    const backend = (this.backend = createBackend(config.backend, iface, publicIP));
    const mtu = backend.podMTU(iface.mtu);
    if (config.backend.type === 'vxlan' && config.backend.mtu && config.backend.mtu > iface.mtu - 50) {
      this.log.warn({ mtu: config.backend.mtu, iface: iface.mtu }, 'Backend.MTU leaves no room for the 50 bytes of vxlan headers on this interface: large packets will be dropped');
    }

    const session = (this.session = new LeaseSession({
      registry: this.registry,
      config,
      attrs: backend.leaseAttrs(publicIP, this.opts.publicIPv6 ?? null),
      ttlSec: this.opts.leaseTTLSec,
      renewMarginMin: this.opts.renewMarginMin,
      previous: previousSubnets(this.opts.subnetFile),
      log: this.log,
    }));
    session.on('lost', (err) => this.die(err));
    this.metrics.watchSession(session);
    this.opts.notify?.status('acquiring a subnet lease');
    const own = await this.withEtcd('acquire a subnet lease', () => session.acquire());
    this.log.info({ subnet: own.subnet.toString(), reservation: own.reservation, backend: backend.type }, 'lease acquired');

    this.opts.notify?.status(`programming the dataplane for ${own.subnet}`);
    const policy = new LeasePolicy({
      range: config.ipv4,
      ownSubnet: () => this.own?.subnet,
      ownAddresses: [...new Set([publicIP, iface.address])].map((a) => IPAddr.v4(a, 'address')),
    });
    const peers = (this.peers = new PeerTable((lease) => backend.peerRoute(lease), policy));
    const local = this.localNetwork(config, backend, own);
    const { dataplane, reason } = await this.makeDataplane(local, this.log);
    this.dataplane = dataplane;
    this.dataplaneReason = reason;
    // The dataplane starts first: its start waits on the kernel's verifier, on another thread, while the peers
    // are listed into the table here (in slices, see LeaseWatcher.apply). Until the dataplane runs and the host
    // is ready for pods, the peers go only to the table; then (a dataplane with addPeers) those in it and each
    // slice's as it is applied go in batches, else all in the one sync after the list.
    // The firewall's rules go in meanwhile too (iptables runs in processes of its own); subnet.env waits for both.
    const started = dataplane ? this.startDataplane(dataplane, local, peers) : Promise.resolve();
    const walled = this.startFirewall(config, own);
    session.on('peer', (e) => this.onPeerEvent(e));
    session.on('config', (c) => this.onConfigChange(c));
    const listed = this.withEtcd('list the subnet leases', () => session.watch());
    // Each is awaited below, in this order; the ones not yet awaited must not become unhandled rejections meanwhile.
    walled.catch(() => undefined);
    listed.catch(() => undefined);
    await started;
    await walled;

    writeSubnetEnv(this.opts.subnetFile, {
      network: config.ipv4.network,
      subnet: own.subnet,
      ipv6Network: config.ipv6?.network,
      ipv6Subnet: own.subnetV6,
      mtu,
      ipMasq: this.opts.ipMasq,
    });
    this.log.info({ file: this.opts.subnetFile, subnet: own.subnet.toString(), mtu }, 'wrote subnet.env');

    this.opts.notify?.status(`listing and programming the peers of ${own.subnet}`);
    if (dataplane?.addPeers) {
      // At 65,536 leases the list is still being applied: the peers decided so far are programmed now, the rest a
      // slice at a time, so that the last is in the map once the list is (the sync below then finds them in place
      // and adds our own subnet's entry), not after one more pass over all of them.
      this.early = [];
      for (const route of peers.routes()) this.early.push({ kind: 'upsert', route });
      this.flushEarly();
    }
    await listed;
    if (this.stopping) throw new Stopping();
    this.flushEarly();
    this.early = undefined;
    // The watch covers the config from the list's revision on; a change between our read and then is caught here.
    const now = await this.withEtcd('read the network config', () => this.registry.getConfig());
    this.onConfigChange({ text: now.text, revision: now.revision });
    // The full list is in: make the dataplane hold exactly these peers (differences only),
    // and from this tick on apply each change as it comes.
    this.peersSynced = true;
    await this.enqueue('full', (dp) => dp.syncPeers());
    this.logInitialPeers();
    this.health.ready = true;
    this.opts.notify?.ready(`ready: subnet ${own.subnet}, ${peers.size} peer${peers.size === 1 ? '' : 's'}, dataplane ${dataplane?.kind ?? 'none'}`);
    this.log.info({ peers: peers.size, dataplane: dataplane?.kind ?? 'none' }, 'agent ready');
    this.opts.onReady?.();
  }

  private async startDataplane(dataplane: Dataplane, local: LocalNetwork, peers: PeerTable): Promise<void> {
    try {
      await dataplane.start(local, peers);
    } catch (err) {
      // A backend this dataplane cannot run here is the user's to fix: say which dataplane refused it.
      if (isWeftError(err)) throw new WeftError(`--dataplane=${dataplane.kind}: ${err.message}`, err.kind, err.subject);
      throw err;
    }
  }

  /** flannel's masquerade and forward chains, in place before subnet.env says the host is ready for pods. */
  private async startFirewall(config: NetworkConfig, own: OwnLease): Promise<void> {
    if (!this.opts.firewall || !this.firewall) return;
    const networks: FamilyNetwork[] = [{ network: config.ipv4.network, subnet: own.subnet }];
    if (config.ipv6 && own.subnetV6) networks.push({ network: config.ipv6.network, subnet: own.subnetV6 });
    try {
      await this.firewall.start(networks);
    } catch (err) {
      throw new WeftError(`cannot put the firewall rules in place (--ip-masq ${this.opts.firewall.ipMasq}, --iptables-forward-rules ${this.opts.firewall.forwardRules}): ${messageOf(err)}`);
    }
  }

  /** One line per peer for a small cluster; for a large one a line each would cost more than the sync (0.5 s at 10,000). */
  private logInitialPeers(): void {
    const routed = this.peers!.counts().routed;
    if (routed > INITIAL_PEERS_LOGGED) {
      this.log.info({ peers: routed }, `peers added (one line each only up to ${INITIAL_PEERS_LOGGED}; weft bpf peers or weft status list them)`);
      return;
    }
    for (const r of this.peers!.routes()) this.log.info(describePeer(r), 'peer added');
  }

  private onPeerEvent(e: PeerEvent): void {
    const { peers, changes } = this.peers!.apply(e);
    if (e.type === 'removed') this.log.info({ peer: e.lease.attrs.PublicIP, subnet: e.lease.subnet.toString() }, 'peer removed');
    for (const peer of peers) {
      if (peer.skipped) this.reportSkipped(peer);
      // Peers of the initial list are logged together once it is applied (see logInitialPeers).
      // Another lease's peer routed by this event took over a subnet whose holder went: for the dataplane it is new.
      else if (peer.route && this.peersSynced) this.log.info(describePeer(peer.route), peer.lease === e.lease && e.type === 'changed' ? 'peer changed' : 'peer added');
    }
    if (!this.peersSynced) {
      // The initial list: in batches while it is applied (flushEarly), else in the one syncPeers after it.
      if (!this.early) return;
      for (const change of changes) if (change.kind !== 'none') this.early.push(change);
      if (!this.earlyDue && this.early.length > 0) {
        this.earlyDue = true;
        // After the slice being applied: the list yields to the event loop between slices.
        setImmediate(() => {
          this.earlyDue = false;
          this.flushEarly();
        });
      }
      return;
    }
    for (const change of changes) this.forward(change);
  }

  /** One change to the dataplane, queued behind what it is doing. */
  private forward(change: PeerChange): void {
    if (change.kind === 'upsert') void this.enqueue('upsert', (dp) => dp.upsertPeer(change.route, change.previous));
    else if (change.kind === 'remove') void this.enqueue('remove', (dp) => dp.removePeer(change.route));
  }

  /**
   * Hands the dataplane the initial list's changes gathered so far, in their
   * order: runs of new peers as one addPeers batch each, anything else (a
   * subnet's holder replaced, say) one by one, as after the list. Queued
   * behind whatever the dataplane is doing, like every change.
   */
  private flushEarly(): void {
    const changes = this.early;
    if (!changes || changes.length === 0) return;
    this.early = [];
    let batch: PeerRoute[] = [];
    const send = (): void => {
      if (batch.length === 0) return;
      const routes = batch;
      batch = [];
      void this.enqueue('batch', (dp) => dp.addPeers!(routes));
    };
    for (const change of changes) {
      if (change.kind === 'upsert' && !change.previous) {
        batch.push(change.route);
        continue;
      }
      send();
      this.forward(change);
    }
    send();
  }

  private reportSkipped(p: Peer): void {
    if (p.refused) {
      // Anyone who can write the prefix can put a lease: a refused one is worth a warning, not an error of ours.
      const key = this.registry.subnetsPrefix + p.lease.name;
      this.log.warn({ key, subnet: p.lease.subnet.toString(), peer: p.lease.attrs.PublicIP, reason: p.skipped }, 'lease refused');
      this.recordError(`lease ${key} refused: ${p.skipped}`);
      return;
    }
    const message = `cannot reach peer ${p.lease.attrs.PublicIP} (${p.lease.subnet}): ${p.skipped}`;
    this.log.error({ peer: p.lease.attrs.PublicIP, subnet: p.lease.subnet.toString() }, message);
    this.recordError(message);
  }

  /** The config in etcd changed under the running agent: say what, and that a restart applies it. */
  private onConfigChange(c: ConfigChange): void {
    const n = this.configFollower?.notice(c);
    if (!n) return;
    this.log[n.level](n.fields, n.message);
    this.recordError(n.fields.err ? `${n.message}: ${String(n.fields.err)}` : n.message);
  }

  /** Dataplane changes apply in the order the leases changed (timed for /metrics). */
  private enqueue(op: SyncOp, fn: (dp: Dataplane) => Promise<void>): Promise<void> {
    this.queue = this.queue.then(async () => {
      const dp = this.dataplane;
      if (!dp) return;
      try {
        await this.metrics.timeSync(op, () => fn(dp));
      } catch (err) {
        const message = `dataplane: ${messageOf(err)}`;
        this.log.error(message);
        this.recordError(message);
      }
    });
    return this.queue;
  }

  /** The status socket answers from the start, so `weft status` can say what the agent waits for. */
  private async listenStatus(): Promise<void> {
    const socket = this.opts.statusSocket;
    if (!socket) return;
    try {
      await this.status.listen(socket);
      this.log.info({ socket }, 'status socket listening');
    } catch (err) {
      const message = `status socket: ${messageOf(err)}; weft status cannot reach this agent, which runs on without it`;
      this.log.error(message);
      this.recordError(message);
    }
  }

  /** Why etcd cannot be reached now, or undefined while it can. */
  private etcdDown(): string | undefined {
    if (this.etcdError) return this.etcdError;
    const s = this.session;
    if (s && this.peersSynced && !s.connected) return `the watch has no etcd endpoint (${s.watchError ?? 'reconnecting'})`;
    return undefined;
  }

  private phase(): string {
    const down = this.etcdDown();
    if (this.ready) return down ? `ready, but etcd unreachable: ${down}; forwarding to the peers last seen` : 'ready';
    if (down) return `etcd unreachable: ${down}`;
    if (!this.config) return 'waiting for the network config in etcd';
    if (!this.own) return 'acquiring a subnet lease';
    return 'programming the dataplane and listing peers';
  }

  /** Peer entries the kernel holds, or why that is not known. */
  private async peersInKernel(): Promise<{ inMaps: number | null; inMapsNote: string }> {
    const dp = this.dataplane;
    if (!dp) return { inMaps: null, inMapsNote: this.dataplaneReason ? `no dataplane: ${this.dataplaneReason}` : 'the dataplane is not started yet' };
    try {
      return { inMaps: (await dp.status()).peersInKernel, inMapsNote: '' };
    } catch (err) {
      return { inMaps: null, inMapsNote: `cannot count the dataplane's peers: ${messageOf(err)}` };
    }
  }

  /** What the agent holds, for the status socket. */
  async snapshot(): Promise<AgentStatus> {
    const own = this.own;
    const cfg = this.config?.backend;
    const { iface, publicIP } = this.selected;
    const counts = this.peers?.counts() ?? { total: 0, routed: 0, skipped: 0, refused: 0 };
    return {
      pid: process.pid,
      hostname: os.hostname(),
      startedAtMs: this.startedAt,
      nowMs: Date.now(),
      phase: this.phase(),
      ready: this.ready,
      lease: own
        ? {
            subnet: own.subnet.toString(),
            subnetV6: own.subnetV6?.toString() ?? '',
            reservation: own.reservation,
            expiresAtMs: own.expiresAt ?? 0,
            leaseId: own.leaseId,
            publicIP,
          }
        : null,
      backend: {
        type: this.backend?.type ?? cfg?.type ?? '',
        vni: cfg?.type === 'vxlan' ? cfg.vni : 0,
        port: cfg?.port ?? 0,
        vtepMAC: this.backend?.vtepMAC ?? '',
        directRouting: cfg?.directRouting ?? false,
      },
      dataplane: { requested: this.opts.dataplane, kind: this.dataplane?.kind ?? 'none', reason: this.dataplaneReason, pinDir: this.opts.bpfPinDir },
      etcd: { endpoints: this.opts.etcd.endpoints, prefix: this.registry.prefix, connected: this.session?.connected ?? false, revision: Number(this.session?.revision ?? 0) },
      peers: { inView: counts.total, routed: counts.routed, skipped: counts.skipped, ...(await this.peersInKernel()) },
      iface: { name: iface.name, index: iface.index, address: iface.address, mtu: iface.mtu },
      errors: [...this.errors],
      network: this.config?.ipv4.network.toString() ?? '',
      mtu: this.backend ? this.backend.podMTU(iface.mtu) : 0,
      subnetFile: this.opts.subnetFile,
      version: weftVersion(),
    };
  }

  /** Stops cleanly; the lease stays in etcd and the dataplane state in the kernel for the next start. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.opts.notify?.stopping();
    this.firewall?.stop();
    await this.status.close();
    await this.session?.stop();
    await this.queue;
    await this.dataplane?.stop();
    await this.health.close();
    await this.metricsServer?.close();
    this.registry.close();
    this.opts.notify?.close();
    this.resolveDone();
  }
}
