import type { Backend } from './types.js';
import { VxlanBackend, stableVtepMAC } from './vxlan.js';
import { HostGwBackend, IpipBackend, UdpBackend } from './simple.js';
import type { BackendConfig } from '../config/network.js';
import type { UnderlayInterface } from '../dataplane/types.js';

export type { Backend } from './types.js';
export { stableVtepMAC } from './vxlan.js';

/** vtepMAC: an existing device's MAC to keep (netlink mode reuses flannel.<VNI>); otherwise a stable derived one. */
export function createBackend(config: BackendConfig, iface: UnderlayInterface, publicIP: string, vtepMAC?: string): Backend {
  switch (config.type) {
    case 'vxlan':
      return new VxlanBackend(config, iface, vtepMAC ?? stableVtepMAC(publicIP, config.vni));
    case 'host-gw':
      return new HostGwBackend(config, iface);
    case 'ipip':
      return new IpipBackend(config, iface);
    case 'udp':
      return new UdpBackend(config);
  }
}
