// host-gw, ipip and udp: leases carry no BackendData (udp carries no BackendType either).
import type { Backend, PeerDecision } from './types.js';
import { leaseBackendType, onLink, wrongBackend } from './types.js';
import type { BackendConfig } from '../config/network.js';
import { encapOverhead } from '../config/network.js';
import type { UnderlayInterface } from '../core/model.js';
import type { Lease, LeaseAttrs } from '../subnet/lease.js';

/** A backend whose lease names its type and carries no BackendData (host-gw, ipip). */
abstract class TypedBackend implements Backend {
  abstract readonly type: 'host-gw' | 'ipip';
  constructor(
    readonly config: BackendConfig,
    protected readonly iface: UnderlayInterface,
  ) {}

  leaseAttrs(publicIP: string, publicIPv6: string | null): LeaseAttrs {
    return { PublicIP: publicIP, PublicIPv6: publicIPv6, BackendType: this.type };
  }

  podMTU(underlayMTU: number): number {
    return underlayMTU - encapOverhead(this.type);
  }

  abstract peerRoute(lease: Lease): PeerDecision;
}

export class HostGwBackend extends TypedBackend {
  readonly type = 'host-gw' as const;

  peerRoute(lease: Lease): PeerDecision {
    if (leaseBackendType(lease) !== 'host-gw') return wrongBackend(lease, 'host-gw');
    if (!onLink(this.iface, lease.publicIP)) {
      return {
        skip:
          `its PublicIP ${lease.attrs.PublicIP} is not on our L2 segment (${this.iface.networks.map(String).join(', ') || 'no networks'} on ${this.iface.name}); ` +
          'host-gw needs every host on one L2 network: use vxlan (with DirectRouting) for hosts across routers',
        reason: 'not_on_link',
      };
    }
    return { subnet: lease.subnet, publicIP: lease.publicIP, encap: 'direct', directRouting: false };
  }
}

export class IpipBackend extends TypedBackend {
  readonly type = 'ipip' as const;

  peerRoute(lease: Lease): PeerDecision {
    if (leaseBackendType(lease) !== 'ipip') return wrongBackend(lease, 'ipip');
    // One literal, not a spread (see VxlanBackend.peerRoute).
    const direct = this.config.directRouting && onLink(this.iface, lease.publicIP);
    return { subnet: lease.subnet, publicIP: lease.publicIP, encap: direct ? 'direct' : 'ipip', directRouting: direct };
  }
}

export class UdpBackend implements Backend {
  readonly type = 'udp' as const;
  constructor(readonly config: BackendConfig) {}

  leaseAttrs(publicIP: string, publicIPv6: string | null): LeaseAttrs {
    // flannel's udp backend writes no BackendType.
    return { PublicIP: publicIP, PublicIPv6: publicIPv6 };
  }

  podMTU(underlayMTU: number): number {
    return underlayMTU - encapOverhead('udp');
  }

  peerRoute(lease: Lease): PeerDecision {
    if (leaseBackendType(lease) !== 'udp') return wrongBackend(lease, 'udp');
    return { subnet: lease.subnet, publicIP: lease.publicIP, encap: 'udp', directRouting: false };
  }
}
