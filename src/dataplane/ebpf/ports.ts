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
import { IPNet } from '../../subnet/ipnet.js';
import { decodePort, decodePortKey, encodePort, encodePortKey, PORTS_MAX, type BridgePort } from './maps.js';
import type { Logger } from '../../log.js';

export interface PortsSnapshot {
  bridges: string[];
  /** "bridge ifindex/mac" -> the port */
  entries: Map<string, BridgePort>;
}

/** What weft_ports should hold now: every MAC learned on a port of a bridge with an address in subnet. */
export function desiredPorts(nl: NetlinkHandle, subnet: string): PortsSnapshot {
  const net = IPNet.parse(subnet);
  if (!net) throw new Error(`weft_ports: "${subnet}" is not a subnet`);
  const links = nl.links();
  const inSubnet = (address: string): boolean => {
    const a = IPNet.parse(`${address}/32`);
    return !!a && net.contains(a);
  };
  const bridgeIdx = new Set(nl.addrs().filter((a) => inSubnet(a.address)).map((a) => a.index));
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
    private readonly subnet: string,
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
