// The daemon: etcd -> leases -> backend decisions -> dataplane, one way.
import { ConfigError, parseNetworkConfig, type NetworkConfig } from '../config/network.js';
import { createBackend, type Backend } from '../backend/index.js';
import { EtcdRegistry, explainEtcdError, type EtcdOptions } from '../subnet/registry.js';
import { LeaseManager, OutOfSubnetsError, type OwnLease } from '../subnet/manager.js';
import { LeaseWatcher, type LeaseEvent } from '../subnet/watch.js';
import type { Lease } from '../subnet/lease.js';
import { previousSubnets, writeSubnetEnv } from './subnet-env.js';
import { HealthServer } from './health.js';
import { StatusServer, agentStatus } from './status.js';
import type { SelectedInterface } from './iface.js';
import type { Dataplane, LocalNetwork, PeerRoute } from '../dataplane/types.js';
import { RateLimiter, type Logger } from '../core/log.js';

export type DataplaneChoice = 'auto' | 'ebpf' | 'netlink' | 'none';

const INITIAL_PEERS_LOGGED = 100;

function peerFields(lease: Lease, route: PeerRoute): Record<string, string> {
  return { peer: lease.attrs.PublicIP, subnet: lease.subnet.toString(), encap: route.encap };
}

export interface AgentOptions {
  etcd: EtcdOptions;
  subnetFile: string;
  renewMarginMin: number;
  leaseTTLSec: number;
  ipMasq: boolean;
  publicIPv6?: string;
  healthzIP: string;
  healthzPort: number;
  dataplane: DataplaneChoice;
  bpfPinDir: string;
  /** Unix socket for `weft status`; empty: none. */
  statusSocket?: string;
}

/** Chooses and builds the dataplane once the local network is known. */
export type DataplaneFactory = (choice: DataplaneChoice, local: LocalNetwork, log: Logger) => Promise<{ dataplane: Dataplane | null; reason: string }>;

/** A fatal condition the user must fix; the CLI prints it and exits non-zero. */
export class AgentFatalError extends Error {}

export interface PeerState {
  lease: Lease;
  route?: PeerRoute;
  skipped?: string;
}

export class Agent {
  readonly registry: EtcdRegistry;
  config: NetworkConfig | undefined;
  backend: Backend | undefined;
  own: OwnLease | undefined;
  dataplane: Dataplane | null = null;
  dataplaneReason = '';
  readonly peers = new Map<string, PeerState>();
  readonly startedAt = Date.now();
  readonly errors: Array<{ at: string; message: string }> = [];
  private manager: LeaseManager | undefined;
  private watcher: LeaseWatcher | undefined;
  private readonly health = new HealthServer();
  private readonly status = new StatusServer(() => agentStatus(this));
  private queue: Promise<void> = Promise.resolve();
  private stopping = false;
  private readonly limiter = new RateLimiter(30_000);
  private peersSynced = false;
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
  }

  get watcherConnected(): boolean {
    return this.watcher?.connected ?? false;
  }

  get revision(): string {
    return this.watcher?.revision ?? '0';
  }

  /** subnet.env is written and the initial peers are programmed (what /readyz says). */
  get ready(): boolean {
    return this.health.ready;
  }

  /** Runs until stop() (resolves) or a fatal error (rejects). */
  async run(): Promise<void> {
    await this.listenStatus();
    await Promise.race([this.start(), this.done]);
    await this.done;
  }

  private die(err: Error): void {
    this.rejectDone(err);
    void this.stop();
  }

  private recordError(message: string): void {
    this.errors.push({ at: new Date().toISOString(), message });
    if (this.errors.length > 20) this.errors.shift();
  }

  /** Retries an etcd operation until it succeeds, logging (rate-limited) why it cannot. */
  private async withEtcd<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let delay = 200; ; delay = Math.min(delay * 2, 5000)) {
      if (this.stopping) throw new AgentFatalError('stopping');
      try {
        const v = await fn();
        this.limiter.reset(what);
        return v;
      } catch (err) {
        if (err instanceof ConfigError || err instanceof OutOfSubnetsError || err instanceof AgentFatalError) throw err;
        const message = `cannot ${what}: ${explainEtcdError(err as Error, this.opts.etcd.endpoints)}; retrying`;
        if (this.limiter.allow(what)) {
          this.log.error({ err: (err as Error).message }, message);
          this.recordError(message);
        }
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private async fetchConfig(): Promise<NetworkConfig> {
    for (;;) {
      const text = await this.withEtcd('read the network config', () => this.registry.getConfigText());
      if (text !== null) {
        const cfg = parseNetworkConfig(text);
        if (cfg.backendDefaulted) {
          this.log.warn('the network config names no Backend, so it runs udp (flannel does the same); udp exists for debugging: consider {"Backend": {"Type": "vxlan"}}');
        }
        for (const f of cfg.unknownFields) this.log.warn({ field: f }, 'ignoring an unknown field in the network config');
        return cfg;
      }
      if (this.limiter.allow('no-config')) {
        const v2 = await this.registry.v2Config().catch(() => null);
        const key = this.registry.configKey;
        const message = v2
          ? `no network config at ${key} in etcd's v3 keyspace, but the v2 keyspace has one (written with ETCDCTL_API=2 etcdctl set), which the v3 API cannot see. Write it with the v3 API: ETCDCTL_API=3 etcdctl put ${key} '${v2.trim()}'`
          : `no network config at ${key}; waiting for it. Write one, e.g.: etcdctl put ${key} '{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}'`;
        this.log.error(message);
        this.recordError(message);
      }
      if (this.stopping) throw new AgentFatalError('stopping');
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  private async start(): Promise<void> {
    const { iface, publicIP } = this.selected;
    this.log.info({ iface: iface.name, address: iface.address, publicIP, mtu: iface.mtu }, 'using interface');
    const config = await this.fetchConfig();
    this.config = config;
    const backend = createBackend(config.backend, iface, publicIP);
    this.backend = backend;
    const mtu = backend.podMTU(iface.mtu);
    if (config.backend.type === 'vxlan' && config.backend.mtu && config.backend.mtu > iface.mtu - 50) {
      this.log.warn({ mtu: config.backend.mtu, iface: iface.mtu }, 'Backend.MTU leaves no room for the 50 bytes of vxlan headers on this interface: large packets will be dropped');
    }

    const manager = new LeaseManager({
      registry: this.registry,
      config,
      attrs: backend.leaseAttrs(publicIP, this.opts.publicIPv6 ?? null),
      ttlSec: this.opts.leaseTTLSec,
      renewMarginMin: this.opts.renewMarginMin,
      previous: previousSubnets(this.opts.subnetFile),
      log: this.log,
    });
    this.manager = manager;
    manager.on('lost', (err) => this.die(new AgentFatalError(err.message)));
    const own = await this.withEtcd('acquire a subnet lease', () => manager.acquire());
    this.own = own;
    this.log.info({ subnet: own.subnet.toString(), reservation: own.reservation, backend: backend.type }, 'lease acquired');
    manager.on('renewed', (l) => (this.own = l));
    manager.on('reacquired', (l) => (this.own = l));

    const local: LocalNetwork = {
      backend: backend.type,
      network: config.ipv4.network.toString(),
      subnet: own.subnet.toString(),
      publicIP,
      iface,
      mtu,
      pinDir: this.opts.bpfPinDir,
    };
    if (backend.type === 'vxlan') {
      const c = config.backend;
      local.vxlan = { vni: c.vni, port: c.port, gbp: c.gbp, learning: c.learning, vtepMAC: (backend as { vtepMAC: string } & Backend).vtepMAC };
    }
    if (backend.type === 'udp') local.udp = { port: config.backend.port };
    const { dataplane, reason } = await this.makeDataplane(this.opts.dataplane, local, this.log);
    this.dataplane = dataplane;
    this.dataplaneReason = reason;
    if (dataplane) await dataplane.start(local);

    writeSubnetEnv(this.opts.subnetFile, {
      network: config.ipv4.network,
      subnet: own.subnet,
      ipv6Network: config.ipv6?.network,
      ipv6Subnet: own.subnetV6,
      mtu,
      ipMasq: this.opts.ipMasq,
    });
    this.log.info({ file: this.opts.subnetFile, subnet: own.subnet.toString(), mtu }, 'wrote subnet.env');

    const watcher = new LeaseWatcher(this.registry, this.log);
    this.watcher = watcher;
    watcher.on('event', (e) => this.onLeaseEvent(e));
    // The acquisition's list is a few milliseconds old: watch from its revision rather than list 10,000 leases twice.
    const initial = manager.lastList;
    manager.lastList = undefined;
    let first = true;
    await this.withEtcd('list the subnet leases', () => watcher.start(first ? ((first = false), initial) : undefined));
    // The full list is in: make the dataplane hold exactly these peers (differences only),
    // and from this tick on apply each change as it comes.
    this.peersSynced = true;
    const routes = [...this.peers.values()].flatMap((p) => (p.route ? [p.route] : []));
    await this.enqueue(() => this.dataplane?.syncPeers(routes));
    this.logInitialPeers();
    if (this.opts.healthzPort) await this.health.listen(this.opts.healthzIP, this.opts.healthzPort);
    this.health.ready = true;
    this.log.info({ peers: this.peers.size, dataplane: dataplane?.kind ?? 'none' }, 'agent ready');
  }

  /** One line per peer for a small cluster; for a large one a line each would cost more than the sync (0.5 s at 10,000). */
  private logInitialPeers(): void {
    const routed = [...this.peers.values()].filter((p) => p.route);
    if (routed.length > INITIAL_PEERS_LOGGED) {
      this.log.info({ peers: routed.length }, `peers added (one line each only up to ${INITIAL_PEERS_LOGGED}; weft bpf peers or weft status list them)`);
      return;
    }
    for (const p of routed) this.log.info(peerFields(p.lease, p.route!), 'peer added');
  }

  private isOwn(lease: Lease): boolean {
    return Boolean(this.own && lease.subnet.equals(this.own.subnet));
  }

  private onLeaseEvent(e: LeaseEvent): void {
    if (this.isOwn(e.lease)) {
      if (e.type !== 'added') void this.manager?.onOwnLeaseEvent(e.type, e.type === 'changed' ? e.lease : undefined);
      return;
    }
    const name = e.lease.name;
    if (e.type === 'removed') {
      const had = this.peers.get(name);
      this.peers.delete(name);
      this.log.info({ peer: e.lease.attrs.PublicIP, subnet: e.lease.subnet.toString() }, 'peer removed');
      if (had?.route && this.peersSynced) void this.enqueue(() => this.dataplane?.removePeer(had.route!.subnet));
      return;
    }
    const decision = this.backend!.peerRoute(e.lease);
    const state: PeerState = { lease: e.lease };
    const previous = this.peers.get(name);
    if ('skip' in decision) {
      state.skipped = decision.skip;
      const message = `cannot reach peer ${e.lease.attrs.PublicIP} (${e.lease.subnet}): ${decision.skip}`;
      this.log.error({ peer: e.lease.attrs.PublicIP, subnet: e.lease.subnet.toString() }, message);
      this.recordError(message);
    } else {
      state.route = decision;
      // Peers of the initial list are logged together once it is applied (see logInitialPeers).
      if (this.peersSynced) this.log.info(peerFields(e.lease, decision), e.type === 'added' ? 'peer added' : 'peer changed');
    }
    this.peers.set(name, state);
    if (!this.peersSynced) return; // the initial list is programmed in one syncPeers
    if (state.route) void this.enqueue(() => this.dataplane?.upsertPeer(state.route!));
    else if (previous?.route) void this.enqueue(() => this.dataplane?.removePeer(previous.route!.subnet));
  }

  /** Dataplane changes apply in the order the leases changed. */
  private enqueue(fn: () => Promise<void> | undefined): Promise<void> {
    this.queue = this.queue.then(async () => {
      try {
        await fn();
      } catch (err) {
        const message = `dataplane: ${(err as Error).message}`;
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
      const message = `status socket: ${(err as Error).message}; weft status cannot reach this agent, which runs on without it`;
      this.log.error(message);
      this.recordError(message);
    }
  }

  /** Stops cleanly; the lease stays in etcd and the dataplane state in the kernel for the next start. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await this.status.close();
    this.manager?.stop();
    await this.watcher?.stop();
    await this.queue;
    await this.dataplane?.stop();
    await this.health.close();
    this.registry.close();
    this.resolveDone();
  }
}
