// Removes what netlink mode created, without a running agent (`weft
// uninstall`, or the eBPF dataplane taking over a host): weft's peer routes
// (protocol RTPROT_WEFT, with a next hop), their nexthop objects and weft's
// overlay devices, whose neighbours and FDB entries go with them. Nothing else
// is touched.
import { NetlinkHandle, throwIfFailed, type Link, type Nexthop, type Route } from '../../native/netlink.js';
import { stableVtepMAC } from '../../core/vtep.js';
import type { Logger } from '../../core/log.js';
import { IPIP_DEVICE } from './device.js';
import { isWeftNexthop, isWeftPeerRoute, readNexthops, weftEntriesGone } from './plan.js';

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

export interface NetlinkState {
  /** weft's peer routes; index and gateway are the nexthop's for a route through one. */
  routes: Array<{ dst: string; index: number | null; gateway: string | null; nhid: number | null }>;
  nexthops: Nexthop[];
  devices: Link[];
}

function stateOf(nl: NetlinkHandle, all: Route[], nexthops: Nexthop[] | null, devices: string[]): NetlinkState {
  const nhs = (nexthops ?? []).filter(isWeftNexthop);
  const byId = new Map(nhs.map((n) => [n.id, n]));
  const routes = all.filter(isWeftPeerRoute).map((r) => {
    // Without nexthop_compat_mode the kernel reports a route through a nexthop without its gateway and device.
    const nh = r.nhid === null ? undefined : byId.get(r.nhid);
    return { dst: r.dst, index: r.index ?? nh?.index ?? null, gateway: r.gateway ?? nh?.gateway ?? null, nhid: r.nhid };
  });
  const routed = new Set([...routes.flatMap((r) => (r.index === null ? [] : [r.index])), ...nhs.flatMap((n) => (n.index === null ? [] : [n.index]))]);
  const links = nl.links().filter((l) => devices.includes(l.name) || isWeftDevice(l, routed));
  return { routes, nexthops: nhs, devices: links };
}

/** Finds netlink mode's leftovers without changing anything. */
export function findNetlinkState(nl: NetlinkHandle, devices: string[] = []): NetlinkState {
  return stateOf(nl, nl.routes(), readNexthops(nl), devices);
}

export function uninstallNetlink(log: Logger, o: NetlinkUninstallOptions = {}): NetlinkUninstallReport {
  const nl = o.netns ? NetlinkHandle.openIn(o.netns) : NetlinkHandle.open();
  const report: NetlinkUninstallReport = { routes: [], devices: [] };
  try {
    const routes = nl.routes();
    const nexthops = readNexthops(nl);
    const found = stateOf(nl, routes, nexthops, o.devices ?? []);
    const doomed = new Set(found.devices.map((l) => l.index));
    // Routes, then nexthops, then devices: the kernel's own clean-up of nexthops under routes is O(N^2) (weftEntriesGone).
    const ops = weftEntriesGone(routes, nexthops);
    const results = nl.batch(ops);
    throwIfFailed(results);
    // weftEntriesGone lists the routes first, in found.routes' order. Reported: the routes that would outlive the devices, through the underlay (host-gw, DirectRouting).
    found.routes.forEach((r, i) => {
      if (results[i] === true && !(r.index !== null && doomed.has(r.index))) report.routes.push(`${r.dst} via ${r.gateway}`);
    });
    if (report.routes.length) log.info({ routes: report.routes.length }, 'removed the netlink dataplane routes');
    for (const link of found.devices) {
      nl.linkDel(link.index);
      report.devices.push(link.name);
      log.info({ device: link.name }, 'removed the netlink dataplane device (its neighbours and FDB entries went with it)');
    }
  } finally {
    nl.close();
  }
  return report;
}
