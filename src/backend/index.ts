import type { Backend } from './types.js';
import { VxlanBackend } from './vxlan.js';
import { HostGwBackend, IpipBackend, UdpBackend } from './simple.js';
import type { BackendConfig } from '../config/network.js';
import type { UnderlayInterface } from '../core/model.js';
import { stableVtepMAC } from '../core/vtep.js';

export type { Backend, PeerDecision } from './types.js';

export function createBackend(config: BackendConfig, iface: UnderlayInterface, publicIP: string): Backend {
  switch (config.type) {
    case 'vxlan':
      return new VxlanBackend(config, iface, stableVtepMAC(publicIP, config.vni));
    case 'host-gw':
      return new HostGwBackend(config, iface);
    case 'ipip':
      return new IpipBackend(config, iface);
    case 'udp':
      return new UdpBackend(config);
  }
}
