// weft_ports: the forwarding database of the bridges that hold our subnet
// (docker0, cni0, whatever routes the host's subnet), so that the programs
// can hand a peer's packet for a pod straight to the pod's port
// (bpf/include/forward.h). weft does not configure the bridge: it finds it by
// its address inside our subnet, and follows it through netlink events: the
// bridge appearing or going, ports coming and going, MACs learned, moved or
// aged out (watch.ts calls sync). A MAC the map does not hold yet only means
// the kernel's path.
import { NetlinkHandle, type Link } from '../../native/netlink.js';
import type { BpfMap } from '../../native/bpf.js';
import { IPNet, parseIP } from '../../core/ipnet.js';
import { decodePort, decodePortKey, encodePort, encodePortKey, PORTS_MAX, type BridgePort } from './maps.js';
import type { Logger } from '../../core/log.js';

export interface PortsSnapshot {
  bridges: string[];
  /** "bridge ifindex/mac" -> the port */
  entries: Map<string, BridgePort>;
}

/**
 * The devices that hold our subnet, lowest ifindex first: an IPv4 address
 * inside it whose own network covers all of it (docker0 10.244.3.1/24 for
 * 10.244.3.0/24), leaving out the devices in exclude (weft's own).
 */
export function subnetHolders(nl: NetlinkHandle, net: IPNet, exclude: number[] = []): number[] {
  const held = new Set<number>();
  for (const a of nl.addrs()) {
    const n = IPNet.parse(`${a.address}/${a.prefixLen}`);
    const ip = parseIP(a.address);
    if (!n || !ip || exclude.includes(a.index)) continue;
    if (ip.family === net.family && n.contains(net.canonical()) && net.containsIP(ip.value)) held.add(a.index);
  }
  return [...held].sort((x, y) => x - y);
}

/** What weft_ports should hold now: every MAC learned on a port of a bridge that holds our subnet. */
export function desiredPorts(nl: NetlinkHandle, subnet: IPNet): PortsSnapshot {
  const links = nl.links();
  const bridgeIdx = new Set(subnetHolders(nl, subnet));
  const bridges = links.filter((l) => l.kind === 'bridge' && bridgeIdx.has(l.index));
  const masterOf = new Map<number, Link>();
  const portOf = new Map<number, BridgePort>();
  for (const l of links) {
    const b = bridges.find((x) => x.index === l.master);
    if (!b) continue;
    masterOf.set(l.index, b);
    portOf.set(l.index, { ifindex: l.index, peer: l.kind === 'veth' && l.linkNetnsid !== null });
  }
  const entries = new Map<string, BridgePort>();
  if (masterOf.size === 0) return { bridges: bridges.map((b) => b.name), entries };
  for (const f of nl.fdbs()) {
    const bridge = masterOf.get(f.index);
    // Permanent entries are the bridge's own addresses and its ports'; self entries belong to a device's own table.
    if (!bridge || f.permanent || f.self) continue;
    entries.set(`${bridge.index}/${f.mac.toLowerCase()}`, portOf.get(f.index)!);
  }
  return { bridges: bridges.map((b) => b.name), entries };
}

export class BridgePorts {
  /** What this process wrote, "bridge/mac" -> port. */
  private readonly written = new Map<string, BridgePort>();
  private bridges = '';

  constructor(
    private readonly nl: NetlinkHandle,
    private readonly map: BpfMap,
    private readonly subnet: IPNet,
    private readonly log: Logger,
  ) {
    // A map this process did not fill (an agent that died mid-start left its pin) is adopted, then corrected.
    for (const [k, v] of map.entries()) {
      const { bridgeIfindex, mac } = decodePortKey(k);
      this.written.set(`${bridgeIfindex}/${mac}`, decodePort(v));
    }
  }

  /** Makes weft_ports hold exactly what the bridges' FDB says (differences only). */
  sync(): { added: number; changed: number; removed: number } {
    const want = desiredPorts(this.nl, this.subnet);
    const names = want.bridges.join(',');
    if (names !== this.bridges) {
      this.log.info({ bridges: want.bridges, subnet: this.subnet }, want.bridges.length ? 'following the bridges that hold our subnet' : 'no bridge holds our subnet (yet): peers\' pod traffic takes the kernel\'s path');
      this.bridges = names;
    }
    let added = 0;
    let changed = 0;
    let removed = 0;
    for (const k of this.written.keys()) {
      if (want.entries.has(k)) continue;
      const [b, mac] = k.split('/');
      this.map.delete(encodePortKey(Number(b), mac));
      this.written.delete(k);
      removed++;
    }
    for (const [k, port] of want.entries) {
      const cur = this.written.get(k);
      if (cur && cur.ifindex === port.ifindex && cur.peer === port.peer) continue;
      if (cur === undefined && this.written.size >= PORTS_MAX) {
        this.log.warn({ max: PORTS_MAX }, 'weft_ports is full: further pods take the kernel\'s path');
        break;
      }
      const [b, mac] = k.split('/');
      this.map.update(encodePortKey(Number(b), mac), encodePort(port));
      this.written.set(k, port);
      if (cur === undefined) added++;
      else changed++;
    }
    if (added || changed || removed) this.log.debug({ added, changed, removed, entries: this.written.size }, 'bridge ports synchronised');
    return { added, changed, removed };
  }

  get size(): number {
    return this.written.size;
  }
}
