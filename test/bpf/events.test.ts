// The programs' events (bpf/include/events.h) through BPF_PROG_TEST_RUN and
// the real ring buffer: nothing while nobody listens, a drop with its
// reason and tuples while a monitor holds the deadline, trace events with
// the peer and both headers, a lapsed deadline, one reader at a time,
// events the full ring could not take counted as lost, and the reader woken
// once a batch waits rather than for each event.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAP_EVENTS, MAP_MONITOR, MON, u32Key } from 'weft/dataplane/ebpf/maps.js';
import { C_ENUMS } from 'weft/dataplane/ebpf/contract.js';
import { MonitorSession, READ_MS, monotonicNs } from 'weft/monitor/session.js';
import { waitFor } from '../../lab/exec.js';
import { RingBuffer } from 'weft/native/bpf.js';
import type { MonitorEvent } from 'weft/monitor/event.js';
import { ETH_P_IP, IPPROTO_IPIP, IPPROTO_UDP, TC_ACT_REDIRECT, TC_ACT_SHOT, eth, ipv4, podPacket, udp } from './packets.js';
import { PEER_IP, PEER_MAC, makeFixture, type Fixture } from './fixture.js';

describe('events for weft monitor', () => {
  let fx: Fixture;
  const frame = (inner: Buffer): Buffer => Buffer.concat([eth(fx.overlayMAC, fx.overlayMAC, ETH_P_IP), inner]);
  const egress = (data: Buffer) => fx.run(fx.overlay, 'overlay_egress', data);
  const podUdp = (dst: string, sport: number, dport: number) => ipv4({ src: '10.244.1.2', dst, protocol: IPPROTO_UDP }, udp(sport, dport, Buffer.from('weft')));

  function session(o: { drops?: boolean; trace?: boolean } = {}): { s: MonitorSession; events: MonitorEvent[] } {
    const events: MonitorEvent[] = [];
    const s = new MonitorSession(fx.overlay.map(MAP_EVENTS), fx.overlay.map(MAP_MONITOR), { drops: o.drops ?? true, trace: o.trace ?? false, sample: 1 });
    s.start({ event: (e) => events.push(e), lost: () => undefined, error: (err) => assert.fail(err) });
    return { s, events };
  }

  before(async () => {
    fx = await makeFixture();
    fx.configure('ipip');
    fx.setPeer({ subnet: '10.244.3.0/24', publicIP: PEER_IP, encap: 'ipip', directRouting: false });
  });
  after(() => fx?.destroy());

  it('nobody listening: a drop is counted, and nothing reaches the ring', () => {
    const records: Buffer[] = [];
    const ring = RingBuffer.open(fx.overlay.map(MAP_EVENTS), { records: (r) => records.push(...r), error: (err) => assert.fail(err) });
    try {
      ring.consume();
      records.length = 0;
      const drops = fx.drops('no_peer').packets;
      assert.equal(egress(frame(podUdp('10.244.200.2', 40001, 5001))).retval, TC_ACT_SHOT);
      assert.equal(fx.drops('no_peer').packets - drops, 1n);
      assert.equal(ring.consume(), 0, 'the ring is empty');
      assert.equal(records.length, 0);
    } finally {
      ring.close();
    }
  });

  it('a drop: reason, program, direction, length and the 5-tuple of the packet', () => {
    const { s, events } = session();
    const pkt = podUdp('10.244.200.2', 40001, 5001);
    assert.equal(egress(frame(pkt)).retval, TC_ACT_SHOT);
    s.drain();
    s.stop();
    assert.equal(events.length, 1);
    const [e] = events;
    assert.deepEqual(
      { kind: e.kind, reason: e.reason, program: e.program, direction: e.direction, length: e.length, outer: e.outer, peer: e.peer },
      { kind: 'drop', reason: 'no_peer', program: 'overlay_egress', direction: 'egress', length: 14 + pkt.length, outer: null, peer: null },
    );
    assert.deepEqual(e.inner, { proto: 'udp', src: '10.244.1.2', dst: '10.244.200.2', sport: 40001, dport: 5001 });
    assert.ok(e.monotonicNs <= monotonicNs(), 'stamped with the monotonic clock');
  });

  it('a trace: the peer, the encapsulation and both headers as the packet leaves', () => {
    const { s, events } = session({ drops: false, trace: true });
    assert.equal(egress(frame(podUdp('10.244.3.9', 40002, 5002))).retval, TC_ACT_REDIRECT);
    s.drain();
    s.stop();
    assert.equal(events.length, 1);
    const [e] = events;
    assert.deepEqual(
      { kind: e.kind, action: e.action, program: e.program, peer: e.peer, encap: e.encap },
      { kind: 'trace', action: 'encap', program: 'overlay_egress', peer: PEER_IP, encap: 'ipip' },
    );
    assert.deepEqual(e.outer, { proto: 'ipip', src: fx.host.address, dst: PEER_IP, sport: null, dport: null });
    assert.deepEqual(e.inner, { proto: 'udp', src: '10.244.1.2', dst: '10.244.3.9', sport: 40002, dport: 5002 });
  });

  it('a drop at the underlay: the sender that is not the lease holder, with outer and inner headers', () => {
    const { s, events } = session();
    // 10.244.2.0/24 is PEER_IP's (fixture.configure); 192.0.2.99 speaks for it.
    const inner = podPacket('10.244.1.2', { src: '10.244.2.2' });
    const pkt = Buffer.concat([eth(fx.ethMAC, PEER_MAC, ETH_P_IP), ipv4({ src: '192.0.2.99', dst: fx.host.address, protocol: IPPROTO_IPIP }, inner)]);
    assert.equal(fx.run(fx.underlay, 'underlay_decap', pkt).retval, TC_ACT_SHOT);
    s.drain();
    s.stop();
    assert.equal(events.length, 1);
    const [e] = events;
    assert.deepEqual([e.reason, e.program, e.direction, e.peer, e.encap], ['unknown_peer', 'underlay_decap', 'ingress', '192.0.2.99', 'ipip']);
    assert.deepEqual(e.outer, { proto: 'ipip', src: '192.0.2.99', dst: fx.host.address, sport: null, dport: null });
    assert.deepEqual(e.inner, { proto: 'icmp', src: '10.244.2.2', dst: '10.244.1.2', sport: null, dport: null });
  });

  it('a trace at the underlay: described as it arrived (outer and inner), with what was done with it', () => {
    const { s, events } = session({ drops: false, trace: true });
    const inner = ipv4({ src: '10.244.2.2', dst: '10.244.1.2', protocol: IPPROTO_UDP }, udp(40005, 5005, Buffer.from('weft')));
    const pkt = Buffer.concat([eth(fx.ethMAC, PEER_MAC, ETH_P_IP), ipv4({ src: PEER_IP, dst: fx.host.address, protocol: IPPROTO_IPIP }, inner)]);
    assert.equal(fx.run(fx.underlay, 'underlay_decap', pkt).retval, TC_ACT_REDIRECT);
    s.drain();
    s.stop();
    assert.equal(events.length, 1);
    const [e] = events;
    assert.deepEqual([e.action, e.program, e.direction, e.peer, e.encap], ['to_overlay', 'underlay_decap', 'ingress', PEER_IP, 'ipip']);
    assert.deepEqual(e.outer, { proto: 'ipip', src: PEER_IP, dst: fx.host.address, sport: null, dport: null });
    assert.deepEqual(e.inner, { proto: 'udp', src: '10.244.2.2', dst: '10.244.1.2', sport: 40005, dport: 5005 });
  });

  it('a lapsed deadline stops the events, and the programs clear it', () => {
    const { s, events } = session();
    const past = Buffer.alloc(8);
    past.writeBigUInt64LE(monotonicNs() - 1n);
    fx.overlay.map(MAP_MONITOR).update(u32Key(MON.drops_until), past);
    egress(frame(podUdp('10.244.200.2', 40003, 5003)));
    s.drain();
    assert.equal(fx.overlay.map(MAP_MONITOR).lookup(u32Key(MON.drops_until))!.readBigUInt64LE(0), 0n, 'the first packet after the deadline cleared it');
    s.stop();
    assert.equal(events.length, 0);
  });

  it('one reader at a time: a second monitor is refused while the first holds the deadline', () => {
    const { s } = session();
    const other = new MonitorSession(fx.overlay.map(MAP_EVENTS), fx.overlay.map(MAP_MONITOR), { drops: true, trace: false, sample: 1 });
    // The first looks like another process: its pid is this one's, so name a live other (pid 1).
    const owner = Buffer.alloc(8);
    owner.writeBigUInt64LE(1n);
    fx.overlay.map(MAP_MONITOR).update(u32Key(MON.owner), owner);
    assert.throws(() => other.start({ event: () => undefined, lost: () => undefined, error: () => undefined }), /another weft monitor \(pid 1\) is reading these events/);
    fx.overlay.map(MAP_MONITOR).update(u32Key(MON.owner), Buffer.from(new BigUint64Array([BigInt(process.pid)]).buffer));
    s.stop();
  });

  it('the reader is woken once an eighth of the ring waits, not for each event; a session reads a lone one within READ_MS', async () => {
    const s = new MonitorSession(fx.overlay.map(MAP_EVENTS), fx.overlay.map(MAP_MONITOR), { drops: true, trace: false, sample: 1 });
    s.renew(); // the deadlines only: the ring is read below, by a reader that only wake-ups drive
    const records: Buffer[] = [];
    const ring = RingBuffer.open(fx.overlay.map(MAP_EVENTS), { records: (r) => records.push(...r), error: (err) => assert.fail(err) });
    try {
      ring.consume();
      records.length = 0;
      assert.equal(egress(frame(podUdp('10.244.200.2', 40005, 5005))).retval, TC_ACT_SHOT);
      // That no wake-up comes can only be waited for a while: two of the session's reads.
      await new Promise((r) => setTimeout(r, 2 * READ_MS));
      assert.equal(records.length, 0, 'a single event woke the reader');
      assert.equal(ring.consume(), 1, 'the event waits in the ring');
      // Past WEFT_EVENTS_WAKE_BYTES (each record with the ring's 8-byte header, 8-aligned) the programs wake it.
      const recordBytes = Math.ceil((records[0].length + 8) / 8) * 8;
      const n = Math.ceil(C_ENUMS.weft_map_size.WEFT_EVENTS_WAKE_BYTES / recordBytes) + 1;
      records.length = 0;
      fx.overlay.program('overlay_egress').testRun({ data: frame(podUdp('10.244.200.2', 40006, 5006)), repeat: n });
      await waitFor(`the reader woken for ${n} events`, () => records.length >= n || undefined, 5000, 10);
      assert.equal(records.length, n);
    } finally {
      ring.close();
    }
    // A session reads the ring on its own: a lone event reaches it without a wake-up or a drain().
    const { s: session2, events } = session();
    assert.equal(egress(frame(podUdp('10.244.200.2', 40007, 5007))).retval, TC_ACT_SHOT);
    await waitFor('the lone event read by the session', () => events.length === 1 || undefined, 5 * READ_MS, 10);
    session2.stop();
    s.stop();
  });

  it('a full ring: what does not fit is counted as lost, not blocked on', () => {
    const { s, events } = session();
    const lost = () => fx.overlay.map(MAP_MONITOR).lookup(u32Key(MON.lost))!.readBigUInt64LE(0);
    const before = lost();
    const p = fx.overlay.program('overlay_egress');
    p.testRun({ data: frame(podUdp('10.244.200.2', 40004, 5004)), repeat: 5000 });
    s.drain();
    s.stop();
    assert.ok(events.length > 3000 && events.length < 5000, `${events.length} events fit the 256 KiB ring`);
    assert.equal(lost() - before, BigInt(5000 - events.length), 'every event that did not fit is counted');
  });
});
