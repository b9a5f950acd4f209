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
  const family = range.network.family;
  if (family === 4) return freeSubnets4(range, taken, limit);
  const held = new Set<bigint>();
  for (const t of taken) if (t.family === family) held.add(t.network);
  const step = 1n << BigInt(range.network.bits - range.subnetLen);
  const out: IPNet[] = [];
  for (let b = range.subnetMin.network; b <= range.subnetMax.network && out.length < limit; b += step) {
    if (!held.has(b)) out.push(new IPNet(family, b, range.subnetLen));
  }
  return out;
}

/** The same for IPv4, over numbers: 65,535 taken subnets are a scan of numbers, not of bigints. */
function freeSubnets4(range: SubnetRange, taken: Iterable<IPNet>, limit: number): IPNet[] {
  const held = new Set<number>();
  for (const t of taken) if (t.family === 4) held.add(Number(t.network));
  const step = 2 ** (32 - range.subnetLen);
  const last = Number(range.subnetMax.network);
  const out: IPNet[] = [];
  for (let b = Number(range.subnetMin.network); b <= last && out.length < limit; b += step) {
    if (!held.has(b)) out.push(new IPNet(4, BigInt(b), range.subnetLen));
  }
  return out;
}

export function pickRandom<T>(items: T[], random: () => number = Math.random): T | undefined {
  return items.length ? items[Math.floor(random() * items.length)] : undefined;
}
