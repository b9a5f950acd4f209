// The restore transactions the firewall writes, from what a chain holds now:
// the integration test (test/integration/firewall.test.ts) runs them for real.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IPNet } from 'weft/core/ipnet.js';
import { differences, ensureLines, forwardChain, masqChain, removeLines } from 'weft/firewall/rules.js';

const net6 = IPNet.parse('fd00:10:244::/48')!;
const sub6 = IPNet.parse('fd00:10:244:3::/64')!;

test('IPv6: the multicast exception is ff00::/8; --ip-masq-fully-random-disable drops --random-fully', () => {
  const c = masqChain(net6, sub6, false);
  assert.equal(c.rules[4], '-A FLANNEL-POSTRTG -s fd00:10:244::/48 ! -d ff00::/8 -m comment --comment "flanneld masq" -j MASQUERADE');
  assert.ok(masqChain(net6, sub6, true).rules[5].endsWith('-j MASQUERADE --random-fully'));
});

test('one transaction: the chain declared (flushed) and refilled, one jump, duplicates and foreign jumps deleted', () => {
  const c = forwardChain(IPNet.parse('10.244.0.0/16')!);
  assert.deepEqual(differences(c, { rules: c.rules, jumps: [c.jump] }), []);
  assert.deepEqual(ensureLines(c, { rules: null, jumps: [] }), [':FLANNEL-FWD - [0:0]', ...c.rules, c.jump]);
  const other = '-A FORWARD -i eth9 -j FLANNEL-FWD';
  assert.deepEqual(ensureLines(c, { rules: [], jumps: [c.jump, other, c.jump] }), [':FLANNEL-FWD - [0:0]', ...c.rules, '-D FORWARD -i eth9 -j FLANNEL-FWD', c.jump.replace('-A', '-D')]);
  assert.deepEqual(differences(c, { rules: [...c.rules].reverse(), jumps: [c.jump, other, c.jump] }), [
    'filter FLANNEL-FWD held 2 rules (0 missing, 0 foreign, out of order)',
    'FORWARD jumped to FLANNEL-FWD 2 times',
    'FORWARD held 1 other jump to FLANNEL-FWD',
  ]);
  assert.deepEqual(removeLines('FLANNEL-FWD', [c.jump]), [c.jump.replace('-A', '-D'), '-F FLANNEL-FWD', '-X FLANNEL-FWD']);
});
