// Network config: flannel's defaults, and one clear error per kind of mistake.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { effectiveConfig, parseNetworkConfig } from 'weft/config/network.js';
import { WeftError } from 'weft/core/errors.js';

function errorOf(json: string): WeftError {
  try {
    parseNetworkConfig(json);
  } catch (err) {
    assert.ok(err instanceof WeftError && err.kind === 'config' && err.subject.field, `expected a config error naming its field, got ${err}`);
    return err;
  }
  assert.fail(`accepted ${json}`);
}

test('defaults: /16 gets /24 subnets from the second to the last', () => {
  const c = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
  assert.deepEqual(effectiveConfig(c), {
    Network: '10.244.0.0/16',
    SubnetLen: 24,
    SubnetMin: '10.244.1.0',
    SubnetMax: '10.244.255.0',
    EnableIPv4: true,
    EnableIPv6: false,
    Backend: { Type: 'vxlan', VNI: 1, Port: 8472, GBP: false, Learning: false, DirectRouting: false, MTU: 0 },
  });
});

test('defaults: SubnetLen is 24 up to /22 and prefix+2 beyond', () => {
  assert.equal(parseNetworkConfig('{"Network":"10.244.0.0/22"}').ipv4.subnetLen, 24);
  assert.equal(parseNetworkConfig('{"Network":"10.244.0.0/23"}').ipv4.subnetLen, 25);
  assert.equal(parseNetworkConfig('{"Network":"10.244.0.0/28"}').ipv4.subnetLen, 30);
});

test('a config without Backend runs udp, as flannel does', () => {
  const c = parseNetworkConfig('{"Network":"10.1.0.0/16"}');
  assert.equal(c.backend.type, 'udp');
  assert.equal(c.backend.port, 8285);
  assert.equal(c.backendDefaulted, true);
});

test('Backend.Type is matched case-insensitively; udp and ipip options', () => {
  assert.equal(parseNetworkConfig('{"Network":"10.1.0.0/16","Backend":{"Type":"VXLAN","VNI":4,"Port":4789}}').backend.port, 4789);
  assert.equal(parseNetworkConfig('{"Network":"10.1.0.0/16","Backend":{"Type":"Host-GW"}}').backend.type, 'host-gw');
  assert.equal(parseNetworkConfig('{"Network":"10.1.0.0/16","Backend":{"Type":"udp","Port":9000}}').backend.port, 9000);
  assert.equal(parseNetworkConfig('{"Network":"10.1.0.0/16","Backend":{"Type":"ipip","DirectRouting":true}}').backend.directRouting, true);
});

test('explicit SubnetLen, SubnetMin and SubnetMax are kept', () => {
  const c = parseNetworkConfig('{"Network":"10.244.0.0/16","SubnetLen":26,"SubnetMin":"10.244.1.0","SubnetMax":"10.244.2.192"}');
  assert.equal(c.ipv4.subnetLen, 26);
  assert.equal(c.ipv4.subnetMin.toString(), '10.244.1.0/26');
  assert.equal(c.ipv4.subnetMax.toString(), '10.244.2.192/26');
});

test('IPv6 fields: defaults and checks', () => {
  const c = parseNetworkConfig('{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:10:244::/56"}');
  assert.equal(c.ipv6?.subnetLen, 64);
  assert.equal(c.ipv6?.subnetMin.ip, 'fd00:10:244:1::');
  assert.match(errorOf('{"Network":"10.244.0.0/16","EnableIPv6":true}').message, /IPv6Network: missing/);
  assert.match(errorOf('{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"10.0.0.0/8"}').message, /IPv6Network: .* not an IPv6 network/);
});

const cases: Array<[string, string, RegExp]> = [
  ['bad JSON', '{"Network": "10.244.0.0/16",', /\(document\): not valid JSON/],
  ['not an object', '["10.244.0.0/16"]', /\(document\): must be a JSON object/],
  ['missing Network', '{"Backend":{"Type":"vxlan"}}', /Network: missing: please define a correct Network parameter/],
  ['malformed Network', '{"Network":"10.244.0.0"}', /Network: "10.244.0.0" is not an IPv4 network in CIDR form/],
  ['Network with host bits', '{"Network":"10.244.1.0/16"}', /Network: 10.244.1.0\/16 has host bits set; did you mean 10.244.0.0\/16\?/],
  ['Network not a string', '{"Network":42}', /Network: must be a string/],
  ['network too small', '{"Network":"10.244.0.0/29"}', /Network: network 10.244.0.0\/29 is too small: the minimum useful network prefix is \/28/],
  ['SubnetLen /31', '{"Network":"10.244.0.0/16","SubnetLen":31}', /SubnetLen: SubnetLen must be less than \/31/],
  ['SubnetLen not an integer', '{"Network":"10.244.0.0/16","SubnetLen":"24"}', /SubnetLen: must be an integer from 0 to 32/],
  ['fewer than four subnets', '{"Network":"10.244.0.0/16","SubnetLen":17}', /SubnetLen: network 10.244.0.0\/16 must be able to accommodate at least four subnets/],
  ['SubnetMin outside the network', '{"Network":"10.244.0.0/16","SubnetMin":"10.245.0.0"}', /SubnetMin: 10.245.0.0 is not in the range of the network 10.244.0.0\/16/],
  ['SubnetMin off the boundary', '{"Network":"10.244.0.0/16","SubnetMin":"10.244.1.128"}', /SubnetMin: 10.244.1.128 is not on a SubnetLen boundary/],
  ['SubnetMax outside the network', '{"Network":"10.244.0.0/16","SubnetMax":"10.0.0.0"}', /SubnetMax: 10.0.0.0 is not in the range of the network/],
  ['SubnetMax off the boundary', '{"Network":"10.244.0.0/16","SubnetMax":"10.244.9.1"}', /SubnetMax: 10.244.9.1 is not on a SubnetLen boundary/],
  ['SubnetMin above SubnetMax', '{"Network":"10.244.0.0/16","SubnetMin":"10.244.9.0","SubnetMax":"10.244.8.0"}', /SubnetMin: 10.244.9.0 is above SubnetMax/],
  ['unknown backend type', '{"Network":"10.244.0.0/16","Backend":{"Type":"wireguard2"}}', /Backend.Type: unknown backend type "wireguard2"/],
  ['Backend without Type', '{"Network":"10.244.0.0/16","Backend":{"VNI":1}}', /Backend.Type: missing/],
  ['Backend not an object', '{"Network":"10.244.0.0/16","Backend":"vxlan"}', /Backend: must be an object/],
  ['VNI out of range', '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":16777216}}', /Backend.VNI: must be an integer from 0 to 16777215/],
  ['Port not a number', '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","Port":"8472"}}', /Backend.Port: must be an integer from 0 to 65535/],
  ['udp Port out of range', '{"Network":"10.244.0.0/16","Backend":{"Type":"udp","Port":70000}}', /Backend.Port: must be an integer/],
  ['DirectRouting not a boolean', '{"Network":"10.244.0.0/16","Backend":{"Type":"ipip","DirectRouting":"yes"}}', /Backend.DirectRouting: must be true or false/],
  ['MTU too small', '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","MTU":100}}', /Backend.MTU: must be at least 576/],
  ['IPv4 disabled', '{"Network":"10.244.0.0/16","EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00::/48"}', /EnableIPv4: false is not supported/],
];

for (const [name, json, re] of cases) {
  test(`invalid config: ${name}`, () => {
    const err = errorOf(json);
    assert.match(err.message, /^invalid network config: /);
    assert.match(err.message, re);
  });
}

test('unknown fields are reported, not fatal', () => {
  const c = parseNetworkConfig('{"Network":"10.244.0.0/16","Subnetlen":24,"Backend":{"Type":"host-gw","VNI":3}}');
  assert.deepEqual(c.unknownFields, ['Subnetlen', 'Backend.VNI']);
});
