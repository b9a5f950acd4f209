// Which subnet to take: pure functions over the config and the taken subnets,
// so the policy is testable without etcd.
import { IPNet } from '../core/ipnet.js';
import type { SubnetRange } from '../config/network.js';

/** A lease fits the config when it is a subnet of the Network with the configured length. */
export function fitsRange(subnet: IPNet, range: SubnetRange): boolean {
  return subnet.prefixLen === range.subnetLen && range.network.contains(subnet) && subnet.isNetworkAddress();
}

/** The first `limit` subnets from SubnetMin to SubnetMax that nobody holds. */
export function freeSubnets(range: SubnetRange, taken: Iterable<IPNet>, limit = 100): IPNet[] {
  const held = new Set<bigint>();
  for (const t of taken) if (t.family === range.network.family) held.add(t.network);
  const step = 1n << BigInt(range.network.bits - range.subnetLen);
  const out: IPNet[] = [];
  for (let b = range.subnetMin.network; b <= range.subnetMax.network && out.length < limit; b += step) {
    if (!held.has(b)) out.push(new IPNet(range.network.family, b, range.subnetLen));
  }
  return out;
}

export function pickRandom<T>(items: T[], random: () => number = Math.random): T | undefined {
  return items.length ? items[Math.floor(random() * items.length)] : undefined;
}
