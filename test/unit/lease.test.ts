// Lease keys and values, byte for byte as flannel writes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeLeaseAttrs, formatSubnetKey, parseLeaseAttrs, parseSubnetKey, subnetKey4Packed, subnetKey4PackedIn } from 'weft/subnet/lease.js';
import { WeftError } from 'weft/core/errors.js';
import { IPNet } from 'weft/core/ipnet.js';

test('keys: IPv4 and dual-stack parse and format back', () => {
  const k = parseSubnetKey('10.244.3.0-24');
  assert.equal(k?.subnet?.toString(), '10.244.3.0/24');
  assert.equal(k?.subnetV6, undefined);
  assert.equal(formatSubnetKey(k!), '10.244.3.0-24');
  const d = parseSubnetKey('10.244.3.0-24&fd00:10:244:3::-64');
  assert.equal(d?.subnet?.toString(), '10.244.3.0/24');
  assert.equal(d?.subnetV6?.toString(), 'fd00:10:244:3::/64');
  assert.equal(formatSubnetKey(d!), '10.244.3.0-24&fd00:10:244:3::-64');
});

test('keys: malformed names are not leases', () => {
  for (const bad of ['10.244.3.0', '10.244.3.0-33', '10.244.3.1-24', '10.244.3.128-24', '10.244.3.0-', '10.244.3.0-2x', '010.244.3.0-24', 'garbage', '10.244.3.0-24&zz::-64', '10.244.3.0-24&fd00::1-64', 'x10.244.3.0-24', '300.1.1.0-24']) {
    assert.equal(parseSubnetKey(bad), null, bad);
  }
});

test('keys: every prefix length and address edge reads as IPNet.parse reads the CIDR', () => {
  for (const name of ['0.0.0.0-0', '10.0.0.0-8', '10.255.255.0-24', '255.255.255.255-32', '10.244.3.0-25', '10.244.3.128-25', '192.0.2.7-32', '192.0.2.7-31', '10.244.3.0-7']) {
    const cidr = IPNet.parse(name.replace('-', '/'));
    const want = cidr && cidr.isNetworkAddress() ? cidr.toString() : null;
    assert.equal(parseSubnetKey(name)?.subnet?.toString() ?? null, want, name);
  }
});

test('keys: an IPv4 key read from the bytes etcd sent is the key read from its string', () => {
  const names = ['10.244.3.0-24', '0.0.0.0-0', '255.255.255.255-32', '10.0.0.0-8', '10.244.3.0-07', '10.244.3.0-024', '10.244.3.0-33', '10.244.3.1-24',
    '10.244.3.0', '10.244.3.0-', '-24', '10.244.3.0--24', '10-244.3.0-24', '010.244.3.0-24', '10.244.3.0-2x', '10.244.3.0-24&fd00::-64', '256.0.0.0-8', '1.2.3-24', ''];
  // Each key in the middle of other bytes, as in a page: the bounds, not the buffer's ends, delimit it.
  const page = Buffer.from(`xx${names.join('|')}yy`, 'latin1');
  let at = 2;
  for (const name of names) {
    const want = subnetKey4Packed(name);
    assert.equal(subnetKey4PackedIn(page, at, at + name.length), want, name);
    // -1 leaves the key to the pattern (parseSubnetKey); a number is the key's subnet.
    if (want >= 0) assert.equal(IPNet.network4(Math.floor(want / 64), want % 64).toString(), parseSubnetKey(name)?.subnet?.toString(), name);
    at += name.length + 1;
  }
});

test('values: each backend encodes exactly as flannel', () => {
  assert.equal(
    encodeLeaseAttrs({ PublicIP: '192.0.2.11', PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:ff' } }),
    '{"PublicIP":"192.0.2.11","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}}',
  );
  assert.equal(encodeLeaseAttrs({ PublicIP: '192.0.2.11', PublicIPv6: null, BackendType: 'host-gw' }), '{"PublicIP":"192.0.2.11","PublicIPv6":null,"BackendType":"host-gw"}');
  assert.equal(encodeLeaseAttrs({ PublicIP: '192.0.2.11', PublicIPv6: null, BackendType: 'ipip' }), '{"PublicIP":"192.0.2.11","PublicIPv6":null,"BackendType":"ipip"}');
  assert.equal(encodeLeaseAttrs({ PublicIP: '192.0.2.11', PublicIPv6: null }), '{"PublicIP":"192.0.2.11","PublicIPv6":null}');
});

test('values: round trip keeps unknown fields written by others', () => {
  const text = '{"PublicIP":"192.0.2.12","PublicIPv6":"2001:db8::12","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:12"},"BackendV6Data":{"VNI":1,"VtepMAC":"02:00:00:00:00:13"},"Annotations":{"team":"a"}}';
  const attrs = parseLeaseAttrs(text);
  assert.deepEqual(attrs.extra, { Annotations: { team: 'a' } });
  assert.equal(encodeLeaseAttrs(attrs), text);
});

test('values: what is not a lease is rejected with the reason', () => {
  assert.throws(() => parseLeaseAttrs('not json'), WeftError);
  assert.throws(() => parseLeaseAttrs('[1]'), /not a JSON object/);
  assert.throws(() => parseLeaseAttrs('{"PublicIP":"nope"}'), /PublicIP "nope" is not an IPv4 address/);
  assert.throws(() => parseLeaseAttrs('{"PublicIP":"192.0.2.1","PublicIPv6":"1.2.3.4"}'), /PublicIPv6/);
  assert.equal(parseLeaseAttrs('{"PublicIP":"192.0.2.1"}').PublicIPv6, null);
});
