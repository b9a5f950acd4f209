// range-decode.ts against protobufjs encoding etcd's own RangeResponse (the
// .proto etcd3 ships): what the lease list reads from the wire.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs';
import { decodeRangeResponse } from 'weft/subnet/range-decode.js';

const require = createRequire(import.meta.url);
const protoDir = path.join(path.dirname(require.resolve('etcd3/package.json')), 'proto');
const root = new protobuf.Root();
root.resolvePath = (_origin, target) => path.join(protoDir, path.basename(target));
root.loadSync('rpc.proto', { keepCase: true });
const RangeResponse = root.lookupType('etcdserverpb.RangeResponse');
const toObject = { longs: String, bytes: Buffer, defaults: true } as const;

function encode(o: Record<string, unknown>): Buffer {
  return Buffer.from(RangeResponse.encode(RangeResponse.fromObject(o)).finish());
}

test('a page decodes as etcd3 decodes it: keys, values, revisions, lease IDs of every size and sign', () => {
  const leases = ['0', '1', '127', '128', '7587869384069470212', '9223372036854775807', '-1', '-9223372036854775808', '9007199254740993'];
  const kvs = leases.map((lease, i) => ({
    key: Buffer.from(`/coreos.com/network/subnets/10.244.${i}.0-24`),
    value: Buffer.from(JSON.stringify({ PublicIP: `192.0.2.${i + 1}` })),
    create_revision: String(1000 + i),
    mod_revision: String(2 ** 40 + i),
    version: '3',
    lease,
  }));
  const buf = encode({ header: { cluster_id: '14841639068965178418', member_id: '10276657743932975437', revision: '123456789', raft_term: '7' }, kvs, more: true, count: '65536' });
  const want = RangeResponse.toObject(RangeResponse.decode(buf), toObject) as { kvs: Record<string, unknown>[] };
  const got = decodeRangeResponse(buf);
  assert.equal(got.revision, 123456789);
  assert.equal(got.more, true);
  assert.equal(got.kvs.length, leases.length);
  got.kvs.forEach((kv, i) => {
    const w = want.kvs[i];
    assert.deepEqual(kv.key, w.key, `key ${i}`);
    assert.deepEqual(kv.value, w.value, `value ${i}`);
    assert.equal(String(kv.create_revision), w.create_revision);
    assert.equal(String(kv.mod_revision), w.mod_revision);
    assert.equal(kv.lease, w.lease, `lease ${leases[i]}`);
  });
});

test('absent fields take their defaults; the last page says no more; unknown fields are skipped', () => {
  const empty = decodeRangeResponse(encode({ header: { revision: '5' } }));
  assert.deepEqual({ ...empty, kvs: empty.kvs.length }, { revision: 5, kvs: 0, more: false });
  const bare = decodeRangeResponse(encode({ kvs: [{ key: Buffer.from('k') }] }));
  assert.equal(bare.kvs[0].lease, '0');
  assert.equal(bare.kvs[0].value.length, 0);
  assert.equal(bare.kvs[0].mod_revision, 0);
  // Fields 9 (varint), 10 (fixed64), 11 (bytes), 12 (fixed32) in a key and in the message: a later etcd's additions.
  const unknown = Buffer.from([0x48, 0x96, 0x01, 0x51, 1, 2, 3, 4, 5, 6, 7, 8, 0x5a, 2, 0x61, 0x62, 0x65, 1, 2, 3, 4]);
  const kv = Buffer.concat([Buffer.from([0x0a, 1, 0x6b]), unknown, Buffer.from([0x30, 0x05])]);
  const msg = Buffer.concat([unknown, Buffer.from([0x12, kv.length]), kv, Buffer.from([0x18, 1])]);
  const page = decodeRangeResponse(msg);
  assert.equal(page.kvs[0].key.toString(), 'k');
  assert.equal(page.kvs[0].lease, '5');
  assert.equal(page.more, true);
});

test('a truncated message is an error, not a short page', () => {
  const buf = encode({ header: { revision: '5' }, kvs: [{ key: Buffer.from('/k'), value: Buffer.from('v'.repeat(300)) }] });
  for (const cut of [buf.length - 1, buf.length - 200, 3]) assert.throws(() => decodeRangeResponse(buf.subarray(0, cut)), /etcd range response: truncated/, `cut at ${cut}`);
});
