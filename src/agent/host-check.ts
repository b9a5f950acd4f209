// Whether the Network in etcd can be routed on this host without cutting it
// off: checked after the config is read and before anything is leased.
// flannel accepts any Network; a Network over the underlay's own subnet, over
// a route the host relies on, or holding the etcd server's address would
// send the host's own traffic into the overlay.
import { WeftError } from '../core/errors.js';
import { IPAddr, IPNet } from '../core/ipnet.js';
import type { SubnetRange } from '../config/network.js';
import type { IfaceSnapshot } from './iface.js';
import type { UnderlayInterface } from '../core/model.js';
import { RTPROT_WEFT } from '../dataplane/types.js';

/** rtm_protocol of the routes the kernel adds for an address (connected routes). */
const RTPROT_KERNEL = 2;
const MAIN_TABLE = 254;

export interface HostCheck {
  /** The host's links, addresses and main-table routes, as read at start. */
  snapshot: IfaceSnapshot;
  underlay: UnderlayInterface;
  /** The etcd endpoints' addresses (those given as IP literals). */
  etcd: IPAddr[];
  subnetLen: number;
}

/**
 * Why `network` must not be routed into the overlay on this host, or null.
 * Conflicts: a connected network of the underlay that overlaps it, or of any
 * other interface that overlaps it without lying inside it (pod bridges and
 * overlay devices hold addresses inside the Network, as they should); a route
 * of the host's (not the default, not weft's, not a connected one) that covers
 * the Network, or a route inside it via the underlay that is not a peer
 * subnet's; an etcd endpoint inside it.
 */
export function networkConflict(network: IPNet, h: HostCheck): string | null {
  const name = (index: number | null): string => h.snapshot.links.find((l) => l.index === index)?.name ?? `ifindex ${index}`;
  for (const a of h.snapshot.addrs) {
    const ip = IPAddr.parse(a.address);
    if (!ip || ip.family !== 4) continue;
    const connected = IPNet.of(4, a.address, a.prefixLen).canonical();
    if (!connected.overlaps(network)) continue;
    const underlay = a.index === h.underlay.index;
    if (!underlay && network.contains(connected)) continue;
    return `Network ${network} overlaps ${connected} on ${name(a.index)} (${underlay ? 'the underlay interface' : 'a network of this host'}, address ${a.address})`;
  }
  for (const r of h.snapshot.routes) {
    const dst = IPNet.parse(r.dst);
    if (!dst || dst.family !== 4 || dst.prefixLen === 0 || r.table !== MAIN_TABLE) continue;
    if (r.protocol === RTPROT_WEFT || r.protocol === RTPROT_KERNEL || !dst.overlaps(network)) continue;
    const inside = network.contains(dst) && !dst.equals(network);
    if (inside && (r.index !== h.underlay.index || dst.prefixLen === h.subnetLen)) continue;
    return `Network ${network} overlaps the route ${dst}${r.gateway ? ` via ${r.gateway}` : ''} dev ${name(r.index)}`;
  }
  for (const ip of h.etcd) {
    if (network.containsIP(ip.value)) return `Network ${network} holds ${ip}, an etcd endpoint: the agent's own etcd traffic would be routed into the overlay`;
  }
  return null;
}

/** Throws the config error for a Network this host cannot route into the overlay. */
export function refuseNetworkConflict(range: SubnetRange, h: Omit<HostCheck, 'subnetLen'>): void {
  const why = networkConflict(range.network, { ...h, subnetLen: range.subnetLen });
  if (!why) return;
  throw new WeftError(
    `invalid network config for this host: ${why}; routing the Network into the overlay would cut the host off. Choose a Network that no interface or route of this host uses`,
    'config',
    { field: 'Network' },
  );
}
