// A backend turns leases into decisions: what we publish in our own lease,
// the pods' MTU, and what each peer needs (a PeerRoute). No etcd, no kernel.
import type { BackendConfig } from '../config/network.js';
import type { BackendType, PeerRoute, UnderlayInterface } from '../dataplane/types.js';
import type { Lease, LeaseAttrs } from '../subnet/lease.js';
import { IPNet, parseIP } from '../core/ipnet.js';

export interface Backend {
  readonly type: BackendType;
  readonly config: BackendConfig;
  /** BackendType and BackendData of our lease, with our PublicIP. */
  leaseAttrs(publicIP: string, publicIPv6: string | null): LeaseAttrs;
  /** FLANNEL_MTU for an underlay of this MTU. */
  podMTU(underlayMTU: number): number;
  /** What a peer needs, or why it cannot be served (logged once per lease change). */
  peerRoute(lease: Lease): PeerRoute | { skip: string };
}

/** Whether an address is in one of the underlay interface's connected networks (same L2 segment). */
export function onLink(iface: Pick<UnderlayInterface, 'networks'>, ip: string): boolean {
  const addr = parseIP(ip);
  if (!addr || addr.family !== 4) return false;
  return iface.networks.some((n) => IPNet.parse(n)?.containsIP(addr.value) ?? false);
}

/** A peer lease's backend type; flannel's udp leases carry none. */
export function leaseBackendType(lease: Lease): string {
  return lease.attrs.BackendType ?? 'udp';
}

export function wrongBackend(lease: Lease, ours: BackendType): { skip: string } {
  return { skip: `its lease says backend ${leaseBackendType(lease)}, this network runs ${ours}; every host of a network must use the same backend` };
}
