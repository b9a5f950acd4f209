// The addon's rtnetlink half, in lab namespaces: each call is checked against
// what iproute2 reads back from the same kernel (`ip -j`, `bridge -j`).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Lab, type LabHost } from '../../lab/netns.js';
import { run, waitFor } from '../../lab/exec.js';
import { NetlinkHandle, isNetlinkError, type Link, type NetlinkEvent } from 'weft/native/netlink.js';
import { addonPath } from 'weft/native/addon.js';

let lab: Lab;
let h1: LabHost;
let h2: LabHost;
let nl: NetlinkHandle;
let eth0: Link;
let vx: Link;

const nsPath = (h: LabHost): string => `/run/netns/${h.name}`;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function ipJson(h: LabHost, ...args: string[]): Promise<any> {
  return JSON.parse((await h.exec(args)).stdout || '[]');
}

function assertThrowsNetlink(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isNetlinkError(e), `not a NetlinkError: ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, message);
    return true;
  });
}

before(async () => {
  lab = await Lab.create();
  h1 = await lab.addHost('h1', { octet: 11 });
  h2 = await lab.addHost('h2', { octet: 21 });
  nl = NetlinkHandle.openIn(nsPath(h1));
  eth0 = nl.link('eth0')!;
  assert.ok(eth0, 'the lab host has eth0');
});

after(async () => {
  nl?.close();
  await lab?.destroy();
});

test('flannel.1: vxlan id 1 local <PublicIP> dev eth0 dstport 8472 nolearning, read back field by field', async () => {
  vx = nl.linkAddVxlan({ name: 'flannel.1', vni: 1, local: h1.address, link: eth0.index, port: 8472, learning: false });
  assert.equal(vx.name, 'flannel.1');
  assert.equal(vx.kind, 'vxlan');
  assert.deepEqual(vx.vxlan, { vni: 1, local: '192.0.2.11', link: eth0.index, port: 8472, learning: false, gbp: false, external: false });
  assert.equal(vx.up, false);
  assert.equal(vx.master, null);
  assert.match(vx.mac ?? '', /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);

  nl.linkSet(vx.index, { up: true, mtu: 1400, mac: '0e:00:00:00:01:01' });
  const [ip] = await ipJson(h1, 'ip', '-d', '-j', 'link', 'show', 'flannel.1');
  const got = nl.link('flannel.1')!;
  assert.deepEqual(nl.link(vx.index), got);
  assert.equal(got.index, ip.ifindex);
  assert.equal(got.mtu, 1400);
  assert.equal(ip.mtu, 1400);
  assert.equal(got.mac, '0e:00:00:00:01:01');
  assert.equal(ip.address, got.mac);
  assert.equal(got.up, true);
  assert.ok(ip.flags.includes('UP'));
  assert.equal(got.operUp, ip.flags.includes('LOWER_UP'));
  assert.equal(got.noarp, ip.flags.includes('NOARP'));
  assert.equal(ip.linkinfo.info_kind, got.kind);
  const d = ip.linkinfo.info_data;
  assert.equal(d.id, got.vxlan!.vni);
  assert.equal(d.local, got.vxlan!.local);
  assert.equal(d.link, 'eth0');
  assert.equal(d.port, got.vxlan!.port);
  assert.equal(d.learning, got.vxlan!.learning);
  assert.equal(d.external ?? false, got.vxlan!.external);
  assert.equal(d.gbp ?? false, got.vxlan!.gbp);
  assert.ok(nl.links().some((l) => l.name === 'flannel.1' && l.index === vx.index));

  nl.linkSet(vx.index, { noarp: true });
  assert.equal(nl.link(vx.index)!.noarp, true);
  assert.ok((await ipJson(h1, 'ip', '-j', 'link', 'show', 'flannel.1'))[0].flags.includes('NOARP'));
  nl.linkSet(vx.index, { noarp: false });
  assert.equal(nl.link(vx.index)!.noarp, false);
  vx = nl.link(vx.index)!;

  assertThrowsNetlink(
    () => nl.linkAddVxlan({ name: 'flannel.1', vni: 1, local: h1.address, link: eth0.index, port: 8472, learning: false }),
    'EEXIST',
    /^rtnl_link_add\(vxlan flannel\.1 id 1 local 192\.0\.2\.11 dev eth0 dstport 8472 nolearning\): EEXIST \(File exists\)/,
  );
});

test('collect_md (external) vxlan device with gbp and learning', async () => {
  const ext = nl.linkAddVxlan({ name: 'wvx-ext', vni: 0, port: 4789, learning: true, gbp: true, external: true, mtu: 1450 });
  assert.equal(ext.kind, 'vxlan');
  assert.equal(ext.mtu, 1450);
  assert.equal(ext.vxlan!.external, true);
  assert.equal(ext.vxlan!.gbp, true);
  assert.equal(ext.vxlan!.learning, true);
  assert.equal(ext.vxlan!.port, 4789);
  assert.equal(ext.vxlan!.local, null);
  assert.equal(ext.vxlan!.link, null);
  const [ip] = await ipJson(h1, 'ip', '-d', '-j', 'link', 'show', 'wvx-ext');
  assert.equal(ip.linkinfo.info_data.external, true);
  assert.equal(ip.linkinfo.info_data.gbp, true);
  assert.equal(ip.linkinfo.info_data.learning, true);
  assert.equal(ip.linkinfo.info_data.port, 4789);
  nl.linkDel(ext.index);
  assert.equal(nl.link('wvx-ext'), null);
});

test('veth pair: both ends exist with the MTU, deleting one removes both', async () => {
  nl.linkAddVeth('wva', 'wvb', { mtu: 1400 });
  const a = nl.link('wva')!;
  const b = nl.link('wvb')!;
  assert.equal(a.kind, 'veth');
  assert.equal(b.kind, 'veth');
  assert.equal(a.mtu, 1400);
  assert.equal(b.mtu, 1400);
  const ip = await ipJson(h1, 'ip', '-j', 'link', 'show', 'wva');
  assert.equal(ip[0].link, 'wvb');
  nl.linkDel(a.index);
  assert.equal(nl.link('wva'), null);
  assert.equal(nl.link('wvb'), null);
  assertThrowsNetlink(() => nl.linkAddVeth('wva', 'eth0'), 'EEXIST', /^rtnl_link_add\(veth wva peer eth0\): EEXIST/);
});

test("BIG TCP: a veth pair's IPv4 aggregate limits raised and read back, a vxlan device without a lower device refuses, and no ack is left behind", async () => {
  nl.linkAddVeth('wbig', 'wbig2');
  const a = nl.link('wbig')!;
  const before = nl.linkSizes(a.index)!;
  assert.deepEqual(before, { gsoMaxSize: 65536, groMaxSize: 65536, tsoMaxSize: before.tsoMaxSize, gsoIpv4MaxSize: 65536, groIpv4MaxSize: 65536 });
  // iproute2 6.1 prints the older limits but not the IPv4 ones: the ones it does print must agree.
  const [ip] = await ipJson(h1, 'ip', '-d', '-j', 'link', 'show', 'wbig');
  assert.equal(before.tsoMaxSize, ip.tso_max_size);
  assert.equal(before.gsoMaxSize, ip.gso_max_size);
  assert.ok(before.tsoMaxSize > 65536, `veth's tso_max_size ${before.tsoMaxSize}`);
  nl.linkSet(a.index, { gsoIpv4MaxSize: 196608, groIpv4MaxSize: 131072, mtu: 1450 });
  // Calls in a row on one socket: each must read its own reply.
  for (let i = 0; i < 3; i++) assert.deepEqual(nl.linkSizes(a.index), { ...before, gsoIpv4MaxSize: 196608, groIpv4MaxSize: 131072 });
  assert.equal(nl.link('wbig')!.mtu, 1450);
  assert.equal(nl.linkSizes(nl.link('wbig2')!.index)!.gsoIpv4MaxSize, 65536, 'the peer keeps its own');
  // A vxlan device takes its lower device's limit (flannel.1 is `dev eth0`); one without (collect_md, as weft's) has 64 KiB and refuses more.
  assert.equal(nl.linkSizes(vx.index)!.tsoMaxSize, nl.linkSizes(eth0.index)!.tsoMaxSize);
  const ext = nl.linkAddVxlan({ name: 'wvx-big', vni: 0, port: 4789, learning: false, external: true });
  const extSizes = nl.linkSizes(ext.index)!;
  assert.equal(extSizes.tsoMaxSize, 65536);
  assertThrowsNetlink(() => nl.linkSet(ext.index, { gsoIpv4MaxSize: 196608 }), 'EINVAL', /^RTM_NEWLINK\(wvx-big gso_ipv4_max_size 196608\): EINVAL .*too big gso_ipv4_max_size/);
  assert.deepEqual(nl.linkSizes(ext.index), extSizes);
  nl.linkDel(ext.index);
  nl.linkDel(a.index);
  assert.equal(nl.linkSizes(a.index), null);
});

test('addresses: add (EEXIST tolerated), list, delete', async () => {
  nl.addrAdd(vx.index, '10.244.1.0/32');
  nl.addrAdd(vx.index, '10.244.1.0/32');
  assert.deepEqual(nl.addrs(vx.index), [{ index: vx.index, address: '10.244.1.0', prefixLen: 32 }]);
  assert.ok(nl.addrs().some((a) => a.index === eth0.index && a.address === '192.0.2.11' && a.prefixLen === 24));
  const [ip] = await ipJson(h1, 'ip', '-j', '-4', 'addr', 'show', 'dev', 'flannel.1');
  assert.deepEqual(
    ip.addr_info.map((a: { local: string; prefixlen: number }) => [a.local, a.prefixlen]),
    [['10.244.1.0', 32]],
  );
  nl.addrAdd(vx.index, '10.244.1.7/24');
  nl.addrDel(vx.index, '10.244.1.7/24');
  assert.deepEqual(nl.addrs(vx.index).map((a) => a.address), ['10.244.1.0']);
  assertThrowsNetlink(() => nl.addrDel(vx.index, '10.244.1.7/24'), 'EADDRNOTAVAIL', /^rtnl_addr_delete\(10\.244\.1\.7\/24 dev flannel\.1\): EADDRNOTAVAIL/);
});

test('routes: replace onlink via the vxlan device, as flannel programs a peer, then delete', async () => {
  nl.routeReplace({ dst: '10.244.3.0/24', gateway: '10.244.3.0', index: vx.index, onlink: true });
  const mine = nl.routes().find((r) => r.dst === '10.244.3.0/24');
  assert.deepEqual(mine, {
    dst: '10.244.3.0/24', gateway: '10.244.3.0', index: vx.index, src: null, onlink: true,
    table: 254, protocol: 3, scope: 0, type: 1, mtu: null, nhid: null,
  });
  const ip = await ipJson(h1, 'ip', '-j', 'route', 'show', 'table', 'main');
  const ipRoute = ip.find((r: { dst: string }) => r.dst === '10.244.3.0/24');
  assert.equal(ipRoute.gateway, '10.244.3.0');
  assert.equal(ipRoute.dev, 'flannel.1');
  assert.deepEqual(ipRoute.flags, ['onlink']);
  const def = nl.routes().find((r) => r.dst === '0.0.0.0/0');
  assert.equal(def?.gateway, '192.0.2.1');
  assert.equal(def?.index, eth0.index);
  assert.equal(nl.routes().length, ip.length);

  // Replacing moves the route to the new gateway rather than adding a second.
  nl.routeReplace({ dst: '10.244.3.0/24', gateway: '10.244.3.1', index: vx.index, onlink: true, mtu: 1400 });
  const now = nl.routes().filter((r) => r.dst === '10.244.3.0/24');
  assert.equal(now.length, 1);
  assert.equal(now[0].gateway, '10.244.3.1');
  assert.equal(now[0].mtu, 1400);

  assert.equal(nl.routeDel({ dst: '10.244.3.0/24' }), true);
  assert.equal(nl.routeDel({ dst: '10.244.3.0/24' }), false);
  assert.equal(nl.routes().some((r) => r.dst === '10.244.3.0/24'), false);
  assert.equal((await ipJson(h1, 'ip', '-j', 'route', 'show', '10.244.3.0/24')).length, 0);

  // Without onlink the kernel refuses a gateway it cannot reach.
  assertThrowsNetlink(
    () => nl.routeReplace({ dst: '10.244.4.0/24', gateway: '10.244.4.0', index: vx.index }),
    'ENETUNREACH',
    /^rtnl_route_add\(10\.244\.4\.0\/24 via 10\.244\.4\.0 dev flannel\.1\): ENETUNREACH \(Network is unreachable\)/,
  );
  assert.throws(() => nl.routeReplace({ dst: '10.244.4.0', index: vx.index }), TypeError);
});

test('routes through nexthop objects, and deleting the nexthop takes its route', async () => {
  nl.nexthopReplace({ id: 7, gateway: '10.244.5.0', index: vx.index, onlink: true });
  assert.deepEqual(nl.nexthops().find((n) => n.id === 7), { id: 7, gateway: '10.244.5.0', index: vx.index, onlink: true, protocol: 3 });
  nl.routeReplace({ dst: '10.244.5.0/24', nhid: 7 });
  const r = nl.routes().find((x) => x.dst === '10.244.5.0/24');
  assert.equal(r?.nhid, 7);
  assert.equal(r?.gateway, '10.244.5.0');
  const [ip] = await ipJson(h1, 'ip', '-j', 'route', 'show', '10.244.5.0/24');
  assert.equal(ip.nhid, 7);
  assert.equal(nl.nexthopDel(7), true);
  assert.equal(nl.nexthopDel(7), false);
  assert.equal(nl.routes().some((x) => x.dst === '10.244.5.0/24'), false);
  assertThrowsNetlink(() => nl.routeReplace({ dst: '10.244.5.0/24', nhid: 8 }), 'EINVAL', /^rtnl_route_add\(10\.244\.5\.0\/24 nhid 8\): EINVAL .*Nexthop id does not exist/);
});

test('neighbours: permanent ARP entry, replaced, deleted', async () => {
  nl.neighReplace({ index: vx.index, ip: '10.244.3.0', mac: '0e:00:00:00:03:01', permanent: true });
  assert.deepEqual(nl.neighs(vx.index), [{ index: vx.index, ip: '10.244.3.0', mac: '0e:00:00:00:03:01', state: ['PERMANENT'] }]);
  assert.deepEqual(await ipJson(h1, 'ip', '-j', 'neigh', 'show', 'dev', 'flannel.1'), [
    { dst: '10.244.3.0', lladdr: '0e:00:00:00:03:01', state: ['PERMANENT'] },
  ]);
  nl.neighReplace({ index: vx.index, ip: '10.244.3.0', mac: '0e:00:00:00:03:02', permanent: true });
  assert.deepEqual(nl.neighs(vx.index).map((n) => n.mac), ['0e:00:00:00:03:02']);
  nl.neighReplace({ index: vx.index, ip: '10.244.6.0', mac: '0e:00:00:00:06:01', permanent: false });
  assert.ok(!nl.neighs(vx.index).find((n) => n.ip === '10.244.6.0')!.state.includes('PERMANENT'));
  assert.equal(nl.neighDel({ index: vx.index, ip: '10.244.6.0' }), true);
  assert.equal(nl.neighDel({ index: vx.index, ip: '10.244.3.0' }), true);
  assert.equal(nl.neighDel({ index: vx.index, ip: '10.244.3.0' }), false);
  assert.deepEqual(nl.neighs(vx.index), []);
  assert.deepEqual(await ipJson(h1, 'ip', '-j', 'neigh', 'show', 'dev', 'flannel.1'), []);
});

test('FDB: self permanent entry with dst, replaced, deleted', async () => {
  nl.fdbReplace({ index: vx.index, mac: '0e:00:00:00:03:01', dst: '192.0.2.21' });
  const mine = () => nl.fdbs(vx.index).filter((f) => f.mac === '0e:00:00:00:03:01');
  assert.deepEqual(mine(), [{ index: vx.index, mac: '0e:00:00:00:03:01', dst: '192.0.2.21', self: true, permanent: true }]);
  const br = await ipJson(h1, 'bridge', '-j', 'fdb', 'show', 'dev', 'flannel.1');
  assert.deepEqual(br.filter((f: { mac: string }) => f.mac === '0e:00:00:00:03:01'), [
    { mac: '0e:00:00:00:03:01', dst: '192.0.2.21', flags: ['self'], state: 'permanent' },
  ]);
  nl.fdbReplace({ index: vx.index, mac: '0e:00:00:00:03:01', dst: '192.0.2.22' });
  assert.deepEqual(mine().map((f) => f.dst), ['192.0.2.22']);
  // The kernel acks a delete whose dst matches none of the entry's remotes,
  // and deletes nothing (as `bridge fdb del … dst X` shows).
  assert.equal(nl.fdbDel({ index: vx.index, mac: '0e:00:00:00:03:01', dst: '192.0.2.99' }), true);
  assert.deepEqual(mine().map((f) => f.dst), ['192.0.2.22']);
  assert.equal(nl.fdbDel({ index: vx.index, mac: '0e:00:00:00:03:01', dst: '192.0.2.22' }), true);
  assert.equal(nl.fdbDel({ index: vx.index, mac: '0e:00:00:00:03:01' }), false);
  nl.fdbReplace({ index: vx.index, mac: '0e:00:00:00:03:01', dst: '192.0.2.21' });
  assert.equal(nl.fdbDel({ index: vx.index, mac: '0e:00:00:00:03:01' }), true);
  assert.deepEqual(mine(), []);
  assert.equal((await ipJson(h1, 'bridge', '-j', 'fdb', 'show', 'dev', 'flannel.1')).some((f: { mac: string }) => f.mac === '0e:00:00:00:03:01'), false);
});

test('batch: one result per op, a refused op does not stop the others', () => {
  const peer = { index: vx.index, ip: '10.244.8.0', mac: '0e:00:00:00:08:01' };
  const results = nl.batch([
    { op: 'neighReplace', arg: { ...peer, permanent: true } },
    { op: 'fdbReplace', arg: { index: vx.index, mac: peer.mac, dst: '192.0.2.21' } },
    { op: 'routeReplace', arg: { dst: '10.244.9.0/24', gateway: '10.244.9.0', index: vx.index } },
    { op: 'routeReplace', arg: { dst: '10.244.8.0/24', gateway: '10.244.8.0', index: vx.index, onlink: true } },
    { op: 'routeDel', arg: { dst: '10.244.77.0/24' } },
  ]);
  assert.equal(results.length, 5);
  assert.deepEqual([results[0], results[1], results[3], results[4]], [true, true, true, false]);
  const err = results[2];
  assert.ok(isNetlinkError(err));
  assert.equal(err.code, 'ENETUNREACH');
  assert.match(err.message, /^rtnl_route_add\(10\.244\.9\.0\/24 via 10\.244\.9\.0 dev flannel\.1\): ENETUNREACH/);
  assert.equal(nl.routes().find((r) => r.dst === '10.244.8.0/24')?.gateway, '10.244.8.0');
  assert.equal(nl.neighs(vx.index).length, 1);
  assert.deepEqual(
    nl.batch([
      { op: 'routeDel', arg: { dst: '10.244.8.0/24' } },
      { op: 'neighDel', arg: { index: vx.index, ip: peer.ip } },
      { op: 'fdbDel', arg: { index: vx.index, mac: peer.mac } },
      { op: 'fdbDel', arg: { index: vx.index, mac: peer.mac } },
    ]),
    [true, true, true, false],
  );
  // More ops than one window of acks: every result lands on its own op.
  const many = Array.from({ length: 2500 }, (_, i) => ({ index: vx.index, ip: `10.244.${100 + (i >> 8)}.${i & 0xff}` }));
  const mac = (i: number): string => `0e:00:00:01:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
  const added = nl.batch(many.map((n, i) => ({ op: 'neighReplace' as const, arg: { ...n, mac: mac(i), permanent: true } })));
  assert.ok(added.every((r) => r === true));
  const table = new Map(nl.neighs(vx.index).map((n) => [n.ip, n.mac]));
  assert.ok(many.every((n, i) => table.get(n.ip) === mac(i)));
  const removed = nl.batch(many.map((n, i) => ({ op: 'neighDel' as const, arg: i % 2 ? n : { ...n, ip: '10.244.99.1' } })));
  assert.deepEqual(removed.slice(0, 4), [false, true, false, true]);
  assert.equal(removed.filter((r) => r === true).length, 1250);
  nl.batch(many.map((n) => ({ op: 'neighDel' as const, arg: n })));
  assert.deepEqual(nl.neighs(vx.index), []);

  // A malformed op throws before anything is sent.
  assert.throws(() => nl.batch([{ op: 'routeReplace', arg: { dst: '10.244.10.0/24', gateway: '10.244.10.0', index: vx.index, onlink: true } }, { op: 'routeReplace', arg: { dst: 'nonsense', index: 1 } }]), TypeError);
  assert.equal(nl.routes().some((r) => r.dst === '10.244.10.0/24'), false);
});

test('errors name the call, the object and the errno', () => {
  assert.equal(nl.link('no-such-dev'), null);
  assert.equal(nl.link(99999), null);
  assertThrowsNetlink(() => nl.linkDel(99999), 'ENODEV', /^rtnl_link_delete\(#99999\): ENODEV \(No such device\)$/);
  assertThrowsNetlink(() => nl.linkSet(99999, { up: true }), 'ENODEV', /^rtnl_link_change\(#99999 up\): ENODEV/);
  assertThrowsNetlink(
    () => nl.neighReplace({ index: 99999, ip: '10.244.3.0', mac: '0e:00:00:00:03:01', permanent: true }),
    'ENODEV',
    /^rtnl_neigh_add\(10\.244\.3\.0 lladdr 0e:00:00:00:03:01 dev #99999 nud permanent\): ENODEV/,
  );
  assert.throws(() => nl.neighReplace({ index: vx.index, ip: '10.244.3.0', mac: 'zz', permanent: true }), /mac: expected a MAC/);
  const e = (() => {
    try {
      nl.routeReplace({ dst: '10.244.4.0/24', gateway: '10.244.4.0', index: vx.index });
    } catch (err) {
      return err;
    }
    return undefined;
  })();
  assert.ok(isNetlinkError(e));
  assert.equal(e.syscall, 'rtnl_route_add');
  assert.equal(e.errno, 101);
  const spare = NetlinkHandle.openIn(nsPath(h1));
  spare.close();
  assert.throws(() => spare.links(), /netlink handle is closed/);
});

test('monitor: a route added and a link deleted by ip in that namespace, nothing from elsewhere, nothing after close', async () => {
  const seen: NetlinkEvent[] = [];
  const witness: NetlinkEvent[] = [];
  // Made outside withNetns: the monitor follows its handle's namespace.
  const m = nl.monitor((e) => seen.push(e));
  const w = nl.monitor((e) => witness.push(e));
  try {
    await h2.ip('route', 'add', '10.244.21.0/24', 'dev', 'eth0');
    await h1.ip('route', 'add', '10.244.11.0/24', 'dev', 'eth0');
    await waitFor('the route event', () => seen.some((e) => e.kind === 'route' && e.action === 'new' && e.index === eth0.index && !e.own));
    await h1.ip('link', 'add', 'wmon', 'type', 'veth', 'peer', 'name', 'wmon-p');
    const index = nl.link('wmon')!.index;
    await h1.ip('link', 'del', 'wmon');
    await waitFor('the link deletion', () => seen.some((e) => e.kind === 'link' && e.action === 'del' && e.index === index));
    // h2's route came first, so it would have arrived before h1's.
    assert.equal(seen.filter((e) => e.kind === 'route').length, 1);

    nl.routeReplace({ dst: '10.244.12.0/24', index: eth0.index });
    await waitFor('our own route', () => seen.some((e) => e.kind === 'route' && e.own));

    m.close();
    m.close();
    const before = seen.length;
    await h1.ip('route', 'del', '10.244.11.0/24');
    await waitFor('the witness to see the deletion', () => witness.some((e) => e.kind === 'route' && e.action === 'del'));
    assert.equal(seen.length, before);
  } finally {
    m.close();
    w.close();
  }
});

test('monitor: a closed monitor does not keep the process alive', async () => {
  const script = `
    const a = require(${JSON.stringify(addonPath)});
    const h = a.netns.withNetns(${JSON.stringify(nsPath(h1))}, () => new a.netlink.Handle());
    const m = h.monitor(() => {});
    setTimeout(() => { m.close(); h.close(); }, 50);
  `;
  const r = await run(['node', '-e', script], { timeoutMs: 10_000, allowFail: true });
  assert.equal(r.signal, null, 'the process had to be killed: the closed monitor kept it alive');
  assert.equal(r.code, 0, r.stderr);
});
