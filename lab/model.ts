// PeerRoute and LocalNetwork from text, for tests, the benchmark and tools
// that write peers by hand: the agent gets these values parsed from leases
// and the config; here they are written as `ip` would print them.
import { IPAddr, IPNet } from 'weft/core/ipnet.js';
import type { Encap, LocalNetwork, PeerRoute, UnderlayInterface } from 'weft/core/model.js';

export interface RouteText {
  subnet: string;
  publicIP: string;
  encap: Encap;
  directRouting?: boolean;
  vni?: number;
  vtepMAC?: string;
}

export function route(r: RouteText): PeerRoute {
  const out: PeerRoute = { subnet: IPNet.v4(r.subnet, 'subnet'), publicIP: IPAddr.v4(r.publicIP, 'publicIP'), encap: r.encap, directRouting: r.directRouting ?? false };
  if (r.vni !== undefined) out.vni = r.vni;
  if (r.vtepMAC !== undefined) out.vtepMAC = r.vtepMAC;
  return out;
}

export type InterfaceText = Omit<UnderlayInterface, 'networks'> & { networks: string[] };

export type LocalText = Omit<LocalNetwork, 'network' | 'subnet' | 'publicIP' | 'iface'> & { network: string; subnet: string; publicIP: string; iface: InterfaceText };

export function iface(i: InterfaceText): UnderlayInterface {
  return { ...i, networks: i.networks.map((n) => IPNet.v4(n, 'iface network')) };
}

export function localNetwork(l: LocalText): LocalNetwork {
  return { ...l, network: IPNet.v4(l.network, 'network'), subnet: IPNet.v4(l.subnet, 'subnet'), publicIP: IPAddr.v4(l.publicIP, 'publicIP'), iface: iface(l.iface) };
}

export const net = (text: string): IPNet => IPNet.v4(text);
export const addr = (text: string): IPAddr => IPAddr.v4(text);
