// weft monitor without a kernel: the event record decoded from its bytes
// (laid out by LAYOUT, which test/bpf/schema.test.ts holds to the BTF), the
// filters, both output formats, and the mistakes the command line catches
// before it opens anything (and those of --metrics-port).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { CLI } from '../../lab/agent.js';
import { EVENT_F_INNER, EVENT_F_OUTER, EVENT_F_VNI, LAYOUT, DROP, EVENT, PROG, DIR, ENCAP, TRACE } from 'weft/dataplane/ebpf/maps.js';
import { decodeEvent } from 'weft/monitor/event.js';
import { jsonLine, matches, parseFilter, tableLine } from 'weft/monitor/format.js';

const E = LAYOUT.weft_event.fields;
const T = LAYOUT.weft_tuple.fields;

function ip(b: Buffer, off: number, a: string): void {
  a.split('.').forEach((x, i) => (b[off + i] = Number(x)));
}

function tuple(b: Buffer, off: number, t: { src: string; dst: string; sport: number; dport: number; proto: number }): void {
  ip(b, off + T.saddr, t.src);
  ip(b, off + T.daddr, t.dst);
  b.writeUInt16BE(t.sport, off + T.sport);
  b.writeUInt16BE(t.dport, off + T.dport);
  b[off + T.proto] = t.proto;
}

/** A trace record as overlay_egress writes one after pushing vxlan headers. */
function traceRecord(): Buffer {
  const b = Buffer.alloc(LAYOUT.weft_event.size);
  b.writeBigUInt64LE(123_456_789n, E.ts_ns);
  b[E.kind] = EVENT.trace;
  b[E.code] = TRACE.encap;
  b[E.prog] = PROG.overlay_egress;
  b[E.dir] = DIR.egress;
  b[E.flags] = EVENT_F_OUTER | EVENT_F_INNER | EVENT_F_VNI;
  b[E.encap] = ENCAP.vxlan;
  b.writeUInt32LE(3, E.ifindex);
  b.writeUInt32LE(114, E.len);
  b.writeUInt32LE(1, E.vni);
  ip(b, E.peer, '192.0.2.12');
  tuple(b, E.outer, { src: '192.0.2.11', dst: '192.0.2.12', sport: 51234, dport: 8472, proto: 17 });
  tuple(b, E.inner, { src: '10.244.24.2', dst: '10.244.37.2', sport: 40001, dport: 5001, proto: 17 });
  return b;
}

test('a record decodes to the event the programs meant', () => {
  const e = decodeEvent(traceRecord());
  assert.deepEqual(e, {
    kind: 'trace',
    reason: null,
    action: 'encap',
    program: 'overlay_egress',
    direction: 'egress',
    ifindex: 3,
    length: 114,
    encap: 'vxlan',
    vni: 1,
    peer: '192.0.2.12',
    outer: { proto: 'udp', src: '192.0.2.11', dst: '192.0.2.12', sport: 51234, dport: 8472 },
    inner: { proto: 'udp', src: '10.244.24.2', dst: '10.244.37.2', sport: 40001, dport: 5001 },
    monotonicNs: 123_456_789n,
  });
  const drop = traceRecord();
  drop[E.kind] = EVENT.drop;
  drop[E.code] = DROP.no_peer;
  drop[E.flags] = EVENT_F_INNER;
  drop.fill(0, E.peer, E.peer + 4);
  const d = decodeEvent(drop);
  assert.deepEqual([d.kind, d.reason, d.action, d.outer, d.vni, d.peer], ['drop', 'no_peer', null, null, null, null]);
  assert.throws(() => decodeEvent(Buffer.alloc(48)), /48 bytes, this weft reads 64: the programs are another weft version's/);
});

test('filters: address or CIDR on any header, peer, reason or action', () => {
  const e = decodeEvent(traceRecord());
  const f = (o: Partial<{ address: string[]; peer: string[]; reason: string[] }>) => parseFilter({ address: [], peer: [], reason: [], ...o });
  assert.equal(matches(e, f({})), true);
  assert.equal(matches(e, f({ address: ['10.244.37.0/24'] })), true);
  assert.equal(matches(e, f({ address: ['192.0.2.11'] })), true, 'the outer source');
  assert.equal(matches(e, f({ address: ['10.244.99.0/24'] })), false);
  assert.equal(matches(e, f({ peer: ['192.0.2.12'] })), true);
  assert.equal(matches(e, f({ peer: ['192.0.2.13'] })), false);
  assert.equal(matches(e, f({ reason: ['encap', 'no_peer'] })), true);
  assert.equal(matches(e, f({ reason: ['no_peer'] })), false);
  assert.throws(() => f({ address: ['10.244.0.0/33'] }), /--address 10.244.0.0\/33: not an IPv4 address or CIDR/);
  assert.throws(() => f({ peer: ['fd00::1'] }), /--peer fd00::1: not an IPv4 address/);
  assert.throws(() => f({ reason: ['nope'] }), /--reason nope: not a drop reason or trace action; one of none, no_peer, .*encap, tunnel_key/);
});

test('one table line, one JSON line', () => {
  const e = decodeEvent(traceRecord());
  const at = BigInt(Date.UTC(2026, 10, 23, 1, 2, 3, 456)) * 1_000_000n + 789_000n;
  const line = tableLine(e, 'weft.vxlan', at);
  assert.match(line, /^\d\d:\d\d:03\.456789  trace  encap          overlay_egress   weft\.vxlan    egress   udp 10\.244\.24\.2:40001 > 10\.244\.37\.2:5001, in vxlan 192\.0\.2\.11:51234 > 192\.0\.2\.12:8472 vni 1, peer 192\.0\.2\.12, 114 B\n$/);
  const j = JSON.parse(jsonLine(e, 'weft.vxlan', at)) as Record<string, unknown>;
  assert.equal(j.time, '2026-11-23T01:02:03.456Z');
  assert.equal(j.type, 'trace');
  assert.equal(j.device, 'weft.vxlan');
  assert.equal('monotonicNs' in j, false);
  assert.deepEqual(j.inner, { proto: 'udp', src: '10.244.24.2', dst: '10.244.37.2', sport: 40001, dport: 5001 });
});

function weft(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH }, timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('weft monitor: mistakes exit 2 with what to fix, before anything is opened; no pins exit 3', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--sample', '0', '--type', 'trace'], /^weft: --sample 0: give a whole number from 1/],
    [['--sample', '100'], /^weft: --sample applies to trace events: add --type trace \(or all\)/],
    [['--count', '-1'], /^weft: --count -1: give a whole number, 0 for no limit/],
    [['--address', 'pods'], /^weft: --address pods: not an IPv4 address or CIDR/],
    [['--reason', 'lost'], /^weft: --reason lost: not a drop reason or trace action/],
    [['--type', 'everything'], /--type "everything": choose one of drop, trace, all/],
  ];
  for (const [args, re] of cases) {
    const r = weft(['monitor', '--pin-dir', '/nonexistent', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
  const none = weft(['monitor', '--pin-dir', '/sys/fs/bpf/weft-no-such-dir']);
  assert.equal(none.code, 3, none.stderr);
  assert.match(none.stderr, /^weft: no pinned weft maps in \/sys\/fs\/bpf\/weft-no-such-dir/);
});

test('weft agent --metrics-port: a port, and not the health port', () => {
  const same = weft(['agent', '--healthz-port', '9102', '--metrics-port', '9102']);
  assert.equal(same.code, 2);
  assert.match(same.stderr, /--metrics-port 9102 is --healthz-port too: \/metrics is served there already/);
  const big = weft(['agent', '--metrics-port', '70000']);
  assert.equal(big.code, 2);
  assert.match(big.stderr, /--metrics-port 70000: must be 0/);
});
