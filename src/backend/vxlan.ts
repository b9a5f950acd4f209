// vxlan: flannel's lease data {"VNI":1,"VtepMAC":"…"}; inner frames go to the
// peer's VtepMAC inside UDP to its PublicIP. DirectRouting sends to peers on
// our L2 segment without encapsulation.
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Backend } from './types.js';
import { leaseBackendType, onLink, wrongBackend } from './types.js';
import type { BackendConfig } from '../config/network.js';
import { encapOverhead } from '../config/network.js';
import type { PeerRoute, UnderlayInterface } from '../dataplane/types.js';
import type { Lease, LeaseAttrs } from '../subnet/lease.js';

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/**
 * A VtepMAC that stays the same across restarts and reboots of the same host
 * (flannel's changes on reboot, #1788): derived from the machine id, the
 * PublicIP and the VNI. Locally administered, unicast.
 */
export function stableVtepMAC(publicIP: string, vni: number, machineId = readMachineId()): string {
  const h = crypto.createHash('sha256').update(`weft-vtep\0${machineId}\0${publicIP}\0${vni}`).digest();
  h[0] = (h[0] & 0xfe) | 0x02;
  return [...h.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

function readMachineId(): string {
  for (const f of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
    try {
      return fs.readFileSync(f, 'utf8').trim();
    } catch {
      /* try the next */
    }
  }
  return 'no-machine-id';
}

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

  peerRoute(lease: Lease): PeerRoute | { skip: string } {
    if (leaseBackendType(lease) !== 'vxlan') return wrongBackend(lease, 'vxlan');
    const data = lease.attrs.BackendData as { VNI?: unknown; VtepMAC?: unknown } | undefined;
    const mac = typeof data?.VtepMAC === 'string' ? data.VtepMAC.toLowerCase() : '';
    if (!MAC_RE.test(mac)) return { skip: `its BackendData has no valid VtepMAC (${JSON.stringify(data?.VtepMAC)})` };
    const vni = typeof data?.VNI === 'number' && Number.isInteger(data.VNI) ? data.VNI : this.config.vni;
    const base = { subnet: lease.subnet.toString(), publicIP: lease.attrs.PublicIP, vni, vtepMAC: mac };
    if (this.config.directRouting && onLink(this.iface, lease.attrs.PublicIP)) {
      return { ...base, encap: 'direct', directRouting: true };
    }
    return { ...base, encap: 'vxlan', directRouting: false };
  }
}
