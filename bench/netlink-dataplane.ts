// Times the netlink dataplane (src/dataplane/netlink) programming many vxlan
// peers in a lab host: per peer a route through a nexthop object holding
// flannel's onlink next hop, a permanent ARP entry and an FDB entry, applied
// through the dataplane's own code paths (syncPeers, upsertPeer, reconcile).
// The kernel's own removal of the device under all of them (someone deleting
// flannel.1 by hand) is timed too: it is not the dataplane's work, but it is
// what this many nexthops cost the host then.
//
//   node dist-test/bench/netlink-dataplane.js [--peers 10000] [--json]
//
// Peer subnets are /30s inside 10.244.0.0/16 up to 16,383 peers (the last
// /30 is the host's own); beyond that, /24s of a /8 Network as at 65,536
// hosts (10.0.0.0/8, only ever routes inside the lab host's namespace; no
// packet goes there). Each is reached via its first address as flannel reaches
// <subnet>.0. The goals: 10,000 peers well under 5 s (issue 4), 65,536 under
// 10 s (issue 15).
import { Lab } from '../lab/netns.js';
import { NetlinkHandle } from 'weft/native/netlink.js';
import { NetlinkDataplane } from 'weft/dataplane/netlink/index.js';
import { createLogger } from 'weft/core/log.js';
import type { PeerRoute } from 'weft/core/model.js';
import { addr, localNetwork, route } from '../lab/model.js';

/** The Network, our own subnet and the i-th peer's subnet for n peers. */
function layout(n: number): { network: string; own: string; subnet: (i: number) => string } {
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error('--peers: 1..65535 peers (a /8 of /24s with our own)');
  if (n <= 16383) return { network: '10.244.0.0/16', own: '10.244.255.252/30', subnet: (i) => `10.244.${(i * 4) >> 8}.${(i * 4) & 0xff}/30` };
  return { network: '10.0.0.0/8', own: '10.255.255.0/24', subnet: (i) => `10.${i >> 8}.${i & 0xff}.0/24` };
}

function peers(n: number): PeerRoute[] {
  const hex = (v: number): string => v.toString(16).padStart(2, '0');
  const { subnet } = layout(n);
  return Array.from({ length: n }, (_, i) =>
    route({
      subnet: subnet(i),
      publicIP: i % 2 ? `198.51.100.${2 + (i % 250)}` : `192.0.2.${2 + (i % 250)}`,
      encap: 'vxlan' as const,
      directRouting: false,
      vni: 1,
      vtepMAC: `0e:00:00:${hex(i >> 16)}:${hex((i >> 8) & 0xff)}:${hex(i & 0xff)}`,
    }),
  );
}

function ms(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e6;
}

async function timed(fn: () => Promise<void> | void): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return ms(t);
}

function count(nl: NetlinkHandle, dev: string): { routes: number; nexthops: number; neighs: number; fdbs: number } {
  const vx = nl.link(dev);
  if (!vx) return { routes: 0, nexthops: 0, neighs: 0, fdbs: 0 };
  return {
    routes: nl.routes().filter((r) => r.index === vx.index && r.protocol === 87 && r.nhid !== null).length,
    nexthops: nl.nexthops().filter((x) => x.index === vx.index && x.protocol === 87).length,
    neighs: nl.neighs(vx.index).filter((x) => x.state.includes('PERMANENT')).length,
    fdbs: nl.fdbs(vx.index).filter((f) => f.dst !== null).length,
  };
}

function expect(nl: NetlinkHandle, n: number, what: string): void {
  const c = count(nl, 'flannel.1');
  if (c.routes !== n || c.nexthops !== n || c.neighs !== n || c.fdbs !== n) {
    throw new Error(`${what}: expected ${n} routes, nexthops, neighbours and FDB entries, found ${c.routes}, ${c.nexthops}, ${c.neighs}, ${c.fdbs}`);
  }
}

async function main(): Promise<void> {
  const arg = process.argv.indexOf('--peers');
  const n = arg > 0 ? Number(process.argv[arg + 1]) : 10_000;
  const json = process.argv.includes('--json');
  const ps = peers(n);
  const lab = await Lab.create();
  try {
    const host = await lab.addHost('h1', { octet: 11 });
    const nsPath = `/run/netns/${host.name}`;
    const nl = NetlinkHandle.openIn(nsPath);
    const eth0 = nl.link('eth0')!;
    const local = localNetwork({
      backend: 'vxlan',
      network: layout(n).network,
      subnet: layout(n).own,
      publicIP: host.address,
      iface: { name: 'eth0', index: eth0.index, mtu: eth0.mtu, address: host.address, mac: eth0.mac ?? '', networks: ['192.0.2.0/24'] },
      mtu: eth0.mtu - 50,
      vxlan: { vni: 1, port: 8472, gbp: false, learning: false, vtepMAC: '0e:ff:00:00:00:01' },
      pinDir: host.pinDir,
    });
    // Only errors: the dataplane's own info lines would drown the table.
    const dp = new NetlinkDataplane(createLogger({ level: 'error', pretty: false }), { netns: nsPath, reconcileMs: 3_600_000 });
    // The agent's peer table, as the dataplane sees it.
    const table = { list: ps, routes: (): PeerRoute[] => table.list };
    await dp.start(local, table);
    const rows: Array<[string, number]> = [];
    rows.push([`syncPeers: program ${n} peers`, await timed(() => dp.syncPeers())]);
    expect(nl, n, 'after syncPeers');
    rows.push([`syncPeers again: ${n} peers, nothing to change`, await timed(() => dp.syncPeers())]);
    const moved = { ...ps[0], publicIP: addr('192.0.2.250'), vtepMAC: '0e:ff:ff:ff:ff:ff' };
    table.list = [moved, ...ps.slice(1)];
    rows.push(['upsertPeer: one peer changes PublicIP and VtepMAC', await timed(() => dp.upsertPeer(moved, ps[0]))]);
    rows.push([`kernel: flannel.1 deleted by hand under ${n} peers`, await timed(() => nl.linkDel(nl.link('flannel.1')!.index))]);
    rows.push([`reconcile: flannel.1 deleted, recreate + ${n} peers`, await timed(() => dp.reconcile('bench'))]);
    expect(nl, n, 'after reconcile');
    table.list = [];
    rows.push([`syncPeers of none: remove ${n} peers`, await timed(() => dp.syncPeers())]);
    expect(nl, 0, 'after removing every peer');
    await dp.uninstall();
    nl.close();
    const program = rows[0][1];
    if (json) {
      console.log(JSON.stringify({ bench: 'netlink-dataplane', peers: n, ms: Object.fromEntries(rows.map(([k, v]) => [k, Math.round(v)])) }));
      return;
    }
    console.log(`netlink dataplane, ${n} vxlan peers (route via nexthop + neighbour + FDB each, flannel's next hops)`);
    for (const [what, t] of rows) console.log(`${what.padEnd(52)} ${t.toFixed(0).padStart(7)} ms`);
    console.log(`${n} peers programmed in ${program.toFixed(0)} ms`);
  } finally {
    await lab.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
