import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatSubnetEnv, previousSubnets, writeSubnetEnv } from 'weft/agent/subnet-env.js';
import { IPNet } from 'weft/core/ipnet.js';

test('subnet.env has flannel\'s lines in flannel\'s order', () => {
  assert.equal(
    formatSubnetEnv({ network: IPNet.parse('10.244.0.0/16')!, subnet: IPNet.parse('10.244.3.0/24')!, mtu: 1450, ipMasq: false }),
    'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n',
  );
  assert.equal(
    formatSubnetEnv({
      network: IPNet.parse('10.244.0.0/16')!,
      subnet: IPNet.parse('10.244.3.0/24')!,
      ipv6Network: IPNet.parse('fd00:10:244::/56')!,
      ipv6Subnet: IPNet.parse('fd00:10:244:3::/64')!,
      mtu: 1480,
      ipMasq: true,
    }),
    'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=fd00:10:244:3::1/64\nFLANNEL_MTU=1480\nFLANNEL_IPMASQ=true\n',
  );
});

test('written atomically with mode 0644, and read back as the previous subnet', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-env-'));
  try {
    const file = path.join(dir, 'run', 'subnet.env');
    writeSubnetEnv(file, { network: IPNet.parse('10.244.0.0/16')!, subnet: IPNet.parse('10.244.7.0/24')!, mtu: 1450, ipMasq: false });
    assert.equal(fs.statSync(file).mode & 0o777, 0o644);
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['subnet.env']);
    assert.equal(previousSubnets(file).subnet?.toString(), '10.244.7.0/24');
    assert.deepEqual(previousSubnets(path.join(dir, 'missing')), {});
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
