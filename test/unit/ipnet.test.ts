// IPNet's containment for IPv4 is computed in numbers (no BigInt made for
// each lease a start checks): it must answer as the masks do, at every
// prefix length, with host bits set or not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IPNet } from 'weft/core/ipnet.js';

/** The reference: masks over bigints. */
function inside(net: IPNet, value: bigint): boolean {
  const bits = BigInt(net.bits);
  const mask = ((1n << bits) - 1n) ^ ((1n << (bits - BigInt(net.prefixLen))) - 1n);
  return (value & mask) === (net.base & mask);
}

test('IPv4 containment in numbers answers as the masks do, at every prefix length', () => {
  const addrs = ['0.0.0.0', '0.0.0.1', '9.255.255.255', '10.0.0.0', '10.0.0.1', '10.244.3.0', '10.244.3.255', '10.244.4.0', '10.255.255.255', '11.0.0.0', '127.0.0.1', '192.0.2.60', '255.255.255.254', '255.255.255.255'];
  const values = addrs.map((a) => IPNet.v4(`${a}/32`).base);
  for (let len = 0; len <= 32; len++) {
    for (const a of addrs) {
      const net = new IPNet(4, IPNet.v4(`${a}/32`).base, len);
      for (const v of values) assert.equal(net.containsIP(v), inside(net, v), `${a}/${len} holds ${v}`);
      for (let inner = 0; inner <= 32; inner++) {
        for (const b of addrs) {
          const other = new IPNet(4, IPNet.v4(`${b}/32`).base, inner);
          const want = inner >= len && inside(net, other.base);
          assert.equal(net.contains(other), want, `${net} contains ${other}`);
          assert.equal(net.overlaps(other), want || (len >= inner && inside(other, net.base)), `${net} overlaps ${other}`);
        }
      }
    }
  }
});

test('IPv6 containment stays in bigints, and the families never hold each other', () => {
  const net = IPNet.parse('fd00:10:244::/48')!;
  assert.equal(net.contains(IPNet.parse('fd00:10:244:3::/64')!), true);
  assert.equal(net.contains(IPNet.parse('fd00:10:245::/64')!), false);
  assert.equal(net.containsIP(IPNet.parse('fd00:10:244:ffff::1/128')!.base), true);
  assert.equal(IPNet.parse('0.0.0.0/0')!.contains(IPNet.parse('::/128')!), false);
  assert.equal(IPNet.parse('::/0')!.contains(IPNet.parse('10.0.0.0/8')!), false);
});
