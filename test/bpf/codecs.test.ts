// The map codecs on their own: exact bytes for a known value, round trips,
// and errors that name the field. (schema.test.ts ties them to the kernel.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  C_ENUMS,
  STATS_ENTRIES,
  decodeConfig,
  decodeCounter,
  decodeLpmKey,
  decodePeer,
  dropKey,
  encodeConfig,
  encodeLocalPeer,
  encodeLpmKey,
  encodePeer,
  statsIndex,
  u32Key,
} from 'weft/dataplane/ebpf/maps.js';
import { IPAddr, IPNet } from 'weft/core/ipnet.js';
import type { LocalNetwork, PeerRoute } from 'weft/core/model.js';
import { addr, localNetwork, net, route as parsed, type LocalText } from '../../lab/model.js';

test('codecs: weft_lpm_key bytes and round trip', () => {
  assert.deepEqual(encodeLpmKey(net('10.244.3.0/24')), Buffer.from([24, 0, 0, 0, 10, 244, 3, 0]));
  assert.equal(decodeLpmKey(encodeLpmKey(net('10.244.3.0/24'))).toString(), '10.244.3.0/24');
  assert.throws(() => encodeLpmKey(net('10.244.3.1/24')), /weft_lpm_key: "10.244.3.1\/24" has host bits set/);
  assert.throws(() => encodeLpmKey(net('10.244.3.0/33')), /not an IPv4 CIDR/);
});

test('codecs: weft_peer bytes for a vxlan peer', () => {
  const route: PeerRoute = parsed({ subnet: '10.244.3.0/24', publicIP: '192.0.2.21', encap: 'vxlan', directRouting: false, vni: 0x010203, vtepMAC: 'c6:d2:32:6f:8f:44' });
  assert.deepEqual(encodePeer(route), Buffer.from([192, 0, 2, 21, 3, 2, 1, 0, 0xc6, 0xd2, 0x32, 0x6f, 0x8f, 0x44, 1, 0]));
});

test('codecs: weft_peer round trips for every kind of peer', () => {
  const routes: PeerRoute[] = ([
    { subnet: '10.244.3.0/24', publicIP: '192.0.2.21', encap: 'vxlan', directRouting: false, vni: 1, vtepMAC: 'c6:d2:32:6f:8f:44' },
    { subnet: '10.244.4.0/24', publicIP: '192.0.2.22', encap: 'direct', directRouting: true, vni: 7, vtepMAC: '02:00:00:00:00:01' },
    { subnet: '10.244.5.0/24', publicIP: '198.51.100.5', encap: 'ipip', directRouting: false },
    { subnet: '10.244.6.0/24', publicIP: '192.0.2.23', encap: 'direct', directRouting: true },
    { subnet: '10.244.7.0/24', publicIP: '192.0.2.24', encap: 'udp', directRouting: false },
    { subnet: '10.244.8.0/24', publicIP: '192.0.2.25', encap: 'direct', directRouting: false },
  ] as const).map((r) => parsed({ ...r }));
  for (const r of routes) {
    const v = encodePeer(r);
    assert.deepEqual(decodePeer(encodeLpmKey(r.subnet), v), { route: r, local: false }, r.subnet.toString());
    if (r.directRouting) assert.equal(v[14], 4, `${r.subnet}: DirectRouting is forwarded directly`);
  }
  const local = decodePeer(encodeLpmKey(net('10.244.1.0/24')), encodeLocalPeer(addr('192.0.2.11')));
  assert.equal(local.local, true);
});

test('codecs: weft_peer errors name the peer and the field', () => {
  const base = { subnet: '10.244.3.0/24', publicIP: '192.0.2.21', directRouting: false };
  assert.throws(() => encodePeer(parsed({ ...base, encap: 'vxlan', vni: 1 })), /weft_peer 10.244.3.0\/24: a vxlan peer needs its vtepMAC/);
  assert.throws(() => encodePeer(parsed({ ...base, encap: 'vxlan', vni: 1 << 24, vtepMAC: '02:00:00:00:00:01' })), /vni 16777216 is not a VNI/);
  // A PeerRoute holds parsed addresses: a bad PublicIP is refused where the text enters (lease decode), naming the field.
  assert.throws(() => parsed({ ...base, encap: 'ipip', publicIP: '192.0.2' }), /publicIP: "192.0.2" is not an IPv4 address/);
  assert.throws(() => encodePeer(parsed({ ...base, encap: 'udp', directRouting: true })), /a DirectRouting peer is forwarded directly \(encap 'direct'\), not with udp/);
  assert.throws(() => encodePeer(parsed({ ...base, encap: 'vxlan', vni: 1, vtepMAC: '02:00:00:00:00:0g' })), /^Error: weft_peer 10.244.3.0\/24: vtepMAC: "02:00:00:00:00:0g" is not a MAC address$/);
  assert.throws(() => encodePeer({ ...parsed({ ...base, encap: 'ipip' }), subnet: net('10.244.3.1/24') }), /^Error: weft_peer 10.244.3.1\/24: "10.244.3.1\/24" has host bits set$/);
  assert.throws(() => encodePeer({ ...parsed({ ...base, encap: 'ipip' }), publicIP: IPAddr.parse('2001:db8::1')! }), /^Error: weft_peer 10.244.3.0\/24: publicIP: 2001:db8::1 is not an IPv4 address$/);
  assert.throws(() => encodePeer({ ...parsed({ ...base, encap: 'ipip' }), subnet: IPNet.parse('fd00::/64')! }), /^Error: weft_peer fd00::\/64: fd00::\/64 is not an IPv4 subnet$/);
});

function local(backend: LocalNetwork['backend']): LocalNetwork {
  return localNetwork({
    backend,
    network: '10.244.0.0/16',
    subnet: '10.244.3.0/24',
    publicIP: '203.0.113.9',
    iface: { name: 'eth0', index: 2, mtu: 1500, address: '192.0.2.11', mac: '02:11:11:11:11:11', networks: ['192.0.2.0/24'] },
    mtu: 1450,
    vxlan: { vni: 1, port: 0, gbp: false, vtepMAC: '02:aa:aa:aa:aa:aa', learning: false },
    udp: { port: 0 },
    pinDir: '/sys/fs/bpf/weft',
  });
}

test('codecs: weft_config bytes for vxlan', () => {
  const b = encodeConfig(local('vxlan'), { overlayIfindex: 9, overlayMAC: '02:aa:aa:aa:aa:aa' });
  const want = Buffer.concat([
    Buffer.from([192, 0, 2, 11, 10, 244, 3, 0, 10, 244, 0, 0, 24, 16, 1, 1]),
    Buffer.from([1, 0, 0, 0, 0x18, 0x21, 0xdc, 0x05, 2, 0, 0, 0, 9, 0, 0, 0]),
    Buffer.from([0x02, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0x02, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0x02, 0x11, 0x11, 0x11, 0x11, 0x11, 0, 0]),
    Buffer.from([0, 0, 0, 0]),
  ]);
  assert.deepEqual(b, want);
  // Conntrack's facts for the fast path: a flag, and the established timeout in ms at the end.
  const ct = encodeConfig(local('vxlan'), { overlayIfindex: 9, overlayMAC: '02:aa:aa:aa:aa:aa', ctFollows: true, ctTimeoutMs: 432_000_000 });
  assert.equal(ct[15], 1 | 0x20);
  assert.deepEqual(ct.subarray(52), Buffer.from([0x00, 0xcc, 0xbf, 0x19]));
  assert.deepEqual([decodeConfig(ct).ctFollows, decodeConfig(ct).ctTimeoutMs], [true, 432_000_000]);
});

test('codecs: weft_config decodes what it encodes, with each backend default port', () => {
  const ports = { vxlan: 8472, udp: 8285, ipip: 0, 'host-gw': 0 } as const;
  const encaps = { vxlan: 'vxlan', udp: 'udp', ipip: 'ipip', 'host-gw': 'direct' } as const;
  for (const backend of ['vxlan', 'udp', 'ipip', 'host-gw'] as const) {
    const d = decodeConfig(encodeConfig(local(backend), { overlayIfindex: 9, overlayMAC: '02:bb:bb:bb:bb:bb' }, false));
    assert.equal(d.backend, encaps[backend]);
    assert.equal(d.port, ports[backend], `${backend} port`);
    assert.equal(d.ready, false);
    assert.equal(d.address, '192.0.2.11', 'the interface address, not the advertised PublicIP');
    assert.equal(d.subnet, '10.244.3.0/24');
    assert.equal(d.network, '10.244.0.0/16');
    assert.equal(d.underlayMTU, 1500);
    assert.equal(d.underlayIfindex, 2);
    assert.equal(d.overlayIfindex, 9);
    assert.equal(d.overlayMAC, '02:bb:bb:bb:bb:bb');
    assert.equal(d.underlayMAC, '02:11:11:11:11:11');
    assert.equal(d.vtepMAC, backend === 'vxlan' ? '02:aa:aa:aa:aa:aa' : '00:00:00:00:00:00');
  }
  const custom = local('udp');
  custom.udp = { port: 9000 };
  assert.equal(decodeConfig(encodeConfig(custom, { overlayIfindex: 9, overlayMAC: '02:bb:bb:bb:bb:bb' })).port, 9000);
  assert.throws(() => encodeConfig({ ...local('vxlan'), vxlan: undefined }, { overlayIfindex: 9, overlayMAC: '02:bb:bb:bb:bb:bb' }), /weft_config: the vxlan backend needs/);
  assert.throws(() => encodeConfig(local('ipip'), { overlayIfindex: 9, overlayMAC: 'nope' }), /weft_config: overlay MAC: "nope" is not a MAC address/);
});

test('codecs: counters sum over CPUs; stats and drop indexes', () => {
  const b = Buffer.alloc(3 * 16);
  [1n, 2n, 3n].forEach((n, i) => {
    b.writeBigUInt64LE(n, i * 16);
    b.writeBigUInt64LE(n * 100n, i * 16 + 8);
  });
  assert.deepEqual(decodeCounter(b), { packets: 6n, bytes: 600n });
  assert.throws(() => decodeCounter(Buffer.alloc(20)), /not a whole number of per-CPU counters/);
  assert.equal(statsIndex('egress', 'none'), 0);
  assert.equal(statsIndex('ingress', 'direct'), STATS_ENTRIES - 1);
  // The reasons' names and values are the header's (contract.test.ts, schema.test.ts): here only the key the codec makes of one.
  assert.deepEqual(dropKey('unknown_peer'), u32Key(C_ENUMS.weft_drop_reason.WEFT_DROP_UNKNOWN_PEER));
});

test('codecs: weft_config flags for the programs\' shortcuts, and the udp decap port', () => {
  const dev = { overlayIfindex: 9, overlayMAC: '02:bb:bb:bb:bb:bb' };
  const b = encodeConfig(local('udp'), { ...dev, podForward: true, decapPort: 8285 });
  assert.equal(b[15], 1 | 2 | 4, 'READY | POD_FORWARD | KERNEL_DECAP');
  assert.equal(b.readUInt16LE(50), 8285);
  const d = decodeConfig(b);
  assert.equal(d.podForward, true);
  assert.equal(d.decapPort, 8285);
  const plain = decodeConfig(encodeConfig(local('vxlan'), { ...dev, podForward: false }));
  assert.equal(plain.podForward, false);
  assert.equal(plain.decapPort, 0);
  const open = encodeConfig(local('vxlan'), { ...dev, anySender: true });
  assert.equal(open[15], 1 | 16, 'READY | ANY_SENDER');
  assert.equal(decodeConfig(open).anySender, true);
  assert.equal(plain.anySender, false);
  assert.throws(() => encodeConfig(local('vxlan'), { ...dev, decapPort: 4790 }), /weft_config: decapPort is for the udp backend, not vxlan/);
  assert.throws(() => encodeConfig(local('udp'), { ...dev, decapPort: 70000 }), /weft_config: decapPort: 70000 does not fit 16 bits/);
});
