// The overlay devices of netlink mode, as flannel makes them: flannel.<VNI>
// (vxlan) and flannel.ipip. An existing device of the right shape is reused
// (a restart, or a host taken over from flanneld); one of the wrong shape is
// recreated, as flannel does.
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { NetlinkHandle, throwIfFailed, type Link } from '../../native/netlink.js';
import { readNexthops, weftEntriesGone } from './plan.js';
import type { LocalNetwork } from '../../core/model.js';
import { WeftError } from '../../core/errors.js';

export const IPIP_DEVICE = 'flannel.ipip';

export const vxlanDeviceName = (vni: number): string => `flannel.${vni}`;

/** The udp backend in netlink mode: flannel's is a userspace proxy; weft has no such thing. */
export const UDP_UNSUPPORTED =
  'the udp backend has no kernel mechanism in netlink mode (flannel runs it through a userspace proxy, for debugging); ' +
  'the eBPF dataplane encapsulates udp in the kernel: run with --dataplane=ebpf (or auto, where the kernel supports eBPF), or choose vxlan';

export function overlayDeviceName(local: LocalNetwork): string | null {
  if (local.backend === 'vxlan') return vxlanDeviceName(local.vxlan!.vni);
  if (local.backend === 'ipip') return IPIP_DEVICE;
  return null;
}

/** The vxlan settings a device must have, from the network config's Backend. */
export interface VxlanWant {
  vni: number;
  port: number;
  learning: boolean;
  gbp: boolean;
}

type Underlay = Pick<LocalNetwork['iface'], 'name' | 'index' | 'address'>;

/** Why an existing device cannot serve as our vxlan device, or null when it can. */
export function vxlanMismatch(link: Link, want: VxlanWant, iface: Underlay): string | null {
  const v = link.vxlan;
  if (link.kind !== 'vxlan' || !v) return `it is a ${link.kind ?? 'plain'} device, not vxlan`;
  if (v.external) return 'it is a collect_md (external) vxlan device';
  const diffs: string[] = [];
  if (v.vni !== want.vni) diffs.push(`id ${v.vni} (want ${want.vni})`);
  // flannel binds the VTEP to the interface's own address (it may differ from a NAT'ed PublicIP).
  if (v.local !== iface.address) diffs.push(`local ${v.local ?? 'any'} (want ${iface.address})`);
  if (v.link !== iface.index) diffs.push(`dev ${v.link ?? 'none'} (want ${iface.name}, index ${iface.index})`);
  if (v.port !== want.port) diffs.push(`dstport ${v.port} (want ${want.port})`);
  if (v.learning !== want.learning) diffs.push(want.learning ? 'nolearning (want learning)' : 'learning (want nolearning)');
  if (v.gbp !== want.gbp) diffs.push(want.gbp ? 'no gbp (want gbp)' : 'gbp (want none)');
  return diffs.length ? diffs.join(', ') : null;
}

export interface EnsureResult {
  link: Link;
  /** What had to be done, for the log: created, recreated (why), fixed MTU/MAC/up/addresses. */
  changes: string[];
}

/** Deletes a device, weft's routes and nexthops on it first (the kernel's own clean-up of them is O(N^2), see weftEntriesGone). */
export function deleteDevice(nl: NetlinkHandle, index: number): void {
  throwIfFailed(nl.batch(weftEntriesGone(nl.routes(), readNexthops(nl), index)));
  nl.linkDel(index);
}

/** Leaves exactly `<subnet>.0/32` on the device (a previous lease's address would answer for a subnet we no longer hold). */
function ensureOnlyAddress(nl: NetlinkHandle, link: Link, local: LocalNetwork, changes: string[]): void {
  const own = `${local.subnet.hostAt(0n)}/32`;
  let present = false;
  for (const a of nl.addrs(link.index)) {
    const cidr = `${a.address}/${a.prefixLen}`;
    if (cidr === own) present = true;
    else {
      nl.addrDel(link.index, cidr);
      changes.push(`removed address ${cidr}`);
    }
  }
  if (!present) {
    nl.addrAdd(link.index, own);
    changes.push(`added address ${own}`);
  }
}

/** MTU, MAC and up, then the address; each change is reported. */
function settle(nl: NetlinkHandle, link: Link, local: LocalNetwork, mac: string | null, changes: string[]): Link {
  const set: { mtu?: number; mac?: string; up?: boolean } = {};
  if (link.mtu !== local.mtu) {
    set.mtu = local.mtu;
    changes.push(`mtu ${link.mtu} -> ${local.mtu}`);
  }
  if (mac && link.mac !== mac) {
    set.mac = mac;
    changes.push(`address ${link.mac} -> ${mac} (the VtepMAC in our lease)`);
  }
  if (!link.up) {
    set.up = true;
    changes.push('set up');
  }
  if (Object.keys(set).length) nl.linkSet(link.index, set);
  ensureOnlyAddress(nl, link, local, changes);
  return nl.link(link.index) ?? link;
}

/** flannel.<VNI>: `vxlan id VNI local <iface address> dev <iface> dstport PORT nolearning [gbp]`, MTU and MAC from `local`. */
export function ensureVxlanDevice(nl: NetlinkHandle, local: LocalNetwork): EnsureResult {
  const want = local.vxlan!;
  const name = vxlanDeviceName(want.vni);
  const changes: string[] = [];
  let link = nl.link(name);
  if (link) {
    const why = vxlanMismatch(link, want, local.iface);
    if (why) {
      deleteDevice(nl, link.index);
      changes.push(`recreated: the existing ${name} does not match the config (${why})`);
      link = null;
    }
  }
  if (!link) {
    link = nl.linkAddVxlan({
      name,
      vni: want.vni,
      local: local.iface.address,
      link: local.iface.index,
      port: want.port,
      learning: want.learning,
      gbp: want.gbp,
      mtu: local.mtu,
      mac: want.vtepMAC,
    });
    if (!changes.length) changes.push('created');
  }
  return { link: settle(nl, link, local, want.vtepMAC, changes), changes };
}

/** Whether the running kernel has ipip, as far as /proc and /sys tell (built in or loaded). */
export function kernelHasIpip(): boolean {
  if (fs.existsSync('/sys/module/ipip')) return true;
  try {
    return /^ipip\s/m.test(fs.readFileSync('/proc/modules', 'utf8'));
  } catch {
    // No /proc/modules (a kernel without modules): only /sys/module could have said yes.
    return false;
  }
}

/**
 * flannel.ipip: `ipip local <iface address>`, MTU from `local`. The binding
 * has no ipip link type, so the device (once, not per peer) is made with
 * iproute2. Creating it is also the honest test for the module: a modular
 * kernel loads ipip on demand.
 */
export function ensureIpipDevice(nl: NetlinkHandle, local: LocalNetwork, netns?: string): EnsureResult {
  const changes: string[] = [];
  let link = nl.link(IPIP_DEVICE);
  if (link && link.kind !== 'ipip') {
    deleteDevice(nl, link.index);
    changes.push(`recreated: the existing ${IPIP_DEVICE} is a ${link.kind ?? 'plain'} device, not ipip`);
    link = null;
  }
  if (!link) {
    const cmd = ['ip', 'link', 'add', IPIP_DEVICE, 'type', 'ipip', 'local', local.iface.address];
    const argv = netns ? ['nsenter', `--net=${netns}`, ...cmd] : cmd;
    try {
      execFileSync(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
    } catch (err) {
      const stderr = String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim();
      const module = kernelHasIpip() ? 'the ipip module is present' : 'no ipip module is loaded or built in (/sys/module/ipip, /proc/modules)';
      // A backend this dataplane cannot run on this host: the user's to fix (the message says how).
      throw new WeftError(
        `the ipip backend needs the kernel's ipip tunnel in netlink mode, and this kernel cannot make one: ` +
          `${cmd.join(' ')}: ${stderr || 'failed'}; ${module}. ` +
          'The eBPF dataplane runs ipip without the module (its programs add and remove the outer header): run with --dataplane=ebpf (or auto)',
      );
    }
    link = nl.link(IPIP_DEVICE);
    if (!link) throw new Error(`${cmd.join(' ')} succeeded but ${IPIP_DEVICE} is not there`);
    if (!changes.length) changes.push('created');
  }
  return { link: settle(nl, link, local, null, changes), changes };
}
