// The words every layer shares: what a backend decides for a peer
// (PeerRoute), the interface the overlay rides on, and the local network a
// dataplane programs. Values are parsed once (IPNet, IPAddr, numbers), where
// they enter weft: lease JSON, the network config, the kernel's interface list.
import type { IPAddr, IPNet } from './ipnet.js';

export type BackendType = 'vxlan' | 'host-gw' | 'ipip' | 'udp';
export type DataplaneKind = 'ebpf' | 'netlink';

/** How a packet reaches one peer's subnet. */
export type Encap = 'vxlan' | 'ipip' | 'udp' | 'direct';

/** What one peer needs, decided by the backend from the peer's lease. */
export interface PeerRoute {
  /** The peer's subnet, e.g. 10.244.3.0/24. */
  subnet: IPNet;
  /** The peer's PublicIP: outer destination for tunnels, next hop for direct. */
  publicIP: IPAddr;
  encap: Encap;
  /**
   * DirectRouting: a tunnel backend's (vxlan, ipip) peer that shares our L2
   * segment, so it is forwarded directly (encap is then 'direct'; a vxlan peer
   * keeps its vni and vtepMAC). False for host-gw peers, which are 'direct' too.
   */
  directRouting: boolean;
  /** vxlan only. */
  vni?: number;
  /** vxlan only: the peer's VtepMAC, lower case "aa:bb:cc:dd:ee:ff". */
  vtepMAC?: string;
}

/** The underlay interface the agent chose. */
export interface UnderlayInterface {
  name: string;
  index: number;
  mtu: number;
  /** The interface's own IPv4 address (may differ from PublicIP behind NAT). */
  address: string;
  mac: string;
  /** Its connected IPv4 networks: peers there share our L2 segment. */
  networks: IPNet[];
}

/** Everything a dataplane needs to program the local host. */
export interface LocalNetwork {
  backend: BackendType;
  /** The cluster Network, e.g. 10.244.0.0/16. */
  network: IPNet;
  /** Our leased subnet, e.g. 10.244.3.0/24. */
  subnet: IPNet;
  /** The address we advertise (outer source). */
  publicIP: IPAddr;
  iface: UnderlayInterface;
  /** The pods' MTU (FLANNEL_MTU). */
  mtu: number;
  vxlan?: { vni: number; port: number; gbp: boolean; vtepMAC: string; learning: boolean };
  udp?: { port: number };
  /** bpffs directory for pinned maps (ebpf dataplane). */
  pinDir: string;
  /** The etcd endpoints' addresses: no peer route may cover one, whatever a lease says (dataplane/guard.ts). */
  etcd?: IPAddr[];
}

/** Whether a peer is forwarded to its PublicIP on the underlay without encapsulation. */
export function isDirect(r: PeerRoute): boolean {
  return r.encap === 'direct' || r.directRouting;
}

/** A peer for logs: its subnet, PublicIP and encapsulation as text. */
export function describePeer(r: PeerRoute): { subnet: string; peer: string; encap: Encap } {
  return { subnet: r.subnet.toString(), peer: r.publicIP.toString(), encap: r.encap };
}
