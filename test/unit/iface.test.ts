// Interface selection, as flanneld chooses: --iface, --iface-regex, default route; --public-ip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { selectInterface, type IfaceSnapshot } from 'weft/agent/iface.js';
import { WeftError } from 'weft/core/errors.js';

const snap: IfaceSnapshot = {
  links: [
    { index: 1, name: 'lo', mtu: 65536, mac: '00:00:00:00:00:00', up: true },
    { index: 2, name: 'eth0', mtu: 1500, mac: '02:00:00:00:00:02', up: true },
    { index: 3, name: 'ens5', mtu: 9000, mac: '02:00:00:00:00:03', up: true },
    { index: 4, name: 'cni0', mtu: 1450, mac: '02:00:00:00:00:04', up: true },
  ],
  addrs: [
    { index: 1, address: '127.0.0.1', prefixLen: 8 },
    { index: 2, address: '192.0.2.11', prefixLen: 24 },
    { index: 3, address: '198.51.100.7', prefixLen: 24 },
    { index: 3, address: '198.51.100.8', prefixLen: 24 },
  ],
  routes: [
    { dst: '192.0.2.0/24', index: 2, gateway: null, table: 254 },
    { dst: '0.0.0.0/0', index: 3, gateway: '198.51.100.1', table: 254 },
  ],
};

test('default: the interface of the default route', () => {
  const s = selectInterface(snap, { iface: [], ifaceRegex: [] });
  assert.equal(s.iface.name, 'ens5');
  assert.equal(s.iface.mtu, 9000);
  assert.equal(s.publicIP, '198.51.100.7');
  assert.deepEqual(s.iface.networks.map(String), ['198.51.100.0/24']);
});

test('--iface by name or address, first match wins; --public-ip overrides', () => {
  assert.equal(selectInterface(snap, { iface: ['eth9', 'eth0'], ifaceRegex: [] }).iface.name, 'eth0');
  const byAddr = selectInterface(snap, { iface: ['198.51.100.8'], ifaceRegex: [] });
  assert.equal(byAddr.iface.name, 'ens5');
  assert.equal(byAddr.publicIP, '198.51.100.8');
  assert.equal(selectInterface(snap, { iface: ['eth0'], ifaceRegex: [], publicIP: '203.0.113.9' }).publicIP, '203.0.113.9');
});

test('--iface-regex over names and addresses', () => {
  assert.equal(selectInterface(snap, { iface: [], ifaceRegex: ['^eth'] }).iface.name, 'eth0');
  assert.equal(selectInterface(snap, { iface: [], ifaceRegex: ['^198\\.51\\.100\\.8$'] }).publicIP, '198.51.100.8');
});

test('mistakes get errors that say what exists', () => {
  assert.throws(() => selectInterface(snap, { iface: ['eth9'], ifaceRegex: [] }), (e: Error) => e instanceof WeftError && e.kind === 'usage' && /--iface eth9: no interface .*interfaces here: lo, eth0, ens5, cni0/.test(e.message));
  assert.throws(() => selectInterface(snap, { iface: ['cni0'], ifaceRegex: [] }), /cni0 has no IPv4 address/);
  assert.throws(() => selectInterface(snap, { iface: [], ifaceRegex: ['('] }), /not a valid regular expression/);
  assert.throws(() => selectInterface({ ...snap, routes: [] }, { iface: [], ifaceRegex: [] }), /no default route/);
  assert.throws(() => selectInterface(snap, { iface: ['eth0'], ifaceRegex: [], publicIP: 'x' }), /--public-ip x: not an IPv4 address/);
});

test("flanneld's order: --iface, then --iface-regex, then --iface-can-reach (the route's interface and source)", () => {
  assert.equal(selectInterface(snap, { iface: ['eth9'], ifaceRegex: ['^ens'] }).iface.name, 'ens5', 'no --iface matched: the regex is tried');
  assert.equal(selectInterface(snap, { iface: [], ifaceRegex: [], ifaceCanReach: '192.0.2.200' }).iface.name, 'eth0', 'on a connected network');
  const viaDefault = selectInterface(snap, { iface: [], ifaceRegex: [], ifaceCanReach: '203.0.113.5' });
  assert.equal(viaDefault.iface.name, 'ens5', 'through the default route');
  assert.equal(viaDefault.publicIP, '198.51.100.7', "the address on the gateway's network");
  assert.equal(selectInterface(snap, { iface: ['eth9'], ifaceRegex: ['^nope'], ifaceCanReach: '192.0.2.5' }).iface.name, 'eth0');
  assert.throws(
    () => selectInterface({ ...snap, routes: [] }, { iface: ['eth9'], ifaceRegex: ['^nope'], ifaceCanReach: '203.0.113.5' }),
    /^.*--iface eth9: no interface has that name or address; --iface-regex \^nope: no interface name or IPv4 address matches; --iface-can-reach 203.0.113.5: no route leads there \(interfaces here: lo, eth0, ens5, cni0\)$/,
  );
  assert.throws(() => selectInterface(snap, { iface: [], ifaceRegex: [], ifaceCanReach: 'eth0' }), /--iface-can-reach eth0: not an IPv4 address/);
});
