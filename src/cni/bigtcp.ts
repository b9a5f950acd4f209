// BIG TCP for a pod (issue 15), opt-in with "bigTCP": true in the plugin's
// config: after the delegate's ADD, the pod's interface, its host end and the
// bridge take the IPv4 aggregate limits (gso_ipv4_max_size, gro_ipv4_max_size)
// of the host's underlay, the device its default route leaves by, and only
// when that device's are above 64 KiB (someone enabled BIG TCP on the NIC).
//
// Measured (BENCHMARKS.md, "BIG TCP"): with the underlay carrying BIG
// aggregates, a host-gw stream gains where the pods' ports follow; raised on
// the pods' ports alone it loses (every aggregate is cut up in software where
// it leaves by a 64 KiB device), and so it would for traffic that leaves by
// another device than the underlay, or into weft's vxlan device (which refuses
// more than 64 KiB). Hence opt-in, and following the underlay, never a size of
// our own.
import { NetlinkHandle, type LinkSizes } from '../native/netlink.js';
import { CniError, CODE, type Result } from './spec.js';

/** The kernel's default and the most an IPv4 header's length field says: above it is BIG TCP. */
export const LEGACY_MAX = 65536;

export interface BigTcpLimits {
  gsoIpv4MaxSize: number;
  groIpv4MaxSize: number;
  /** The device they were read from. */
  from: string;
}

/** The underlay's limits when BIG TCP is on there (either limit above 64 KiB); null otherwise, or without a default route. */
export function underlayLimits(nl: NetlinkHandle): BigTcpLimits | null {
  const def = nl.routes().find((r) => r.dst === '0.0.0.0/0' && r.index !== null);
  if (!def || def.index === null) return null;
  const sizes: LinkSizes | null = nl.linkSizes(def.index);
  if (!sizes || (sizes.gsoIpv4MaxSize <= LEGACY_MAX && sizes.groIpv4MaxSize <= LEGACY_MAX)) return null;
  return { gsoIpv4MaxSize: sizes.gsoIpv4MaxSize, groIpv4MaxSize: sizes.groIpv4MaxSize, from: nl.link(def.index)?.name ?? `#${def.index}` };
}

interface ResultInterface {
  name?: unknown;
  sandbox?: unknown;
}

/**
 * Gives the pod's devices the underlay's limits, host side first (the bridge
 * and the veth's host end, which carry what the pod receives), the pod's own
 * interface last (which sizes what the pod sends). Runs in the host's
 * namespace (the plugin's); `podNetns` is CNI_NETNS. Returns the devices set.
 */
export function followUnderlay(result: Result, podNetns: string, ifname: string): string[] {
  const ifaces = Array.isArray(result.interfaces) ? (result.interfaces as ResultInterface[]) : [];
  const host = NetlinkHandle.open();
  const done: string[] = [];
  try {
    const limits = underlayLimits(host);
    if (!limits) return done;
    const change = { gsoIpv4MaxSize: limits.gsoIpv4MaxSize, groIpv4MaxSize: limits.groIpv4MaxSize };
    const set = (nl: NetlinkHandle, name: string, where: string): void => {
      const link = nl.link(name);
      if (!link) return;
      try {
        nl.linkSet(link.index, change);
      } catch (err) {
        throw new CniError(CODE.internal, `bigTCP: cannot give ${where}${name} ${limits.from}'s gso_ipv4_max_size ${limits.gsoIpv4MaxSize}: ${(err as Error).message}`, 'turn "bigTCP" off in the plugin config, or lower the underlay\'s gso_ipv4_max_size');
      }
      done.push(`${where}${name}`);
    };
    for (const i of ifaces) if (typeof i.name === 'string' && !i.sandbox) set(host, i.name, '');
    const pod = NetlinkHandle.openIn(podNetns);
    try {
      set(pod, ifname, `${podNetns}:`);
    } finally {
      pod.close();
    }
    return done;
  } finally {
    host.close();
  }
}
