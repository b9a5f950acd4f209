// The overlay device: the device the kernel routes the whole cluster Network
// to, whose TC egress program picks the peer. vxlan: a collect_md ("external")
// vxlan device, so the kernel does encapsulation, GSO and checksums. udp: a
// collect_md vxlan device too (weft0) on the backend's port, never used to
// send (the program redirects every packet to the underlay) but to receive:
// underlay_decap rewrites arriving udp packets into VXLAN, and the kernel's
// vxlan receive path decapsulates them cleanly (bpf/include/handoff.h says
// why). ipip and host-gw: one end of a veth pair (this kernel has no ipip or
// dummy module), whose other end never sees a packet.
import fs from 'node:fs';
import { NetlinkHandle, type Link } from '../../native/netlink.js';
import { RTPROT_WEFT } from '../types.js';
import type { LocalNetwork } from '../../core/model.js';
import { DEFAULT_UDP_PORT } from '../../config/network.js';
import type { Logger } from '../../core/log.js';

export const VXLAN_DEVICE = 'weft.vxlan';
export const VETH_DEVICE = 'weft0';
export const VETH_PEER = 'weft0-peer';
export const OVERLAY_DEVICES = [VXLAN_DEVICE, VETH_DEVICE];

export interface OverlayDevice {
  name: string;
  index: number;
  mac: string;
  /** udp: the UDP port of the device's vxlan receive path; 0 for the others. */
  decapPort: number;
}

/**
 * udp: the port weft0 receives on, the backend's own port: what arrives there
 * is rewritten by underlay_decap before the stack sees it, and a firewall
 * that admits flannel's udp traffic admits this. 0: no such device.
 */
export function decapPort(local: LocalNetwork): number {
  return local.backend === 'udp' ? local.udp?.port || DEFAULT_UDP_PORT : 0;
}

/** Whether an existing device can be kept as it is (its address, MTU and MAC are set anyway). */
function compatible(link: Link, local: LocalNetwork): boolean {
  const v = link.vxlan;
  if (local.backend === 'vxlan') {
    return link.kind === 'vxlan' && !!v && v.external && v.port === local.vxlan!.port && v.gbp === local.vxlan!.gbp && !v.learning;
  }
  if (local.backend === 'udp') return link.kind === 'vxlan' && !!v && v.external && v.port === decapPort(local) && !v.gbp && !v.learning;
  return link.kind === 'veth';
}

export function overlayName(local: LocalNetwork): string {
  return local.backend === 'vxlan' ? VXLAN_DEVICE : VETH_DEVICE;
}

/**
 * Creates or adopts the overlay device and routes the Network to it. A
 * restarted agent finds the device in place and changes nothing that traffic
 * depends on; a device of the wrong shape (another backend, other port) is
 * replaced.
 */
export function ensureOverlay(nl: NetlinkHandle, local: LocalNetwork, log: Logger): OverlayDevice {
  const name = overlayName(local);
  // A device of the other backend's kind is a leftover from an earlier config.
  for (const other of OVERLAY_DEVICES.filter((d) => d !== name)) {
    const stale = nl.link(other);
    if (stale) {
      log.info({ device: other }, 'removing the overlay device of another backend');
      nl.linkDel(stale.index);
    }
  }
  let link = nl.link(name);
  if (link && !compatible(link, local)) {
    log.warn({ device: name, kind: link.kind }, 'existing overlay device does not match the config; recreating it');
    nl.linkDel(link.index);
    link = null;
  }
  const mtu = local.backend === 'host-gw' ? local.iface.mtu : local.mtu;
  if (!link) {
    if (local.backend === 'vxlan') {
      link = nl.linkAddVxlan({ name, vni: 0, port: local.vxlan!.port, learning: false, gbp: local.vxlan!.gbp, external: true, mtu, mac: local.vxlan!.vtepMAC });
    } else if (local.backend === 'udp') {
      link = nl.linkAddVxlan({ name, vni: 0, port: decapPort(local), learning: false, gbp: false, external: true, mtu });
    } else {
      nl.linkAddVeth(name, VETH_PEER, { mtu });
      link = nl.link(name)!;
      const peer = nl.link(VETH_PEER);
      if (peer) nl.linkSet(peer.index, { up: true });
    }
    log.info({ device: name, mtu }, 'created the overlay device');
  }
  const changes: { mtu?: number; mac?: string } = {};
  if (link.mtu !== mtu) changes.mtu = mtu;
  if (local.backend === 'vxlan' && link.mac !== local.vxlan!.vtepMAC) changes.mac = local.vxlan!.vtepMAC;
  nl.linkSet(link.index, { ...changes, noarp: true, up: true });
  // Decapsulated packets arrive here from remote pods; their reverse path is this device anyway.
  writeSysctl(`net/ipv4/conf/${name}/rp_filter`, '0');
  // The overlay carries IPv4; IPv6 link-local chatter (MLD, router solicitations) would only be counted as drops.
  for (const dev of link.kind === 'veth' ? [name, VETH_PEER] : [name]) writeSysctl(`net/ipv6/conf/${dev}/disable_ipv6`, '1');

  // Tunnels carry the host's own traffic from <subnet>.0, as flannel does; host-gw leaves from the underlay address.
  const subnet = local.subnet;
  const own = `${subnet.ip}/32`;
  const tunnel = local.backend !== 'host-gw';
  for (const a of nl.addrs(link.index)) {
    const cidr = `${a.address}/${a.prefixLen}`;
    if (!tunnel || cidr !== own) nl.addrDel(link.index, cidr);
  }
  if (tunnel) nl.addrAdd(link.index, own);
  nl.routeReplace({ dst: local.network.toString(), index: link.index, src: tunnel ? subnet.ip : local.iface.address, protocol: RTPROT_WEFT });
  const fresh = nl.link(link.index)!;
  return { name, index: fresh.index, mac: fresh.mac ?? '00:00:00:00:00:00', decapPort: decapPort(local) };
}

/** Removes weft's overlay devices (their routes and addresses go with them). */
export function removeOverlays(nl: NetlinkHandle, log: Logger): string[] {
  const removed: string[] = [];
  for (const name of OVERLAY_DEVICES) {
    const link = nl.link(name);
    if (!link) continue;
    nl.linkDel(link.index);
    log.info({ device: name }, 'removed the overlay device');
    removed.push(name);
  }
  return removed;
}

export function writeSysctl(key: string, value: string): void {
  try {
    fs.writeFileSync(`/proc/sys/${key}`, value);
  } catch {
    /* a read-only /proc/sys (some containers) only costs the optimisation */
  }
}
