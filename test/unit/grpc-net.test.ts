// gRPC's modules take node:net from src/subnet/grpc-net.ts in the runner
// bundles (packaging/bundle-cli.mjs): its isIPv6 and isIP must answer as
// Node's for any input, and an IPv4 etcd endpoint must be reached without
// Node's IPv6 pattern (compiling it was 10 to 18 ms of every start).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { CLI } from '../../lab/agent.js';
import * as grpcNet from 'weft/subnet/grpc-net.js';

const INPUTS: unknown[] = [
  '192.0.2.60', '0.0.0.0', '255.255.255.255', '256.1.1.1', '01.2.3.4', '1.2.3', '1.2.3.4.5', ' 192.0.2.1', '192.0.2.1 ',
  '::', '::1', '2001:db8::1', '2001:db8:0:0:0:0:0:1', '2001:db8::1:2:3:4:5:6:7', 'fe80::1%eth0', 'fe80::1%', '::ffff:192.0.2.1',
  '::ffff:192.0.2.256', '1::2::3', ':', ':::', '[::1]', 'localhost', 'etcd-0.example', '', 'g::1', '2001:db8::/32',
  '::1\n', 'ABCD:EF01::', undefined, null, 4, {}, { toString: () => '::1' }, ['::1'],
];

test("grpc-net's isIPv6 and isIP answer as node:net's for every input", () => {
  for (const input of INPUTS) {
    const s = input as string;
    assert.equal(grpcNet.isIPv6(s), net.isIPv6(s), `isIPv6(${String(input)})`);
    assert.equal(grpcNet.isIP(s), net.isIP(s), `isIP(${String(input)})`);
    assert.equal(grpcNet.isIPv4(s), net.isIPv4(s), `isIPv4(${String(input)})`);
  }
  // The rest of node:net is node:net's own.
  assert.equal(grpcNet.connect, net.connect);
  assert.equal(grpcNet.Socket, net.Socket);
});

for (const [endpoint, v6] of [['http://127.0.0.1:1', false], ['http://[::1]:1', true]] as const) {
  test(`the leases bundle reaches ${endpoint} ${v6 ? 'through' : 'without'} Node's isIPv6`, (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-grpc-net-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    // Counts node:net's isIPv6 calls in a `weft leases` that gRPC sends to a refused port.
    const preload = path.join(dir, 'count.cjs');
    fs.writeFileSync(preload, `
      const net = require('node:net');
      const real = net.isIPv6;
      let calls = 0;
      net.isIPv6 = (s) => (calls++, real(s));
      process.on('exit', () => process.stderr.write('isIPv6 calls: ' + calls + '\\n'));`);
    const r = spawnSync(process.execPath, ['-r', preload, CLI, 'leases', '--etcd-endpoints', endpoint], { encoding: 'utf8', timeout: 30_000 });
    // Exit 3: etcd unreachable. Refused at the port given: an IPv6 endpoint once lost its brackets, and its port to 443.
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, new RegExp(`ECONNREFUSED ${v6 ? '::1' : '127\\.0\\.0\\.1'}:1\\b`));
    const calls = Number(/isIPv6 calls: (\d+)/.exec(r.stderr)?.[1]);
    if (v6) assert.ok(calls > 0, r.stderr);
    else assert.equal(calls, 0, r.stderr);
  });
}
