// A backend turns leases into decisions: what we publish in our own lease,
// the pods' MTU, and what each peer needs (a PeerRoute). No etcd, no kernel.
import type { BackendConfig } from '../config/network.js';
import type { BackendType, PeerRoute, UnderlayInterface } from '../core/model.js';
import type { IPAddr } from '../core/ipnet.js';
import type { Lease, LeaseAttrs } from '../subnet/lease.js';

/**
 * Why a peer is skipped, in one word each: the label value of weft_peers{state="skipped"} (src/metrics).
 * The backend's three, and the peer table's two (agent/peers.ts): a lease the policy refuses, and a newer
 * lease for a subnet another live lease holds.
 */
export const SKIP_REASONS = ['backend_mismatch', 'not_on_link', 'bad_vtep_mac', 'lease_refused', 'subnet_held'] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

/** A peer the backend cannot serve: what to tell the operator, and the reason's name. */
export interface Skip {
  skip: string;
  reason: SkipReason;
}

export type PeerDecision = PeerRoute | Skip;

export interface Backend {
  readonly type: BackendType;
  readonly config: BackendConfig;
  /** vxlan: our VtepMAC, the overlay device's MAC, published in our lease. */
  readonly vtepMAC?: string;
  /** BackendType and BackendData of our lease, with our PublicIP. */
  leaseAttrs(publicIP: string, publicIPv6: string | null): LeaseAttrs;
  /** FLANNEL_MTU for an underlay of this MTU. */
  podMTU(underlayMTU: number): number;
  /** What a peer needs, or why it cannot be served (logged once per lease change). */
  peerRoute(lease: Lease): PeerDecision;
}

/** Whether an address is in one of the underlay interface's connected networks (same L2 segment). */
export function onLink(iface: Pick<UnderlayInterface, 'networks'>, ip: IPAddr): boolean {
  return iface.networks.some((n) => n.family === ip.family && n.containsIP(ip.value));
}

/** A peer lease's backend type; flannel's udp leases carry none. */
export function leaseBackendType(lease: Lease): string {
  return lease.attrs.BackendType ?? 'udp';
}

export function wrongBackend(lease: Lease, ours: BackendType): Skip {
  return { skip: `its lease says backend ${leaseBackendType(lease)}, this network runs ${ours}; every host of a network must use the same backend`, reason: 'backend_mismatch' };
}
