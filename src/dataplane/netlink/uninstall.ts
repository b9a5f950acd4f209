// Removes what netlink mode created, without a running agent (`weft
// uninstall`, or the eBPF dataplane taking over a host): weft's peer routes
// (protocol RTPROT_WEFT, with a next hop) and weft's overlay devices, whose
// neighbours and FDB entries go with them. Nothing else is touched.
import { NetlinkHandle, type Link } from '../../native/netlink.js';
import { stableVtepMAC } from '../../core/vtep.js';
import type { Logger } from '../../core/log.js';
import { IPIP_DEVICE } from './device.js';
import { isWeftPeerRoute } from './plan.js';

export interface NetlinkUninstallReport {
  routes: string[];
  devices: string[];
}

export interface NetlinkUninstallOptions {
  /** Network namespace file to act in; default: the process's own. */
  netns?: string;
  /** Devices known to be weft's (a running dataplane knows its own), removed even without weft routes. */
  devices?: string[];
}

const FLANNEL_VXLAN = /^flannel\.(\d+)$/;

/**
 * Whether a device is one netlink mode made: flannel.<VNI> (a plain vxlan
 * device) or flannel.ipip that carries weft's routes, or a flannel.<VNI>
 * whose MAC is the VtepMAC weft derives for it (a device with no peers yet).
 */
function isWeftDevice(link: Link, routed: Set<number>): boolean {
  if (link.kind === 'ipip' && link.name === IPIP_DEVICE) return routed.has(link.index);
  const m = FLANNEL_VXLAN.exec(link.name);
  if (!m || link.kind !== 'vxlan' || !link.vxlan || link.vxlan.external) return false;
  if (routed.has(link.index)) return true;
  return link.vxlan.local !== null && link.mac === stableVtepMAC(link.vxlan.local, Number(m[1]));
}

/** Finds netlink mode's leftovers without changing anything. */
export function findNetlinkState(nl: NetlinkHandle, devices: string[] = []): { routes: Array<{ dst: string; index: number | null; gateway: string }>; devices: Link[] } {
  const routes = nl.routes().filter(isWeftPeerRoute).map((r) => ({ dst: r.dst, index: r.index, gateway: r.gateway! }));
  const routed = new Set(routes.flatMap((r) => (r.index === null ? [] : [r.index])));
  const links = nl.links().filter((l) => devices.includes(l.name) || isWeftDevice(l, routed));
  return { routes, devices: links };
}

export function uninstallNetlink(log: Logger, o: NetlinkUninstallOptions = {}): NetlinkUninstallReport {
  const nl = o.netns ? NetlinkHandle.openIn(o.netns) : NetlinkHandle.open();
  const report: NetlinkUninstallReport = { routes: [], devices: [] };
  try {
    const found = findNetlinkState(nl, o.devices);
    const doomed = new Set(found.devices.map((l) => l.index));
    for (const link of found.devices) {
      nl.linkDel(link.index);
      report.devices.push(link.name);
      log.info({ device: link.name }, 'removed the netlink dataplane device (its neighbours, FDB entries and routes went with it)');
    }
    // Routes through a removed device are gone already; the rest go through the underlay (host-gw, DirectRouting).
    for (const r of found.routes) {
      if (r.index !== null && doomed.has(r.index)) continue;
      if (nl.routeDel({ dst: r.dst, index: r.index ?? undefined, gateway: r.gateway })) report.routes.push(`${r.dst} via ${r.gateway}`);
    }
    if (report.routes.length) log.info({ routes: report.routes.length }, 'removed the netlink dataplane routes');
  } finally {
    nl.close();
  }
  return report;
}
