// The pure parts of the inspection commands: the status protocol's codec and
// framing, the lookup decision, rates, lease rows, and the output helpers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FrameReader, MAX_MESSAGE_BYTES, decodeReply, decodeRequest, encodeErrorReply, encodeStatusReply, encodeStatusRequest, protoPath, type AgentStatus } from 'weft/status/codec.js';
import { lookup, longestMatch, ipv4Value } from 'weft/cli/bpf/lookup.js';
import { withRates } from 'weft/cli/bpf/counters.js';
import { formatLeases, leaseRow } from 'weft/cli/leases-run.js';
import { duration, keyValues, table, toJson } from 'weft/cli/table.js';
import { decodeConfig, decodePeer, encodeConfig, encodeLocalPeer, encodeLpmKey, encodePeer } from 'weft/dataplane/ebpf/maps.js';
import type { BackendType, LocalNetwork, PeerRoute } from 'weft/core/model.js';
import { addr, localNetwork, net, route, type RouteText } from '../../lab/model.js';
import type { PeerEntry } from 'weft/cli/bpf/pins.js';
import { IPNet } from 'weft/core/ipnet.js';

const STATUS: AgentStatus = {
  pid: 4242,
  hostname: 'h1',
  startedAtMs: 1_700_000_000_000,
  nowMs: 1_700_000_090_500,
  phase: 'ready',
  ready: true,
  lease: { subnet: '10.244.3.0/24', subnetV6: '', reservation: false, expiresAtMs: 1_700_086_400_000, leaseId: '7587869381234567890', publicIP: '192.0.2.11' },
  backend: { type: 'vxlan', vni: 1, port: 8472, vtepMAC: '02:00:00:00:01:01', directRouting: true },
  dataplane: { requested: 'auto', kind: 'ebpf', reason: 'kernel supports TC BPF', pinDir: '/sys/fs/bpf/weft' },
  etcd: { endpoints: ['http://192.0.2.1:2379', 'http://192.0.2.2:2379'], prefix: '/coreos.com/network', connected: true, revision: 123456789012 },
  peers: { inView: 3, routed: 2, skipped: 1, inMaps: 2, inMapsNote: '' },
  iface: { name: 'eth0', index: 2, address: '192.0.2.11', mtu: 1500 },
  errors: [{ atMs: 1_700_000_001_000, message: 'cannot reach peer 192.0.2.99 (10.244.9.0/24): wrong backend' }],
  network: '10.244.0.0/16',
  mtu: 1450,
  subnetFile: '/run/flannel/subnet.env',
  version: '0.1.0',
};

test('status reply: encode, split into single bytes, reassemble and decode to the same value', () => {
  const wire = encodeStatusReply(STATUS);
  const r = new FrameReader();
  const frames: Buffer[] = [];
  for (const b of wire) frames.push(...r.push(Buffer.from([b])));
  assert.equal(frames.length, 1);
  assert.equal(r.pending, 0);
  assert.deepEqual(decodeReply(frames[0]), { version: 1, status: STATUS });
});

test('status reply: unknowns survive as null (no lease yet, maps not known)', () => {
  const s: AgentStatus = { ...STATUS, lease: null, peers: { ...STATUS.peers, inMaps: null, inMapsNote: 'no dataplane' }, errors: [] };
  const [frame] = new FrameReader().push(encodeStatusReply(s));
  assert.deepEqual(decodeReply(frame), { version: 1, status: s });
});

test('requests and error replies; two frames in one chunk; a runaway length is refused', () => {
  const r = new FrameReader();
  const [a, b] = r.push(Buffer.concat([encodeStatusRequest(), encodeErrorReply('nope')]));
  assert.deepEqual(decodeRequest(a), { version: 1, what: 'status' });
  assert.deepEqual(decodeReply(b), { version: 1, error: 'nope' });
  // varint 2^21: over the limit.
  assert.throws(() => new FrameReader().push(Buffer.from([0x80, 0x80, 0x80, 0x01])), /frame of 2097152 bytes or more \(limit 1048576\)/);
  assert.equal(MAX_MESSAGE_BYTES, 1 << 20);
});

test('the schema the codec loads is the repository\'s .proto, shipped in dist/', () => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
  assert.equal(protoPath(), path.join(root, 'dist/status/status.proto'));
  assert.equal(fs.readFileSync(protoPath()!, 'utf8'), fs.readFileSync(path.join(root, 'src/status/status.proto'), 'utf8'));
});

/** Entries as the pinned map holds them: written and read back through the codecs. */
function entries(local: string, texts: RouteText[]): PeerEntry[] {
  const routes: PeerRoute[] = texts.map(route);
  const kv: Array<[Buffer, Buffer]> = [[encodeLpmKey(net(local)), encodeLocalPeer(addr('192.0.2.11'))], ...routes.map((r) => [encodeLpmKey(r.subnet), encodePeer(r)] as [Buffer, Buffer])];
  return kv.map(([k, v]) => {
    const d = decodePeer(k, v);
    return { subnet: d.route.subnet.toString(), route: d.route, local: d.local };
  });
}

function config(backend: BackendType, ready = true, port = 0): ReturnType<typeof decodeConfig> {
  const local: LocalNetwork = localNetwork({
    backend,
    network: '10.244.0.0/16',
    subnet: '10.244.1.0/24',
    publicIP: '192.0.2.11',
    iface: { name: 'eth0', index: 2, mtu: 1500, address: '192.0.2.11', mac: '02:00:00:00:00:11', networks: ['192.0.2.0/24'] },
    mtu: 1450,
    vxlan: backend === 'vxlan' ? { vni: 7, port, gbp: false, learning: false, vtepMAC: '02:00:00:00:01:01' } : undefined,
    udp: backend === 'udp' ? { port } : undefined,
    pinDir: '/x',
  });
  return decodeConfig(encodeConfig(local, { overlayIfindex: 5, overlayMAC: '02:00:00:00:00:05' }, ready));
}

test('lookup: the longest prefix wins, and each kind of entry says what the program does', () => {
  const es = entries('10.244.1.0/24', [
    { subnet: '10.244.0.0/17', publicIP: '192.0.2.30', encap: 'ipip', directRouting: false },
    { subnet: '10.244.5.0/24', publicIP: '192.0.2.15', encap: 'ipip', directRouting: false },
    { subnet: '10.244.6.0/24', publicIP: '198.51.100.16', encap: 'udp', directRouting: false },
    { subnet: '10.244.7.0/24', publicIP: '192.0.2.17', encap: 'direct', directRouting: false },
    { subnet: '10.244.8.0/24', publicIP: '192.0.2.18', encap: 'direct', directRouting: true },
  ]);
  assert.equal(longestMatch(es, ipv4Value('10.244.5.1')!)!.subnet, '10.244.5.0/24');
  assert.equal(longestMatch(es, ipv4Value('10.244.100.1')!)!.subnet, '10.244.0.0/17');
  assert.equal(longestMatch(es, ipv4Value('10.244.200.1')!), null);

  const ipip = config('ipip');
  assert.deepEqual(pick(lookup('10.244.5.9', ipip, es)), { action: 'encapsulate', encap: 'ipip', via: '192.0.2.15', port: null, dropReason: null });
  assert.deepEqual(pick(lookup('10.244.100.1', ipip, es)), { action: 'encapsulate', encap: 'ipip', via: '192.0.2.30', port: null, dropReason: null });
  assert.deepEqual(pick(lookup('10.244.6.9', config('udp'), es)), { action: 'encapsulate', encap: 'udp', via: '198.51.100.16', port: 8285, dropReason: null });
  assert.deepEqual(pick(lookup('10.244.6.9', config('udp', true, 9999), es)), { action: 'encapsulate', encap: 'udp', via: '198.51.100.16', port: 9999, dropReason: null });
  const hostgw = lookup('10.244.7.9', ipip, es);
  assert.deepEqual(pick(hostgw), { action: 'forward', encap: null, via: '192.0.2.17', port: null, dropReason: null });
  assert.match(hostgw.says, /\(host-gw\)$/);
  assert.match(lookup('10.244.8.9', ipip, es).says, /DirectRouting: 192\.0\.2\.18 shares our L2 segment/);
  assert.deepEqual(pick(lookup('10.244.1.9', ipip, es)), { action: 'local', encap: null, via: null, port: null, dropReason: null });
  assert.deepEqual(pick(lookup('10.244.200.1', ipip, es)), { action: 'drop', encap: null, via: null, port: null, dropReason: 'no_peer' });
  assert.deepEqual(pick(lookup('192.0.2.99', ipip, es)), { action: 'pass', encap: null, via: null, port: null, dropReason: null });
  // Before the agent marks the config ready, the program drops everything routed to it.
  assert.deepEqual(pick(lookup('10.244.5.9', config('ipip', false), es)), { action: 'drop', encap: null, via: null, port: null, dropReason: 'not_ready' });
  assert.deepEqual(pick(lookup('10.244.5.9', null, es)), { action: 'drop', encap: null, via: null, port: null, dropReason: 'not_ready' });
  assert.throws(() => lookup('10.244.5', ipip, es), /not an IPv4 address/);
});

function pick(r: ReturnType<typeof lookup>): Record<string, unknown> {
  return { action: r.action, encap: r.encap, via: r.via, port: r.port, dropReason: r.dropReason };
}

test('lookup: a vxlan peer gives VNI, VtepMAC and the configured port', () => {
  const es = entries('10.244.1.0/24', [{ subnet: '10.244.2.0/24', publicIP: '192.0.2.12', encap: 'vxlan', directRouting: false, vni: 7, vtepMAC: '02:00:00:00:02:01' }]);
  const r = lookup('10.244.2.3', config('vxlan', true, 4789), es);
  assert.deepEqual([r.action, r.encap, r.via, r.vni, r.vtepMAC, r.port], ['encapsulate', 'vxlan', '192.0.2.12', 7, '02:00:00:00:02:01', 4789]);
});

test('rates: per second since the last read; a counter that went down restarts from zero', () => {
  const prev = [{ packets: 10n, bytes: 1000n }, { packets: 50n, bytes: 5000n }];
  const now = [{ packets: 30n, bytes: 3000n }, { packets: 4n, bytes: 400n }];
  assert.deepEqual(withRates(now, prev, 2).map((r) => [r.packetsPerSec, r.bytesPerSec]), [[10, 1000], [2, 200]]);
  assert.deepEqual(withRates(now, null, 0).map((r) => r.packetsPerSec), [null, null]);
});

test('lease rows: reservation, live and expired etcd leases, VNI and VtepMAC from BackendData', () => {
  const base = { name: '10.244.3.0-24', subnet: IPNet.parse('10.244.3.0/24')!, publicIP: addr('192.0.2.11'), modRevision: 9, createRevision: 9 };
  const vx = { PublicIP: '192.0.2.11', PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: '02:00:00:00:01:01' } };
  const now = Date.parse('2030-01-01T00:00:00Z');
  const live = leaseRow({ ...base, attrs: vx, leaseId: '42' }, '/p/subnets/10.244.3.0-24', { ttl: 3600, granted: 86400 }, now);
  assert.deepEqual(
    [live.backend, live.vni, live.vtepMAC, live.reservation, live.leaseId, live.ttlSeconds, live.grantedTTLSeconds, live.expiresAt, live.expired],
    ['vxlan', 1, '02:00:00:00:01:01', false, '42', 3600, 86400, '2030-01-01T01:00:00.000Z', false],
  );
  const gone = leaseRow({ ...base, attrs: vx, leaseId: '43' }, 'k', { ttl: -1, granted: 0 }, now);
  assert.deepEqual([gone.ttlSeconds, gone.expiresAt, gone.expired], [null, null, true]);
  const res = leaseRow({ ...base, attrs: { PublicIP: '192.0.2.13', PublicIPv6: null }, leaseId: '0' }, 'k', null, now);
  assert.deepEqual([res.backend, res.vni, res.reservation, res.leaseId, res.ttlSeconds, res.expired], [null, null, true, null, null, false]);
  // TTLs not asked (over TTL_AUTO_MAX etcd leases without --ttl): unknown, not expired.
  const unasked = leaseRow({ ...base, attrs: vx, leaseId: '44' }, 'k', undefined, now);
  assert.deepEqual([unasked.ttlSeconds, unasked.expiresAt, unasked.expired], [null, null, false]);
  const report = { prefix: '/p', endpoints: ['http://e'], revision: '9', network: '10.244.0.0/16', leases: [unasked, res], malformed: [] };
  const text = formatLeases({ ...report, ttls: false });
  assert.match(text, /EXPIRES IN not asked: over 1000 etcd leases, a call each \(--ttl asks\)/);
  assert.match(text, /10\.244\.3\.0\/24 +192\.0\.2\.11 +vxlan +1 +02:00:00:00:01:01 +\? +44/);
  assert.match(text, /reservation/);
  assert.doesNotMatch(formatLeases({ ...report, leases: [live], ttls: true }), /not asked/);
});

test('output helpers: durations, aligned tables, key/value blocks, bigints in JSON', () => {
  assert.deepEqual([0, 999, 61_000, 3_600_000, 86_399_000, 90_061_000, -5000].map(duration), ['0s', '0s', '1m1s', '1h', '23h59m', '1d1h', '-5s']);
  assert.equal(table(['A', 'LONGER'], [['xx', 'y'], ['', 'z']]), 'A   LONGER\nxx  y\n    z\n');
  assert.equal(keyValues([['a', '1'], ['bbb', 'two\nlines']]), 'a    1\nbbb  two\n     lines\n');
  assert.equal(toJson({ n: 5n }), '{\n  "n": 5\n}\n');
});
