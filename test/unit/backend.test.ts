// Backend decisions: what we publish, the pods' MTU, and what each peer needs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createBackend } from 'weft/backend/index.js';
import { VxlanBackend } from 'weft/backend/vxlan.js';
import { stableVtepMAC } from 'weft/core/vtep.js';
import { parseNetworkConfig } from 'weft/config/network.js';
import { encodeLeaseAttrs, parseLeaseAttrs, type Lease } from 'weft/subnet/lease.js';
import { IPAddr, IPNet } from 'weft/core/ipnet.js';
import { iface as parsedIface, route } from '../../lab/model.js';

const iface = parsedIface({ name: 'eth0', index: 2, mtu: 1500, address: '192.0.2.11', mac: '02:00:00:00:00:01', networks: ['192.0.2.0/24'] });

function backendOf(json: string) {
  // A vxlan backend with a VtepMAC of the test's choosing (the agent's is derived from the machine id: stableVtepMAC).
  const config = parseNetworkConfig(json).backend;
  return config.type === 'vxlan' ? new VxlanBackend(config, iface, '02:aa:bb:cc:dd:ee') : createBackend(config, iface, '192.0.2.11');
}

function lease(subnet: string, value: string): Lease {
  const attrs = parseLeaseAttrs(value);
  return { name: subnet.replace('/', '-'), subnet: IPNet.parse(subnet)!, attrs, publicIP: IPAddr.v4(attrs.PublicIP), leaseId: '7', modRevision: 1, createRevision: 1 };
}

test('vxlan publishes VNI and VtepMAC; MTU is interface - 50 unless Backend.MTU says', () => {
  const b = backendOf('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":3}}');
  assert.equal(encodeLeaseAttrs(b.leaseAttrs('192.0.2.11', null)), '{"PublicIP":"192.0.2.11","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":3,"VtepMAC":"02:aa:bb:cc:dd:ee"}}');
  assert.equal(b.podMTU(1500), 1450);
  assert.equal(backendOf('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","MTU":1400}}').podMTU(1500), 1400);
});

test('MTU overheads: ipip 20, udp 28, host-gw 0', () => {
  assert.equal(backendOf('{"Network":"10.244.0.0/16","Backend":{"Type":"ipip"}}').podMTU(1500), 1480);
  assert.equal(backendOf('{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}').podMTU(1500), 1472);
  assert.equal(backendOf('{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}').podMTU(1500), 1500);
});

test('udp and host-gw leases carry what flannel writes', () => {
  assert.equal(encodeLeaseAttrs(backendOf('{"Network":"10.244.0.0/16"}').leaseAttrs('192.0.2.11', null)), '{"PublicIP":"192.0.2.11","PublicIPv6":null}');
  assert.equal(encodeLeaseAttrs(backendOf('{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}').leaseAttrs('192.0.2.11', null)), '{"PublicIP":"192.0.2.11","PublicIPv6":null,"BackendType":"host-gw"}');
});

test('vxlan peers: tunnel, or direct with DirectRouting on our segment', () => {
  const peer = lease('10.244.5.0/24', '{"PublicIP":"192.0.2.12","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0A:00:00:00:00:12"}}');
  const far = lease('10.244.6.0/24', '{"PublicIP":"198.51.100.21","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:00:00:00:00:21"}}');
  const plain = backendOf('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
  assert.deepEqual(plain.peerRoute(peer), route({ subnet: '10.244.5.0/24', publicIP: '192.0.2.12', vni: 1, vtepMAC: '0a:00:00:00:00:12', encap: 'vxlan', directRouting: false }));
  const direct = backendOf('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","DirectRouting":true}}');
  assert.equal((direct.peerRoute(peer) as { encap: string }).encap, 'direct');
  assert.equal((direct.peerRoute(far) as { encap: string }).encap, 'vxlan');
  assert.match((plain.peerRoute(lease('10.244.7.0/24', '{"PublicIP":"192.0.2.13","BackendType":"vxlan","BackendData":{"VNI":1}}')) as { skip: string }).skip, /no valid VtepMAC/);
  assert.match((plain.peerRoute(lease('10.244.7.0/24', '{"PublicIP":"192.0.2.13","BackendType":"host-gw"}')) as { skip: string }).skip, /backend host-gw, this network runs vxlan/);
});

test('host-gw refuses a peer that is not on our L2 segment, as flannel does', () => {
  const b = backendOf('{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}');
  assert.deepEqual(b.peerRoute(lease('10.244.5.0/24', '{"PublicIP":"192.0.2.12","BackendType":"host-gw"}')), route({ subnet: '10.244.5.0/24', publicIP: '192.0.2.12', encap: 'direct', directRouting: false }));
  assert.match((b.peerRoute(lease('10.244.6.0/24', '{"PublicIP":"198.51.100.21","BackendType":"host-gw"}')) as { skip: string }).skip, /not on our L2 segment/);
});

test('ipip with DirectRouting; udp peers have no BackendType', () => {
  const b = backendOf('{"Network":"10.244.0.0/16","Backend":{"Type":"ipip","DirectRouting":true}}');
  assert.equal((b.peerRoute(lease('10.244.5.0/24', '{"PublicIP":"192.0.2.12","BackendType":"ipip"}')) as { encap: string }).encap, 'direct');
  assert.equal((b.peerRoute(lease('10.244.5.0/24', '{"PublicIP":"198.51.100.12","BackendType":"ipip"}')) as { encap: string }).encap, 'ipip');
  const u = backendOf('{"Network":"10.244.0.0/16"}');
  assert.equal((u.peerRoute(lease('10.244.5.0/24', '{"PublicIP":"198.51.100.12","PublicIPv6":null}')) as { encap: string }).encap, 'udp');
});

test('the VtepMAC is stable for a host and differs between hosts', () => {
  const a = stableVtepMAC('192.0.2.11', 1, 'machine-a');
  assert.equal(a, stableVtepMAC('192.0.2.11', 1, 'machine-a'));
  assert.notEqual(a, stableVtepMAC('192.0.2.12', 1, 'machine-a'));
  assert.notEqual(a, stableVtepMAC('192.0.2.11', 1, 'machine-b'));
  assert.match(a, /^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/, 'locally administered unicast');
});
