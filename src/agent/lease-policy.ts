// What makes a peer lease sane enough to program, whoever wrote it. Anyone
// with write access to the prefix can put a lease, and a lease is a route: one
// named after the underlay's subnet, or the etcd server's address, or with a
// loopback PublicIP, would cut the host off its own network. A lease is
// programmed only when:
// - its subnet is one the allocator itself could hand out: inside the Network,
//   with the SubnetLen (allocator.ts fitsRange), and not our own subnet;
// - its PublicIP is a unicast address a peer can have: not unspecified,
//   loopback, multicast, broadcast, reserved or link-local, not inside the
//   Network (its tunnel packets would be routed into the overlay), and not
//   this host's own address (only our own lease may carry that).
// Two leases for one subnet (a second key for it, e.g. in dual-stack form)
// are the peer table's to settle: the first holder keeps it.
import { specialUse, type IPAddr, type IPNet } from '../core/ipnet.js';
import type { SubnetRange } from '../config/network.js';
import { fitsRange } from '../subnet/allocator.js';
import type { Lease } from '../subnet/lease.js';

export interface LeasePolicyContext {
  /** The Network and SubnetLen of the config the agent runs. */
  range: SubnetRange;
  /** Our own subnet, once leased. */
  ownSubnet: () => IPNet | undefined;
  /** Addresses of this host that no peer may claim (our PublicIP, the interface's address). */
  ownAddresses: IPAddr[];
}

export class LeasePolicy {
  constructor(private readonly ctx: LeasePolicyContext) {}

  /** Why this lease must not be programmed, or null when it may (conflicts with other leases aside). */
  check(lease: Lease): string | null {
    const { range } = this.ctx;
    const s = lease.subnet;
    if (!range.network.contains(s)) return `subnet ${s} is outside the Network ${range.network}`;
    if (!fitsRange(s, range)) return `subnet ${s} is not a /${range.subnetLen} (the network's SubnetLen): no host's allocator hands it out`;
    const own = this.ctx.ownSubnet();
    if (own?.overlaps(s)) return `subnet ${s} overlaps our subnet ${own}`;
    const ip = lease.publicIP;
    const what = specialUse(ip);
    if (what) return `PublicIP ${ip} is ${what}, not a host a tunnel can reach`;
    if (range.network.containsIP(ip.addr)) return `PublicIP ${ip} is inside the Network ${range.network}: packets to it would be routed into the overlay itself`;
    if (this.ctx.ownAddresses.some((a) => a.equals(ip))) return `PublicIP ${ip} is this host's own address, in a lease that is not ours`;
    return null;
  }
}
