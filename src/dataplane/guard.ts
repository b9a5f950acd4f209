// What a dataplane never routes into the overlay, whatever a lease or the
// agent above says: the host's own addresses, its connected networks, the
// gateways of its routes, and the etcd endpoints. The lease policy refuses
// such leases first (agent/lease-policy.ts); this is the floor under it, read
// from the kernel itself, so that no bug or bypass above can turn a lease into
// a route that cuts the host off (a peer route named after the underlay's
// subnet replaces the kernel's connected route; one over the etcd server's
// address sends the agent's own etcd traffic into the tunnel).
import { IPAddr, IPNet, last4, span4 } from '../core/ipnet.js';
import type { Logger } from '../core/log.js';
import type { LocalNetwork, PeerRoute } from '../core/model.js';
import { NetlinkHandle, type Route } from '../native/netlink.js';
import { RTPROT_WEFT, type Dataplane, type DataplaneStatus, type PeerSource } from './types.js';

export interface Protected {
  net: IPNet;
  /** What it is, for the log: "192.0.2.0/24, the connected network of eth0". */
  what: string;
  /** Read from the routes (a gateway), which a quick read does not dump again. */
  fromRoutes?: boolean;
}

/** The host's addresses and connected networks as the kernel has them now. */
function fromAddresses(nl: NetlinkHandle, names: Map<number, string>): Protected[] {
  const out: Protected[] = [];
  for (const a of nl.addrs()) {
    const ip = IPAddr.parse(a.address);
    if (!ip || ip.family !== 4) continue;
    const dev = names.get(a.index) ?? `ifindex ${a.index}`;
    out.push({ net: new IPNet(4, ip.value, 32), what: `${a.address}, an address of ${dev}` });
    if (a.prefixLen < 32) {
      const connected = IPNet.of(4, a.address, a.prefixLen).canonical();
      out.push({ net: connected, what: `${connected}, the connected network of ${dev}` });
    }
  }
  return out;
}

export class RouteGuard {
  /** The IPv4 prefixes as address spans: a sync asks for every peer twice, 65,536 peers against each prefix. */
  private readonly spans4: Array<[number, number, Protected]>;

  constructor(readonly prefixes: Protected[]) {
    this.spans4 = prefixes.filter((p) => p.net.family === 4).map((p) => [...span4(p.net), p]);
  }

  /**
   * Reads what to protect from the kernel (in the handle's namespace) and
   * from the local network (etcd). Without `routes` it is the quick read,
   * made before each single peer change: addresses only (one small dump),
   * the gateways taken over from `previous` (a full read, with the route
   * dump a sync or a reconcile makes anyway).
   */
  static read(nl: NetlinkHandle, local: Pick<LocalNetwork, 'etcd'>, routes?: Route[], previous?: RouteGuard): RouteGuard {
    const names = new Map(nl.links().map((l) => [l.index, l.name]));
    const prefixes = fromAddresses(nl, names);
    if (routes) {
      for (const r of routes) {
        // A gateway the host routes through (the default route's above all); weft's own routes' next hops are peers.
        if (!r.gateway || r.protocol === RTPROT_WEFT || r.table !== 254) continue;
        const gw = IPAddr.parse(r.gateway);
        if (gw?.family === 4) prefixes.push({ net: new IPNet(4, gw.value, 32), what: `${r.gateway}, the gateway of the route ${r.dst}`, fromRoutes: true });
      }
    } else {
      prefixes.push(...(previous?.prefixes.filter((p) => p.fromRoutes) ?? []));
    }
    for (const ip of local.etcd ?? []) prefixes.push({ net: new IPNet(ip.family, ip.value, ip.family === 4 ? 32 : 128), what: `${ip}, an etcd endpoint` });
    return new RouteGuard(prefixes);
  }

  /** Why a route to `subnet` would shadow something of the host's, or null. */
  refuse(subnet: IPNet): string | null {
    let hit: Protected | undefined;
    if (subnet.family === 4) {
      // Two prefixes overlap exactly when their spans meet (one then holds the other). A loop over numbers:
      // span4's pair and find()'s closure were two objects for each peer of a sync, 65,536 of them at a start.
      const first = subnet.network4;
      const last = last4(first, subnet.prefixLen);
      for (let i = 0; i < this.spans4.length && !hit; i++) {
        const span = this.spans4[i];
        if (span[0] <= last && first <= span[1]) hit = span[2];
      }
    } else hit = this.prefixes.find((p) => p.net.overlaps(subnet));
    return hit ? `a route to ${subnet} would shadow ${hit.what}` : null;
  }
}

/**
 * A dataplane behind the guard: peers whose route the guard refuses never
 * reach it (left out of the source it reads, of upserts and of removals).
 * The eBPF dataplane runs behind one; the netlink dataplane applies the guard
 * itself, because it also repairs routes an older agent left.
 */
export class GuardedDataplane implements Dataplane {
  readonly kind: Dataplane['kind'];
  readonly addPeers?: (routes: PeerRoute[]) => Promise<void>;
  private guard = new RouteGuard([]);
  private local: LocalNetwork | undefined;
  private readonly logged = new Set<string>();

  constructor(
    private readonly inner: Dataplane,
    private readonly log: Logger,
    private readonly read: (local: LocalNetwork, previous?: RouteGuard) => RouteGuard = (local, previous) => {
      const nl = NetlinkHandle.open();
      try {
        return previous ? RouteGuard.read(nl, local, undefined, previous) : RouteGuard.read(nl, local, nl.routes());
      } finally {
        nl.close();
      }
    },
  ) {
    this.kind = inner.kind;
    // Only where the inner dataplane has it: the agent asks whether it may batch by its presence.
    const add = inner.addPeers?.bind(inner);
    if (add) this.addPeers = (routes) => add(routes.filter((r) => !this.refused(r)));
  }

  private refused(p: PeerRoute): boolean {
    const why = this.guard.refuse(p.subnet);
    if (!why) return false;
    const id = `${p.subnet} ${why}`;
    if (!this.logged.has(id)) {
      this.logged.add(id);
      this.log.warn({ subnet: p.subnet.toString(), peer: p.publicIP.toString(), reason: why, dataplane: this.kind }, 'dataplane refuses a peer route that would shadow the host\'s own');
    }
    return true;
  }

  async start(local: LocalNetwork, peers: PeerSource): Promise<void> {
    this.local = local;
    this.guard = this.read(local);
    const self = this;
    await this.inner.start(local, {
      *routes() {
        for (const r of peers.routes()) if (!self.refused(r)) yield r;
      },
    });
  }

  async syncPeers(): Promise<void> {
    // The host's addresses and routes may have changed since the start: read them again before a full sync.
    if (this.local) this.guard = this.read(this.local);
    await this.inner.syncPeers();
  }

  async upsertPeer(route: PeerRoute, previous?: PeerRoute): Promise<void> {
    // The host may have gained an address since the last read (a bridge for pods, say): a quick read first.
    if (this.local) this.guard = this.read(this.local, this.guard);
    const prev = previous && !this.refused(previous) ? previous : undefined;
    if (this.refused(route)) {
      if (prev) await this.inner.removePeer(prev);
      return;
    }
    await this.inner.upsertPeer(route, prev);
  }

  async removePeer(route: PeerRoute): Promise<void> {
    if (!this.refused(route)) await this.inner.removePeer(route);
  }

  status(): Promise<DataplaneStatus> {
    return this.inner.status();
  }

  stop(): Promise<void> {
    return this.inner.stop();
  }

  uninstall(): Promise<void> {
    return this.inner.uninstall();
  }
}
