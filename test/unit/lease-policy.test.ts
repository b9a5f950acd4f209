// The lease sanity rule, the first-holder rule of the peer table, the
// Network checks against the host, and the backoff: pure functions and
// classes, checked without etcd or a kernel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LeasePolicy } from 'weft/agent/lease-policy.js';
import { PeerTable } from 'weft/agent/peers.js';
import { networkConflict } from 'weft/agent/host-check.js';
import { parseNetworkConfig, diffConfigs } from 'weft/config/network.js';
import { Backoff } from 'weft/core/backoff.js';
import { IPAddr, IPNet } from 'weft/core/ipnet.js';
import { RouteGuard } from 'weft/dataplane/guard.js';
import type { Lease } from 'weft/subnet/lease.js';
import type { PeerEvent } from 'weft/subnet/session.js';
import { iface } from '../../lab/model.js';

const config = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
const own = IPNet.v4('10.244.1.0/24');
const policy = new LeasePolicy({ range: config.ipv4, ownSubnet: () => own, ownAddresses: [IPAddr.v4('192.0.2.11')] });

function lease(name: string, publicIP: string, createRevision = 10): Lease {
  const [ip, len] = name.split('&')[0].split('-');
  return {
    name,
    subnet: IPNet.v4(`${ip}/${len}`),
    attrs: { PublicIP: publicIP, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: '02:00:00:00:00:01' } },
    publicIP: IPAddr.v4(publicIP),
    leaseId: '7',
    modRevision: createRevision,
    createRevision,
  };
}

test('the sanity rule refuses leases the allocator would never hand out, and PublicIPs no peer can have', () => {
  const cases: Array<[string, string, RegExp | null]> = [
    ['10.244.5.0-24', '192.0.2.12', null],
    ['10.99.0.0-24', '192.0.2.12', /outside the Network/],
    ['0.0.0.0-0', '192.0.2.12', /outside the Network/],
    ['10.244.0.0-16', '192.0.2.12', /not a \/24/],
    ['10.244.1.128-25', '192.0.2.12', /not a \/24/],
    ['10.244.1.0-24&fd00::-64', '192.0.2.12', /overlaps our subnet 10\.244\.1\.0\/24/],
    ['10.244.5.0-24', '127.0.0.1', /loopback/],
    ['10.244.5.0-24', '0.0.0.0', /unspecified/],
    ['10.244.5.0-24', '0.1.2.3', /0\.0\.0\.0\/8/],
    ['10.244.5.0-24', '224.0.0.5', /multicast/],
    ['10.244.5.0-24', '255.255.255.255', /broadcast/],
    ['10.244.5.0-24', '240.1.1.1', /reserved/],
    ['10.244.5.0-24', '169.254.9.9', /link-local/],
    ['10.244.5.0-24', '10.244.7.7', /inside the Network/],
    ['10.244.5.0-24', '192.0.2.11', /this host's own address/],
    // The edges of the Network, and next to them (the numeric checks against the BigInt ones).
    ['10.244.0.0-24', '192.0.2.12', null],
    ['10.244.255.0-24', '192.0.2.12', null],
    ['10.245.0.0-24', '192.0.2.12', /outside the Network/],
    ['10.243.255.0-24', '192.0.2.12', /outside the Network/],
    ['10.244.1.1-24', '192.0.2.12', /not a \/24/],
    ['10.244.5.0-24', '10.244.0.0', /inside the Network/],
    ['10.244.5.0-24', '10.244.255.255', /inside the Network/],
    ['10.244.5.0-24', '10.245.0.0', null],
    ['10.244.5.0-24', '10.243.255.255', null],
  ];
  for (const [name, ip, why] of cases) {
    const r = policy.check(lease(name, ip));
    if (why === null) assert.equal(r, null, `${name} ${ip}`);
    else assert.match(String(r), why, `${name} ${ip}`);
  }
});

test('two leases for one subnet: the first created keeps it, the newcomer is refused until the first goes', () => {
  const decide = (l: Lease) => ({ subnet: l.subnet, publicIP: l.publicIP, encap: 'vxlan' as const, directRouting: false, vni: 1, vtepMAC: '02:00:00:00:00:01' });
  const t = new PeerTable(decide, policy);
  const first = lease('10.244.5.0-24', '192.0.2.12', 10);
  const second = lease('10.244.5.0-24&fd00:1::-64', '192.0.2.66', 20);
  let r = t.apply({ type: 'added', lease: first });
  assert.deepEqual(r.changes.map((c) => c.kind), ['upsert']);
  r = t.apply({ type: 'added', lease: second });
  assert.deepEqual(r.changes, [], 'the newcomer changes nothing');
  assert.match(String(r.peers[0].skipped), /held by 192\.0\.2\.12/);
  assert.deepEqual([...t.routes()].map((x) => String(x.publicIP)), ['192.0.2.12']);
  // The first goes: the second takes the subnet over, in one event (the removal first).
  r = t.apply({ type: 'removed', lease: first });
  assert.deepEqual(r.changes.map((c) => (c.kind === 'none' ? 'none' : `${c.kind} ${c.route.publicIP}`)), ['remove 192.0.2.12', 'upsert 192.0.2.66']);
  assert.deepEqual(t.counts(), { total: 1, routed: 1, skipped: 0, refused: 0 });
  // Listed in the other order (an initial list is in key order, not creation order), the older still wins.
  const u = new PeerTable(decide, policy);
  u.apply({ type: 'added', lease: second });
  u.apply({ type: 'added', lease: first });
  assert.deepEqual([...u.routes()].map((x) => String(x.publicIP)), ['192.0.2.12']);
  assert.equal(u.counts().refused, 1);
});

test('a renewed lease with the same route changes nothing in the dataplane', () => {
  const decide = (l: Lease) => ({ subnet: l.subnet, publicIP: l.publicIP, encap: 'vxlan' as const, directRouting: false, vni: 1, vtepMAC: '02:00:00:00:00:01' });
  const t = new PeerTable(decide, policy);
  const a = lease('10.244.5.0-24', '192.0.2.12', 10);
  t.apply({ type: 'added', lease: a });
  const r = t.apply({ type: 'changed', lease: { ...a, leaseId: '8' }, previous: a });
  assert.deepEqual(r.changes, []);
});

test('one lease alone on its subnet: added, moved, refused, back, skipped by the backend, removed: each step\'s changes', () => {
  const decide = (l: Lease) =>
    l.attrs.BackendType === 'vxlan'
      ? { subnet: l.subnet, publicIP: l.publicIP, encap: 'vxlan' as const, directRouting: false, vni: 1, vtepMAC: '02:00:00:00:00:01' }
      : { skip: 'not vxlan', reason: 'backend_mismatch' as const };
  const t = new PeerTable(decide, policy);
  const a = lease('10.244.5.0-24', '192.0.2.12', 10);
  let last = a;
  const step = (type: 'added' | 'changed' | 'removed', l: Lease): string[] => {
    const e: PeerEvent = type === 'changed' ? { type, lease: l, previous: last } : { type, lease: l };
    last = l;
    return t.apply(e).changes.map((c) => (c.kind === 'none' ? 'none' : `${c.kind} ${c.route.publicIP}${c.kind === 'upsert' && c.previous ? ` (was ${c.previous.publicIP})` : ''}`));
  };
  assert.deepEqual(step('added', a), ['upsert 192.0.2.12']);
  const moved = { ...a, attrs: { ...a.attrs, PublicIP: '192.0.2.13' }, publicIP: IPAddr.v4('192.0.2.13') };
  assert.deepEqual(step('changed', moved), ['upsert 192.0.2.13 (was 192.0.2.12)']);
  const bad = { ...a, attrs: { ...a.attrs, PublicIP: '127.0.0.1' }, publicIP: IPAddr.v4('127.0.0.1') };
  assert.deepEqual(step('changed', bad), ['remove 192.0.2.13']);
  assert.deepEqual(t.counts(), { total: 1, routed: 0, skipped: 1, refused: 1 });
  assert.deepEqual(step('changed', a), ['upsert 192.0.2.12']);
  assert.deepEqual(step('changed', { ...a, attrs: { ...a.attrs, BackendType: 'udp' } }), ['remove 192.0.2.12']);
  assert.equal([...t.values()][0].skipReason, 'backend_mismatch');
  assert.deepEqual(step('removed', a), []);
  assert.deepEqual(step('added', a), ['upsert 192.0.2.12'], 'the subnet is free again once its lease went');
  assert.deepEqual(step('removed', a), ['remove 192.0.2.12']);
  assert.deepEqual(step('removed', a), [], 'a lease removed twice');
  assert.deepEqual(t.counts(), { total: 0, routed: 0, skipped: 0, refused: 0 });
});

test('a Network over the underlay, over a route of the host, or holding etcd is a conflict; pod bridges inside it are not', () => {
  const underlay = iface({ name: 'eth0', index: 2, mtu: 1500, address: '192.0.2.11', mac: '02:00:00:00:00:11', networks: ['192.0.2.0/24'] });
  const snapshot = {
    links: [{ index: 2, name: 'eth0', mtu: 1500, mac: null, up: true }, { index: 5, name: 'docker0', mtu: 1450, mac: null, up: true }],
    addrs: [{ index: 2, address: '192.0.2.11', prefixLen: 24 }, { index: 5, address: '10.244.3.1', prefixLen: 24 }],
    routes: [
      { dst: '0.0.0.0/0', index: 2, gateway: '192.0.2.1', table: 254, protocol: 3 },
      { dst: '10.50.0.0/16', index: 2, gateway: '192.0.2.1', table: 254, protocol: 3 },
      { dst: '10.244.7.0/24', index: 2, gateway: '192.0.2.17', table: 254, protocol: 3 },
      { dst: '10.244.8.0/24', index: 9, gateway: '10.244.8.0', table: 254, protocol: 87 },
    ],
  };
  const check = (net: string, etcd: string[] = []): string | null =>
    networkConflict(IPNet.v4(net), { snapshot, underlay, etcd: etcd.map((e) => IPAddr.v4(e)), subnetLen: 24 });
  assert.equal(check('10.244.0.0/16'), null, 'docker0 inside the Network, a flannel host-gw peer route, weft\'s own route: fine');
  assert.match(String(check('192.0.0.0/16')), /overlaps 192\.0\.2\.0\/24 on eth0 \(the underlay interface/);
  assert.match(String(check('10.50.0.0/16')), /overlaps the route 10\.50\.0\.0\/16 via 192\.0\.2\.1 dev eth0/);
  assert.match(String(check('10.0.0.0/8')), /overlaps the route 10\.50\.0\.0\/16/);
  assert.match(String(check('172.16.0.0/16', ['172.16.0.5'])), /holds 172\.16\.0\.5, an etcd endpoint/);
});

test('config: 0.0.0.0/0 and Networks over special ranges are refused; diffConfigs names each changed field', () => {
  assert.throws(() => parseNetworkConfig('{"Network":"0.0.0.0/0"}'), /Network: 0\.0\.0\.0\/0 covers every address/);
  assert.throws(() => parseNetworkConfig('{"Network":"127.0.0.0/16"}'), /overlaps 127\.0\.0\.0\/8 \(a loopback address\)/);
  assert.throws(() => parseNetworkConfig('{"Network":"224.0.0.0/8"}'), /multicast/);
  const a = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
  const b = parseNetworkConfig('{"Network":"10.245.0.0/16","Backend":{"Type":"vxlan","VNI":4,"DirectRouting":true}}');
  assert.deepEqual(diffConfigs(a, b), [
    'Network: 10.244.0.0/16 -> 10.245.0.0/16',
    'SubnetMin: 10.244.1.0 -> 10.245.1.0',
    'SubnetMax: 10.244.255.0 -> 10.245.255.0',
    'Backend.VNI: 1 -> 4',
    'Backend.DirectRouting: false -> true',
  ]);
  assert.deepEqual(diffConfigs(a, a), []);
});

test('the route guard refuses subnets over the host\'s addresses, connected networks, gateways and etcd', () => {
  const g = new RouteGuard([
    { net: IPNet.v4('192.0.2.11/32'), what: '192.0.2.11, an address of eth0' },
    { net: IPNet.v4('192.0.2.0/24'), what: '192.0.2.0/24, the connected network of eth0' },
    { net: IPNet.v4('198.51.100.7/32'), what: '198.51.100.7, an etcd endpoint' },
  ]);
  assert.equal(g.refuse(IPNet.v4('10.244.5.0/24')), null);
  assert.match(String(g.refuse(IPNet.v4('192.0.2.0/24'))), /would shadow 192\.0\.2\.11, an address of eth0/);
  assert.match(String(g.refuse(IPNet.v4('198.51.100.0/24'))), /etcd endpoint/);
  assert.match(String(g.refuse(IPNet.v4('0.0.0.0/0'))), /would shadow/);
  // The edges of a protected network: its neighbours are free, its last address and its halves are not.
  assert.equal(g.refuse(IPNet.v4('192.0.1.0/24')), null);
  assert.equal(g.refuse(IPNet.v4('192.0.3.0/24')), null);
  assert.match(String(g.refuse(IPNet.v4('192.0.2.255/32'))), /would shadow 192\.0\.2\.0\/24, the connected network/);
  assert.match(String(g.refuse(IPNet.v4('192.0.2.128/25'))), /would shadow 192\.0\.2\.0\/24, the connected network/);
  assert.equal(g.refuse(IPNet.v4('255.255.255.0/24')), null);
  assert.match(String(new RouteGuard([{ net: IPNet.v4('0.0.0.0/0'), what: 'everything' }]).refuse(IPNet.v4('255.255.255.255/32'))), /everything/);
});

test('backoff doubles from the initial delay up to the ceiling, jittered within the upper half, and resets', () => {
  const b = new Backoff({ initialMs: 200, maxMs: 30_000, random: () => 1 });
  const top = Array.from({ length: 12 }, () => b.next());
  assert.deepEqual(top, [200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000, 30000]);
  const low = new Backoff({ initialMs: 200, random: () => 0 });
  assert.deepEqual([low.next(), low.next(), low.next()], [100, 200, 400]);
  b.reset();
  assert.equal(b.next(), 200);
  const spread = new Set(Array.from({ length: 50 }, () => new Backoff().next()));
  assert.ok(spread.size > 10, 'jitter spreads agents that failed together');
});
