import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addSubnet4, subnets4, fitsRange, freeSubnets, freeSubnets4Of, keySplits, overlaps4, pickRandom, type Subnets4 } from 'weft/subnet/allocator.js';
import { parseNetworkConfig } from 'weft/config/network.js';
import { IPNet } from 'weft/core/ipnet.js';

const range = parseNetworkConfig('{"Network":"10.244.0.0/16","SubnetMin":"10.244.10.0","SubnetMax":"10.244.14.0"}').ipv4;

test('free subnets run from SubnetMin to SubnetMax and skip taken ones', () => {
  const taken = ['10.244.11.0/24', '10.244.13.0/24'].map((s) => IPNet.parse(s)!);
  assert.deepEqual(freeSubnets(range, taken).map(String), ['10.244.10.0/24', '10.244.12.0/24', '10.244.14.0/24']);
  assert.deepEqual(freeSubnets(range, [], 2).map(String), ['10.244.10.0/24', '10.244.11.0/24']);
});

test('the first 100 free subnets are the candidates', () => {
  const big = parseNetworkConfig('{"Network":"10.0.0.0/8"}').ipv4;
  const free = freeSubnets(big, []);
  assert.equal(free.length, 100);
  assert.equal(free[99].toString(), '10.0.100.0/24');
  assert.equal(pickRandom(free, () => 0.999)?.toString(), '10.0.100.0/24');
  assert.equal(pickRandom([], () => 0), undefined);
});

test('a lease fits when it is a subnet of the Network with the configured length', () => {
  assert.equal(fitsRange(IPNet.parse('10.244.3.0/24')!, range), true);
  assert.equal(fitsRange(IPNet.parse('10.244.3.0/25')!, range), false);
  assert.equal(fitsRange(IPNet.parse('10.245.3.0/24')!, range), false);
  // Outside SubnetMin..SubnetMax still fits: a reservation may sit anywhere in the Network.
  assert.equal(fitsRange(IPNet.parse('10.244.200.0/24')!, range), true);
});

test('IPv4 subnets held as numbers: the same free subnets and overlaps as IPNets give', () => {
  const nets = ['10.244.11.0/24', '10.244.13.0/24', '10.0.0.0/8', '192.0.2.0/25', '0.0.0.0/0', '10.244.12.128/25'].map((s) => IPNet.parse(s)!);
  const asNumbers = (list: IPNet[]): Subnets4 => {
    const out: Subnets4 = subnets4(list.length);
    for (const n of list) addSubnet4(out, Number(n.network), n.prefixLen);
    return out;
  };
  for (const taken of [nets.slice(0, 2), nets.slice(0, 2).concat(nets[5]), [nets[3]]]) {
    assert.deepEqual(freeSubnets4Of(range, asNumbers(taken)).map(String), freeSubnets(range, taken).map(String));
  }
  const probes = ['10.244.11.0/24', '10.244.12.0/24', '10.244.12.0/25', '192.0.2.128/25', '192.0.2.0/24', '172.16.0.0/12'].map((s) => IPNet.parse(s)!);
  for (const held of nets) {
    for (const p of probes) assert.equal(overlaps4(asNumbers([held]), p), held.overlaps(p), `${held} and ${p}`);
  }
});

test('free IPv4 subnets from numbers: taken ones in any order, twice, or not on a subnet boundary', () => {
  const big = parseNetworkConfig('{"Network":"10.0.0.0/8"}').ipv4;
  const taken = ['10.0.3.0/24', '10.0.1.0/24', '10.0.3.0/24', '10.0.2.128/25', '10.0.5.0/24', '10.0.4.0/24', '9.0.0.0/8', '11.0.0.0/24'].map((s) => IPNet.parse(s)!);
  const held = subnets4(taken.length);
  for (const n of taken) addSubnet4(held, Number(n.network), n.prefixLen);
  assert.deepEqual(freeSubnets4Of(big, held, 4).map(String), freeSubnets(big, taken, 4).map(String));
  assert.deepEqual(freeSubnets4Of(big, held, 4).map(String), ['10.0.2.0/24', '10.0.6.0/24', '10.0.7.0/24', '10.0.8.0/24']);
  // The caller's numbers are left as they were.
  assert.deepEqual([...held.network.subarray(0, 3)], taken.slice(0, 3).map((n) => Number(n.network)));
  // Every subnet but the last taken: the last is the one free.
  const all = subnets4(65_535);
  for (let i = 65_534; i >= 0; i--) addSubnet4(all, Number(big.network.network) + (i + 1) * 256, 24);
  const last = freeSubnets4Of(parseNetworkConfig('{"Network":"10.0.0.0/8","SubnetMin":"10.0.0.0"}').ipv4, all);
  assert.deepEqual(last.map(String), ['10.0.0.0/24']);
});

test('key splits cut a large Network\'s subnets into near-even runs in key (text) order; a small Network is not cut', () => {
  const big = parseNetworkConfig('{"Network":"10.0.0.0/8"}').ipv4;
  const cuts = keySplits(big, 4, 10_000);
  assert.equal(cuts.length, 3);
  // Every subnet's key name, in the order etcd keeps them.
  const names: string[] = [];
  for (let i = 0; i < 65_536; i++) names.push(`10.${i >> 8}.${i & 255}.0-24`);
  names.sort();
  assert.deepEqual([...cuts].sort(), cuts, 'the cuts are in key order');
  const bounds = [0, ...cuts.map((c) => names.filter((n) => n < c).length), names.length];
  for (let k = 1; k < bounds.length; k++) {
    const share = (bounds[k] - bounds[k - 1]) / names.length;
    assert.ok(Math.abs(share - 0.25) < 0.02, `piece ${k} holds ${(share * 100).toFixed(1)}% of the subnets`);
  }
  // In text order, not numeric: the first cut is not 10.64.0.0.
  assert.notEqual(cuts[0], '10.64.0.0-24');
  assert.deepEqual(keySplits(parseNetworkConfig('{"Network":"10.244.0.0/16"}').ipv4, 4, 10_000), [], '256 subnets: one piece');
  assert.deepEqual(keySplits(big, 1, 0), []);
});
