// range-decode.ts against protobufjs encoding etcd's own RangeResponse (the
// .proto etcd3 ships): what the lease list reads from the wire; and
// raw-list.ts, what the lease manager decodes of it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs';
import { EtcdRegistry } from 'weft/subnet/registry.js';
import { IPNet } from 'weft/core/ipnet.js';
import { RawLeaseList } from 'weft/subnet/raw-list.js';
import { decodeRangeResponse as decodePage, keyBounds, leaseIdAt, pageBytes, valueBounds, type RawRangePage } from 'weft/subnet/range-decode.js';

const require = createRequire(import.meta.url);
const protoDir = path.join(path.dirname(require.resolve('etcd3/package.json')), 'proto');
const root = new protobuf.Root();
root.resolvePath = (_origin, target) => path.join(protoDir, path.basename(target));
root.loadSync('rpc.proto', { keepCase: true });
const RangeResponse = root.lookupType('etcdserverpb.RangeResponse');
const toObject = { longs: String, bytes: Buffer, defaults: true } as const;

/** One key of a page as an object, from the accessors EtcdRegistry.decodeAt reads it with (views of the page's buffer). */
interface RawKeyValue {
  key: Buffer;
  value: Buffer;
  create_revision: number;
  mod_revision: number;
  lease: string;
}

function keyValueAt(page: RawRangePage, i: number): RawKeyValue {
  return {
    key: page.buf.subarray(...keyBounds(page, i)),
    value: page.buf.subarray(...valueBounds(page, i)),
    create_revision: page.revs[i * 2],
    mod_revision: page.revs[i * 2 + 1],
    lease: leaseIdAt(page, i),
  };
}

/** A page with its keys as objects, as keyValueAt gives each one. */
function decodeRangeResponse(buf: Buffer): Omit<RawRangePage, 'buf' | 'at' | 'revs' | 'count'> & { kvs: RawKeyValue[] } {
  const page = decodePage(buf);
  return { revision: page.revision, more: page.more, kvs: Array.from({ length: page.count }, (_, i) => keyValueAt(page, i)) };
}

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

test('lease IDs past 2^53, positive and negative, read as protobufjs reads them (5,000 random 64-bit values)', () => {
  let seed = 0x2545f491;
  const word = (): bigint => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return BigInt(seed);
  };
  const leases = Array.from({ length: 5000 }, () => BigInt.asIntN(64, (word() << 32n) | word()).toString());
  leases.push('9007199254740992', '-9007199254740993', '10000000000000000000', '-10000000', '18446744073709551615');
  const kvs = leases.map((lease, i) => ({ key: Buffer.from(`k${i}`), value: Buffer.from('v'), create_revision: '1', mod_revision: '1', version: '1', lease }));
  const buf = encode({ header: { revision: '1' }, kvs });
  const want = RangeResponse.toObject(RangeResponse.decode(buf), toObject) as { kvs: Array<{ lease: string }> };
  decodeRangeResponse(buf).kvs.forEach((kv, i) => assert.equal(kv.lease, want.kvs[i].lease, `lease ${leases[i]}`));
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
  for (const cut of [buf.length - 1, buf.length - 200, 3]) assert.throws(() => decodePage(buf.subarray(0, cut)), /etcd range response: truncated/, `cut at ${cut}`);
});

test('a raw list chooses from keys alone and decodes only the values that may be ours; the rest a slice at a time, once taken', async () => {
  const prefix = '/coreos.com/network/subnets/';
  const ours = '192.0.2.7';
  const value = (o: unknown): Buffer => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o));
  const vxlan = { BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: '0e:00:00:00:00:01' } };
  const entries: Array<[string, Buffer]> = [
    ['10.244.1.0-24', value({ PublicIP: '192.0.2.1', PublicIPv6: null, ...vxlan })],
    // Our address, but not as PublicIP: decoded, and the caller's check turns it down.
    ['10.244.2.0-24', value({ PublicIP: '192.0.2.2', PublicIPv6: null, BackendType: 'host-gw', BackendData: { Note: ours } })],
    ['10.244.3.0-24', value({ PublicIP: ours, PublicIPv6: null, ...vxlan })],
    // Our address spelled with a JSON escape: no quoted match, found by its backslash.
    ['10.244.4.0-24', value(`{"PublicIP":"\\u0031${ours.slice(1)}","PublicIPv6":null}`)],
    // Not a lease: its subnet is still taken, and nothing is decoded for it.
    ['10.244.5.0-24', value('{"PublicIP": 5}')],
    ['10.244.6.0-24&fd00:10:244:6::-64', value({ PublicIP: '192.0.2.6', PublicIPv6: 'fd00::6' })],
    ['not-a-subnet', value({ PublicIP: ours })],
  ];
  const kvs = entries.map(([k, v], i) => ({ key: Buffer.from(prefix + k), value: v, create_revision: String(10 + i), mod_revision: String(10 + i), lease: String(i) }));
  // Two pages, as the paged read gives them.
  const pages = [kvs.slice(0, 3), kvs.slice(3)].map((part, i) => decodePage(encode({ header: { revision: '99' }, kvs: part, more: i === 0 })));
  const registry = new EtcdRegistry({ endpoints: ['http://127.0.0.1:1'], prefix: '/coreos.com/network' });
  try {
    const decoded: string[] = [];
    const list = new RawLeaseList(Buffer.byteLength(prefix), (page, i) => {
      decoded.push(keyValueAt(page, i).key.toString().slice(prefix.length));
      return registry.decodeAt(page, i);
    });
    list.revision = '99';
    for (const p of pages) list.add(p);
    assert.equal(list.size, entries.length);
    const candidates = list.mayHavePublicIP(ours);
    assert.deepEqual(decoded, ['10.244.2.0-24', '10.244.3.0-24', '10.244.4.0-24', 'not-a-subnet'], 'only the values holding the quoted address or an escape');
    assert.deepEqual(candidates.map((l) => [l.name, l.attrs.PublicIP]), [['10.244.2.0-24', '192.0.2.2'], ['10.244.3.0-24', ours], ['10.244.4.0-24', ours]]);
    const taken = list.subnets();
    assert.deepEqual([...taken.v4.network.subarray(0, taken.v4.count)].map((n, i) => new IPNet(4, BigInt(n), taken.v4.prefixLen[i]).toString()), ['10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24', '10.244.4.0/24', '10.244.5.0/24', '10.244.6.0/24']);
    assert.deepEqual(taken.v6.map(String), ['fd00:10:244:6::/64']);
    const all = list.decode();
    assert.equal(all.revision, '99');
    assert.deepEqual(all.leases.map((l) => l.name), ['10.244.1.0-24', '10.244.2.0-24', '10.244.3.0-24', '10.244.4.0-24', '10.244.6.0-24&fd00:10:244:6::-64']);
    assert.deepEqual(all.malformed.map((m) => m.key), [`${prefix}10.244.5.0-24`, `${prefix}not-a-subnet`]);
    assert.equal(all.leases[2].leaseId, '2');
    assert.equal(all.leases[2].createRevision, 12);
    // Read in place, each key decodes as a watch event's copy of it does (the watch's path).
    for (const p of pages) for (let i = 0; i < p.count; i++) assert.deepEqual(registry.decodeAt(p, i), registry.decode(keyValueAt(p, i)));
    // What the paged read sizes its next page by: every key's and value's bytes.
    for (const p of pages) assert.equal(pageBytes(p), Array.from({ length: p.count }, (_, i) => keyValueAt(p, i)).reduce((n, kv) => n + kv.key.length + kv.value.length, 0));

    // Nothing is decoded as pages arrive; take() decodes the next keys in key order, across pages, each key once; decode() the rest.
    let calls = 0;
    const sliced = new RawLeaseList(Buffer.byteLength(prefix), (page, i) => (calls++, registry.decodeAt(page, i)));
    sliced.add(pages[0]);
    sliced.add(pages[1]);
    sliced.revision = '99';
    await new Promise((r) => setImmediate(r));
    assert.equal(calls, 0, 'nothing decoded while the list is read');
    const nameOf = (d: { name: string } | { key: string }): string => ('name' in d ? d.name : d.key);
    assert.deepEqual(sliced.take(2).map(nameOf), ['10.244.1.0-24', '10.244.2.0-24']);
    assert.deepEqual(sliced.take(2).map(nameOf), ['10.244.3.0-24', '10.244.4.0-24'], 'a slice runs on into the next page');
    assert.equal(calls, 4);
    const rest = sliced.decode();
    assert.equal(calls, entries.length);
    assert.equal(rest.revision, '99');
    assert.deepEqual(rest.leases.map((l) => l.name), all.leases.slice(4).map((l) => l.name));
    assert.deepEqual(rest.malformed, all.malformed);
    assert.deepEqual(sliced.take(5), [], 'nothing is left');
  } finally {
    registry.close();
  }
});
