// Which interface carries the overlay, as flannel chooses it: --iface by name
// or address (first match wins), else --iface-regex, else --iface-can-reach,
// else the interface of the default route. --public-ip overrides the
// advertised address.
import { IPNet, parseIP } from '../core/ipnet.js';
import type { UnderlayInterface } from '../core/model.js';
import { usageError } from '../core/errors.js';

export interface IfaceSnapshot {
  links: Array<{ index: number; name: string; mtu: number; mac: string | null; up: boolean }>;
  addrs: Array<{ index: number; address: string; prefixLen: number }>;
  routes: Array<{ dst: string; index: number | null; gateway: string | null; table: number; protocol?: number }>;
}

export interface IfaceOptions {
  iface: string[];
  ifaceRegex: string[];
  ifaceCanReach?: string;
  publicIP?: string;
}

export interface SelectedInterface {
  iface: UnderlayInterface;
  publicIP: string;
}

function ipv4Addrs(snap: IfaceSnapshot, index: number): Array<{ address: string; prefixLen: number }> {
  return snap.addrs.filter((a) => a.index === index && parseIP(a.address)?.family === 4);
}

function describe(snap: IfaceSnapshot, link: IfaceSnapshot['links'][number], address?: string): UnderlayInterface {
  const addrs = ipv4Addrs(snap, link.index);
  const chosen = address ?? addrs[0]?.address;
  if (!chosen) throw usageError(`interface ${link.name} has no IPv4 address; give it one or pick another with --iface`);
  return {
    name: link.name,
    index: link.index,
    mtu: link.mtu,
    address: chosen,
    mac: link.mac ?? '00:00:00:00:00:00',
    networks: [...new Map(addrs.map((a) => IPNet.of(4, a.address, a.prefixLen).canonical()).map((n) => [n.toString(), n])).values()],
  };
}

/** --iface: by name or address, first match wins. */
function byIface(snap: IfaceSnapshot, wanted: string[]): UnderlayInterface | undefined {
  for (const want of wanted) {
    const byName = snap.links.find((l) => l.name === want);
    if (byName) return describe(snap, byName);
    if (parseIP(want)) {
      const a = snap.addrs.find((x) => x.address === want);
      const link = a && snap.links.find((l) => l.index === a.index);
      if (link) return describe(snap, link, want);
    }
  }
  return undefined;
}

/** --iface-regex: over names and IPv4 addresses, first match wins. */
function byRegex(snap: IfaceSnapshot, patterns: string[]): UnderlayInterface | undefined {
  for (const pattern of patterns) {
    let re: RegExp;
    try {
      re = new RegExp(pattern);
    } catch (err) {
      throw usageError(`--iface-regex ${pattern}: not a valid regular expression: ${(err as Error).message}`);
    }
    for (const link of snap.links) {
      if (re.test(link.name) && ipv4Addrs(snap, link.index).length) return describe(snap, link);
      const a = ipv4Addrs(snap, link.index).find((x) => re.test(x.address));
      if (a) return describe(snap, link, a.address);
    }
  }
  return undefined;
}

/** --iface-can-reach: the interface of the main table's longest route to the address, as `ip route get` picks it. */
function byRoute(snap: IfaceSnapshot, target: string): UnderlayInterface | undefined {
  const to = parseIP(target);
  if (to?.family !== 4) throw usageError(`--iface-can-reach ${target}: not an IPv4 address`);
  let best: { route: IfaceSnapshot['routes'][number]; len: number } | undefined;
  for (const route of snap.routes) {
    const dst = route.table === 254 && route.index !== null ? IPNet.parse(route.dst) : null;
    if (dst?.family === 4 && dst.containsIP(to.value) && (!best || dst.prefixLen > best.len)) best = { route, len: dst.prefixLen };
  }
  const link = best && snap.links.find((l) => l.index === best!.route.index);
  if (!link) return undefined;
  // The source `ip route get` would pick: the link's address on the next hop's (or the target's) network.
  const hop = parseIP(best!.route.gateway ?? target)!.value;
  const source = ipv4Addrs(snap, link.index).find((a) => IPNet.of(4, a.address, a.prefixLen).containsIP(hop));
  return describe(snap, link, source?.address);
}

/**
 * flanneld's order: each --iface, then each --iface-regex, then
 * --iface-can-reach, the first that finds one wins; with none of them, the
 * interface of the default route.
 */
export function selectInterface(snap: IfaceSnapshot, opts: IfaceOptions): SelectedInterface {
  const names = snap.links.map((l) => l.name).join(', ');
  let iface = byIface(snap, opts.iface) ?? byRegex(snap, opts.ifaceRegex) ?? (opts.ifaceCanReach ? byRoute(snap, opts.ifaceCanReach) : undefined);
  if (!iface) {
    const tried = [
      ...(opts.iface.length ? [`--iface ${opts.iface.join(', ')}: no interface has that name or address`] : []),
      ...(opts.ifaceRegex.length ? [`--iface-regex ${opts.ifaceRegex.join(', ')}: no interface name or IPv4 address matches`] : []),
      ...(opts.ifaceCanReach ? [`--iface-can-reach ${opts.ifaceCanReach}: no route leads there`] : []),
    ];
    if (tried.length) throw usageError(`${tried.join('; ')} (interfaces here: ${names})`);
    const def = snap.routes.find((r) => r.dst === '0.0.0.0/0' && r.table === 254 && r.index !== null);
    const link = def && snap.links.find((l) => l.index === def.index);
    if (!link) throw usageError('there is no default route to choose the interface by: name it with --iface (or --iface-regex)');
    iface = describe(snap, link);
  }
  let publicIP = iface.address;
  if (opts.publicIP) {
    if (parseIP(opts.publicIP)?.family !== 4) throw usageError(`--public-ip ${opts.publicIP}: not an IPv4 address`);
    publicIP = opts.publicIP;
  }
  return { iface, publicIP };
}
