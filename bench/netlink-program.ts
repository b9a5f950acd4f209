// Measures how long the netlink dataplane's kernel programming takes for many
// peers: per peer an onlink route, a permanent ARP entry and an FDB entry
// (flannel's vxlan backend), 3 operations each. A lab host gets flannel.1;
// each way of programming is timed for adding all peers, reading them back
// and deleting them again.
//
//   node dist-test/bench/netlink-program.js [--peers 10000] [--json]
//
// --json prints one line for bench/run.js: {"peers": n, "rows": [{mode, program, read, remove}]} (ms).
//
// Peer subnets are /30s inside 10.244.0.0/16, each reached via its first
// address as flannel reaches <subnet>.0; the last /30 is the host's own
// (room for 16,383 peers).
import { Lab } from '../lab/netns.js';
import { NetlinkHandle, throwIfFailed, type BatchOp, type Link } from 'weft/native/netlink.js';

interface Peer {
  subnet: string;
  vtep: string;
  mac: string;
  publicIP: string;
}

function peers(n: number): Peer[] {
  if (!Number.isInteger(n) || n < 1 || n > 16383) throw new Error('--peers: 1..16383 peers fit 10.244.0.0/16 as /30s');
  const out: Peer[] = [];
  for (let i = 0; i < n; i++) {
    const base = i * 4;
    const vtep = `10.244.${base >> 8}.${base & 0xff}`;
    const hex = (v: number): string => v.toString(16).padStart(2, '0');
    out.push({
      subnet: `${vtep}/30`,
      vtep,
      mac: `0e:00:00:00:${hex(i >> 8)}:${hex(i & 0xff)}`,
      publicIP: i % 2 ? `198.51.100.${2 + (i % 250)}` : `192.0.2.${2 + (i % 250)}`,
    });
  }
  return out;
}

function ms(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e6;
}

type Row = { mode: string; program: number; read: number; remove: number };

function counts(nl: NetlinkHandle, vx: Link): { routes: number; neighs: number; fdbs: number; read: number } {
  const t = process.hrtime.bigint();
  const routes = nl.routes().filter((r) => r.index === vx.index && r.dst.startsWith('10.244.')).length;
  const neighs = nl.neighs(vx.index).length;
  const fdbs = nl.fdbs(vx.index).filter((f) => f.dst !== null).length;
  return { routes, neighs, fdbs, read: ms(t) };
}

function expectCounts(nl: NetlinkHandle, vx: Link, n: number, mode: string): number {
  const c = counts(nl, vx);
  if (c.routes !== n || c.neighs !== n || c.fdbs !== n)
    throw new Error(`${mode}: expected ${n} routes, neighbours and FDB entries, found ${c.routes}, ${c.neighs}, ${c.fdbs}`);
  return c.read;
}

function programOps(vx: Link, ps: Peer[], viaNexthop: boolean): BatchOp[] {
  const ops: BatchOp[] = [];
  ps.forEach((p, i) => {
    ops.push({ op: 'neighReplace', arg: { index: vx.index, ip: p.vtep, mac: p.mac, permanent: true } });
    ops.push({ op: 'fdbReplace', arg: { index: vx.index, mac: p.mac, dst: p.publicIP } });
    if (viaNexthop) {
      ops.push({ op: 'nexthopReplace', arg: { id: i + 1, gateway: p.vtep, index: vx.index, onlink: true } });
      ops.push({ op: 'routeReplace', arg: { dst: p.subnet, nhid: i + 1 } });
    } else {
      ops.push({ op: 'routeReplace', arg: { dst: p.subnet, gateway: p.vtep, index: vx.index, onlink: true } });
    }
  });
  return ops;
}

function removeOps(vx: Link, ps: Peer[], viaNexthop: boolean): BatchOp[] {
  const ops: BatchOp[] = [];
  ps.forEach((p, i) => {
    ops.push({ op: 'routeDel', arg: { dst: p.subnet } });
    if (viaNexthop) ops.push({ op: 'nexthopDel', arg: { id: i + 1 } });
    ops.push({ op: 'neighDel', arg: { index: vx.index, ip: p.vtep } });
    ops.push({ op: 'fdbDel', arg: { index: vx.index, mac: p.mac } });
  });
  return ops;
}

function runSingle(nl: NetlinkHandle, vx: Link, ps: Peer[]): Row {
  let t = process.hrtime.bigint();
  for (const p of ps) {
    nl.routeReplace({ dst: p.subnet, gateway: p.vtep, index: vx.index, onlink: true });
    nl.neighReplace({ index: vx.index, ip: p.vtep, mac: p.mac, permanent: true });
    nl.fdbReplace({ index: vx.index, mac: p.mac, dst: p.publicIP });
  }
  const program = ms(t);
  const read = expectCounts(nl, vx, ps.length, 'single calls');
  t = process.hrtime.bigint();
  for (const p of ps) {
    nl.routeDel({ dst: p.subnet, index: vx.index });
    nl.neighDel({ index: vx.index, ip: p.vtep });
    nl.fdbDel({ index: vx.index, mac: p.mac });
  }
  const remove = ms(t);
  expectCounts(nl, vx, 0, 'single calls, after deletion');
  return { mode: 'single calls, route via gateway (flannel)', program, read, remove };
}

function runBatch(nl: NetlinkHandle, vx: Link, ps: Peer[], viaNexthop: boolean): Row {
  const add = programOps(vx, ps, viaNexthop);
  const del = removeOps(vx, ps, viaNexthop);
  let t = process.hrtime.bigint();
  throwIfFailed(nl.batch(add));
  const program = ms(t);
  const read = expectCounts(nl, vx, ps.length, 'batch');
  t = process.hrtime.bigint();
  throwIfFailed(nl.batch(del));
  const remove = ms(t);
  expectCounts(nl, vx, 0, 'batch, after deletion');
  const mode = viaNexthop ? 'batch, route via nexthop object' : 'batch, route via gateway (flannel)';
  return { mode, program, read, remove };
}

async function main(): Promise<void> {
  const arg = process.argv.indexOf('--peers');
  const n = arg > 0 ? Number(process.argv[arg + 1]) : 10_000;
  const lab = await Lab.create();
  try {
    const host = await lab.addHost('h1', { octet: 11 });
    const nl = NetlinkHandle.openIn(`/run/netns/${host.name}`);
    const eth0 = nl.link('eth0')!;
    const vx = nl.linkAddVxlan({ name: 'flannel.1', vni: 1, local: host.address, link: eth0.index, port: 8472, learning: false });
    nl.linkSet(vx.index, { up: true });
    nl.addrAdd(vx.index, '10.244.255.252/32');
    const ps = peers(n);
    const rows = [runSingle(nl, vx, ps), runBatch(nl, vx, ps, false), runBatch(nl, vx, ps, true)];
    nl.close();
    if (process.argv.includes('--json')) {
      console.log(JSON.stringify({ bench: 'netlink-program', peers: n, rows: rows.map((r) => ({ ...r, program: Math.round(r.program), read: Math.round(r.read), remove: Math.round(r.remove) })) }));
      return;
    }
    console.log(`netlink programming, ${n} peers (route + neighbour + FDB each; the nexthop way adds a nexthop per peer)`);
    console.log(`${'mode'.padEnd(44)} ${'program ms'.padStart(11)} ${'dump ms'.padStart(8)} ${'delete ms'.padStart(10)}`);
    for (const r of rows)
      console.log(`${r.mode.padEnd(44)} ${r.program.toFixed(0).padStart(11)} ${r.read.toFixed(0).padStart(8)} ${r.remove.toFixed(0).padStart(10)}`);
    const worst = Math.max(...rows.map((r) => r.program + r.remove));
    console.log(`goal: ${n} peers programmed well under 5000 ms; slowest mode took ${worst.toFixed(0)} ms to program and delete`);
  } finally {
    await lab.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
