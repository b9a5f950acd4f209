// Which interface carries the overlay, as flannel chooses it: --iface by name
// or address (first match wins), else --iface-regex, else the interface of the
// default route. --public-ip overrides the advertised address.
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

export function selectInterface(snap: IfaceSnapshot, opts: IfaceOptions): SelectedInterface {
  const names = snap.links.map((l) => l.name).join(', ');
  let iface: UnderlayInterface | undefined;
  if (opts.iface.length) {
    for (const want of opts.iface) {
      const byName = snap.links.find((l) => l.name === want);
      if (byName) {
        iface = describe(snap, byName);
        break;
      }
      if (parseIP(want)) {
        const a = snap.addrs.find((x) => x.address === want);
        const link = a && snap.links.find((l) => l.index === a.index);
        if (link) {
          iface = describe(snap, link, want);
          break;
        }
      }
    }
    if (!iface) throw usageError(`--iface ${opts.iface.join(', ')}: no interface has that name or address (interfaces here: ${names})`);
  } else if (opts.ifaceRegex.length) {
    for (const pattern of opts.ifaceRegex) {
      let re: RegExp;
      try {
        re = new RegExp(pattern);
      } catch (err) {
        throw usageError(`--iface-regex ${pattern}: not a valid regular expression: ${(err as Error).message}`);
      }
      for (const link of snap.links) {
        if (re.test(link.name) && ipv4Addrs(snap, link.index).length) {
          iface = describe(snap, link);
          break;
        }
        const a = ipv4Addrs(snap, link.index).find((x) => re.test(x.address));
        if (a) {
          iface = describe(snap, link, a.address);
          break;
        }
      }
      if (iface) break;
    }
    if (!iface) throw usageError(`--iface-regex ${opts.ifaceRegex.join(', ')}: no interface name or IPv4 address matches (interfaces here: ${names})`);
  } else {
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
