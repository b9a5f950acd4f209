// The TLS files checked before etcd is contacted, and etcd's refusals as one
// line naming the flag; test/integration/etcd-tls.test.ts meets them for real.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { etcdRefusal, readTlsCredentials } from 'weft/subnet/etcd-tls.js';
import { WeftError } from 'weft/core/errors.js';

test('a missing or non-PEM file is named with its flag', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-tls-'));
  try {
    const junk = path.join(dir, 'ca.pem');
    fs.writeFileSync(junk, 'not a certificate\n');
    assert.throws(() => readTlsCredentials({ caFile: junk }), (e: Error) => e instanceof WeftError && e.kind === 'usage' && e.subject.file === junk && e.message === `--etcd-cafile ${junk}: not a PEM certificate`);
    assert.throws(() => readTlsCredentials({ caFile: path.join(dir, 'nope') }), /^Error: --etcd-cafile .*nope: ENOENT$|--etcd-cafile .*nope: ENOENT/);
    assert.deepEqual(readTlsCredentials({}), { rootCertificate: null }, "no CA: the system's");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("etcd's refusals become usage errors; outages stay retryable (null)", () => {
  const id = { endpoints: ['https://192.0.2.1:2379'], username: 'flannel-test', caFile: '/etc/pki/etcd/ca.pem' };
  assert.equal(
    etcdRefusal(new Error('7 PERMISSION_DENIED: etcdserver: permission denied'), id)?.message,
    'etcd at https://192.0.2.1:2379 denied user "flannel-test" (permission denied): grant its role readwrite on the prefix, e.g. etcdctl role grant-permission ROLE --prefix=true readwrite /coreos.com/network/',
  );
  assert.equal(etcdRefusal(new Error('14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 192.0.2.1:2379'), id), null);
  assert.equal(etcdRefusal(new Error('4 DEADLINE_EXCEEDED: Deadline exceeded'), id), null);
  assert.match(etcdRefusal(new Error('14 UNAVAILABLE: No connection established. Last error: Error: self-signed certificate in certificate chain. Resolution note: '), id)!.message, /not signed by --etcd-cafile \/etc\/pki\/etcd\/ca.pem \(self-signed certificate in certificate chain\)/);
});
