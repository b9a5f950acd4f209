// The boundary between the backends (what a peer needs) and the dataplanes
// (how the kernel is programmed). Data flows one way: the agent hands the
// dataplane the local network once, then peer routes as leases come and go.

/** Route protocol number of the routes weft installs (`ip route` shows `proto 87`), so cleanup touches only its own. */
export const RTPROT_WEFT = 87;

export type BackendType = 'vxlan' | 'host-gw' | 'ipip' | 'udp';
export type DataplaneKind = 'ebpf' | 'netlink';

/** How a packet reaches one peer's subnet. */
export type Encap = 'vxlan' | 'ipip' | 'udp' | 'direct';

/** What one peer needs, decided by the backend from the peer's lease. */
export interface PeerRoute {
  /** The peer's subnet, e.g. "10.244.3.0/24". */
  subnet: string;
  /** The peer's PublicIP: outer destination for tunnels, next hop for direct. */
  publicIP: string;
  encap: Encap;
  /**
   * DirectRouting: a tunnel backend's (vxlan, ipip) peer that shares our L2
   * segment, so it is forwarded directly (encap is then 'direct'; a vxlan peer
   * keeps its vni and vtepMAC). False for host-gw peers, which are 'direct' too.
   */
  directRouting: boolean;
  /** vxlan only. */
  vni?: number;
  /** vxlan only: the peer's VtepMAC, "aa:bb:cc:dd:ee:ff". */
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
  /** Its connected IPv4 networks ("192.0.2.0/24"): peers there share our L2 segment. */
  networks: string[];
}

/** Everything a dataplane needs to program the local host. */
export interface LocalNetwork {
  backend: BackendType;
  /** The cluster Network, e.g. "10.244.0.0/16". */
  network: string;
  /** Our leased subnet, e.g. "10.244.3.0/24". */
  subnet: string;
  /** The address we advertise (outer source). */
  publicIP: string;
  iface: UnderlayInterface;
  /** The pods' MTU (FLANNEL_MTU). */
  mtu: number;
  vxlan?: { vni: number; port: number; gbp: boolean; vtepMAC: string; learning: boolean };
  udp?: { port: number };
  /** bpffs directory for pinned maps (ebpf dataplane). */
  pinDir: string;
}

export interface Dataplane {
  readonly kind: DataplaneKind;
  /** Creates or adopts devices, programs and maps for the local network. Idempotent across restarts. */
  start(local: LocalNetwork): Promise<void>;
  /** Makes the dataplane hold exactly these peers (differences only). */
  syncPeers(routes: PeerRoute[]): Promise<void>;
  upsertPeer(route: PeerRoute): Promise<void>;
  removePeer(subnet: string): Promise<void>;
  /** Stops the agent's side (timers, sockets) and leaves the kernel state in place for the next start. */
  stop(): Promise<void>;
  /** Removes every filter, pin, device, route and entry this dataplane created, and nothing else. */
  uninstall(): Promise<void>;
  /** For `weft status`: remote subnets the kernel holds (our own excluded). Optional; without it the agent counts the pinned weft_peers map (ebpf) or says it does not know. */
  status?(): Promise<{ peersInMaps: number }>;
}
