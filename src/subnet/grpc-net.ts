// node:net as gRPC's modules see it in the agent's and `weft leases`' bundles
// (packaging/bundle-cli.mjs): the same module, but for isIPv6 and isIP,
// which answer without Node's IPv6 pattern where no address could match it.
// Node compiles that pattern on its first use, 10 to 18 ms of every start,
// and gRPC asks it of the etcd endpoint's address before it connects. Every
// IPv6 address holds a colon, so a string without one is not one, and any
// other input goes to Node's own test. test/unit/grpc-net.test.ts compares
// the two.
import net from 'node:net';

export * from 'node:net';

export function isIPv6(input: string): boolean {
  if (typeof input === 'string' && !input.includes(':')) return false;
  return net.isIPv6(input);
}

/** As Node's: 4, 6 or 0. */
export function isIP(input: string): number {
  if (net.isIPv4(input)) return 4;
  return isIPv6(input) ? 6 : 0;
}
