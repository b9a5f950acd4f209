// vxlan: flannel's lease data {"VNI":1,"VtepMAC":"…"}; inner frames go to the
// peer's VtepMAC inside UDP to its PublicIP. DirectRouting sends to peers on
// our L2 segment without encapsulation.
import type { Backend, PeerDecision } from './types.js';
import { leaseBackendType, onLink, wrongBackend } from './types.js';
import type { BackendConfig } from '../config/network.js';
import { encapOverhead } from '../config/network.js';
import type { UnderlayInterface } from '../core/model.js';
import type { Lease, LeaseAttrs } from '../subnet/lease.js';

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export class VxlanBackend implements Backend {
  readonly type = 'vxlan' as const;

  constructor(
    readonly config: BackendConfig,
    private readonly iface: UnderlayInterface,
    /** Our VtepMAC: the overlay device's MAC. */
    readonly vtepMAC: string,
  ) {}

  leaseAttrs(publicIP: string, publicIPv6: string | null): LeaseAttrs {
    return { PublicIP: publicIP, PublicIPv6: publicIPv6, BackendType: 'vxlan', BackendData: { VNI: this.config.vni, VtepMAC: this.vtepMAC } };
  }

  podMTU(underlayMTU: number): number {
    return this.config.mtu || underlayMTU - encapOverhead('vxlan');
  }

  peerRoute(lease: Lease): PeerDecision {
    if (leaseBackendType(lease) !== 'vxlan') return wrongBackend(lease, 'vxlan');
    const data = lease.attrs.BackendData as { VNI?: unknown; VtepMAC?: unknown } | undefined;
    const mac = typeof data?.VtepMAC === 'string' ? data.VtepMAC.toLowerCase() : '';
    if (!MAC_RE.test(mac)) return { skip: `its BackendData has no valid VtepMAC (${JSON.stringify(data?.VtepMAC)})`, reason: 'bad_vtep_mac' };
    const vni = typeof data?.VNI === 'number' && Number.isInteger(data.VNI) ? data.VNI : this.config.vni;
    // One literal, not a spread of a base: V8 gave each spread copy a hidden class of its own (17 MB at 65,536 peers).
    const direct = this.config.directRouting && onLink(this.iface, lease.publicIP);
    return { subnet: lease.subnet, publicIP: lease.publicIP, vni, vtepMAC: mac, encap: direct ? 'direct' : 'vxlan', directRouting: direct };
  }
}
