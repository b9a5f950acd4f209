// What conntrack lets the programs do (bpf/include/conntrack.h), through
// BPF_PROG_TEST_RUN against real conntrack entries that `conntrack -I` writes
// in the fixture host's namespace: a flow conntrack has no entry for passes
// by the host only where conntrack follows flows; a flow it follows skips the
// host only once established, untranslated and tracked liberally, for plain
// ACKs, with its timeout moved up to conntrack's established timeout.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ETH_P_IP, IPPROTO_TCP, TC_ACT_REDIRECT, TC_ACT_UNSPEC, eth, ipv4, tcp } from './packets.js';
import { PEER_MAC, POD, addPodBridge, makeFixture, type Fixture } from './fixture.js';
import { withNetns } from 'weft/native/addon.js';
import { ctSetTcpLiberal } from 'weft/native/conntrack.js';
import { MAP_CT_WAKE, MAP_CT_WANTED, decodeCtTuple, ipv4Bytes } from 'weft/dataplane/ebpf/maps.js';
import { RingBuffer } from 'weft/native/bpf_ringbuf.js';

const SRC = '10.244.2.2';
const TIMEOUT_MS = 3_600_000;

describe('conntrack and the shortcut to a pod', () => {
  let fx: Fixture;
  let sport = 41000;
  const decap = (data: Buffer) => fx.run(fx.underlay, 'underlay_decap', data);
  /** A direct peer's TCP packet for the pod (host-gw: no tunnel in the way). */
  const packet = (port: number, flags = 0x10, dport = 7777): Buffer =>
    Buffer.concat([eth(fx.ethMAC, PEER_MAC, ETH_P_IP), ipv4({ src: SRC, dst: POD, protocol: IPPROTO_TCP, ttl: 63 }, tcp(port, dport, Buffer.alloc(100, 0x61), flags))]);
  const conntrack = (args: string[]) => fx.host.exec(['conntrack', ...args]);
  /**
   * A conntrack entry for SRC:port -> POD:7777, as the host's conntrack would
   * hold it after the handshake: its windows tracked strictly (conntrack marks
   * the entries ctnetlink creates liberal; the mark is taken off again).
   */
  async function entry(port: number, extra: string[] = [], status = 'ASSURED,SEEN_REPLY', timeout = 100): Promise<void> {
    await conntrack(['-I', '-p', 'tcp', '-s', SRC, '-d', POD, '--sport', String(port), '--dport', '7777', '--state', 'ESTABLISHED', '--timeout', String(timeout), '-u', status, ...extra]);
    assert.equal(liberal(port, false), true);
  }
  async function timeoutOf(port: number): Promise<number> {
    const line = (await conntrack(['-L', '-p', 'tcp', '--sport', String(port)])).stdout.split('\n').find((l) => l.startsWith('tcp'));
    assert.ok(line, `conntrack holds the flow from port ${port}`);
    return Number(line.split(/\s+/)[2]);
  }
  const liberal = (port: number, on = true): boolean => withNetns(`/run/netns/${fx.host.name}`, () => ctSetTcpLiberal(ipv4Bytes(SRC, 'src'), ipv4Bytes(POD, 'dst'), port, 7777, on));
  const wanted = (): Array<{ sport: number; dport: number }> => fx.overlay.map(MAP_CT_WANTED).keys().map((k) => decodeCtTuple(k));

  before(async () => {
    fx = await makeFixture();
    await addPodBridge(fx, 1500);
  });
  after(() => fx?.destroy());

  it('a flow conntrack has no entry for: forwarded, unless conntrack follows flows on this host (then it is conntrack\'s to judge)', () => {
    fx.configure('host-gw', { podForward: true, ctTimeoutMs: TIMEOUT_MS });
    assert.equal(decap(packet(sport)).retval, TC_ACT_REDIRECT);
    fx.configure('host-gw', { podForward: true, ctTimeoutMs: TIMEOUT_MS, ctFollows: true });
    assert.equal(decap(packet(sport)).retval, TC_ACT_UNSPEC);
  });

  it('an established flow: the host\'s until conntrack tracks it liberally, then forwarded with its timeout refreshed', async () => {
    const port = ++sport;
    await entry(port);
    fx.configure('host-gw', { podForward: true, ctFollows: true });
    assert.equal(decap(packet(port)).retval, TC_ACT_UNSPEC, 'no timeout given: the fast path is off');
    fx.configure('host-gw', { podForward: true, ctFollows: true, ctTimeoutMs: TIMEOUT_MS });
    assert.equal(decap(packet(port)).retval, TC_ACT_UNSPEC, 'not liberal yet');
    assert.ok(wanted().some((t) => t.sport === port && t.dport === 7777), 'left for the agent in weft_ct_wanted');
    assert.equal(decap(packet(port)).retval, TC_ACT_UNSPEC, 'still not liberal');
    // The agent is woken once for the flow: the second packet found it in weft_ct_wanted already.
    const woken: Array<{ sport: number; dport: number }> = [];
    const ring = RingBuffer.open(fx.overlay.map(MAP_CT_WAKE), { records: (rs) => woken.push(...rs.map((r) => decodeCtTuple(r))), error: (err) => assert.fail(err) });
    try {
      ring.consume();
    } finally {
      ring.close();
    }
    assert.deepEqual(woken.filter((t) => t.sport === port).map((t) => t.dport), [7777], 'one record of the flow in weft_ct_wake');
    assert.equal(liberal(port), true);
    assert.ok((await timeoutOf(port)) <= 100, 'conntrack -I gave it 100 s');
    assert.equal(decap(packet(port)).retval, TC_ACT_REDIRECT, 'liberal now: forwarded');
    assert.ok((await timeoutOf(port)) > 3590, 'conntrack\'s timeout moved up to its established timeout, as conntrack would');
    for (const [flags, what] of [[0x11, 'FIN'], [0x14, 'RST'], [0x12, 'SYN-ACK'], [0x30, 'URG'], [0x00, 'no ACK']] as const) {
      assert.equal(decap(packet(port, flags)).retval, TC_ACT_UNSPEC, `${what}: conntrack must see it`);
    }
  });

  it('never for a flow conntrack translates (here: SNAT), one not assured, or one whose timeout is fixed', async () => {
    fx.configure('host-gw', { podForward: true, ctFollows: true, ctTimeoutMs: TIMEOUT_MS });
    const cases: Array<[string, string[], string]> = [
      ['SNAT', ['--src-nat', '10.244.2.99'], 'ASSURED,SEEN_REPLY'],
      ['not assured', [], 'SEEN_REPLY'],
      ['fixed timeout', [], 'ASSURED,SEEN_REPLY,FIXED_TIMEOUT'],
    ];
    for (const [what, extra, status] of cases) {
      const port = ++sport;
      await entry(port, extra, status);
      liberal(port);
      assert.equal(decap(packet(port)).retval, TC_ACT_UNSPEC, what);
    }
  });
});
