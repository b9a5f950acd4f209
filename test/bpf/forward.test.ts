// Peer traffic for local pods through BPF_PROG_TEST_RUN: sent out of the
// pod's bridge port by the programs (TTL decremented, the MACs the bridge
// would use) when the host's stack would only have forwarded it, and left to
// the stack, untouched, whenever the stack has more to do. Also the udp
// backend's handoff to the overlay device's vxlan receive path: exact bytes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ETH_P_IP,
  IPPROTO_ICMP,
  IPPROTO_IPIP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  TC_ACT_UNSPEC,
  TC_ACT_REDIRECT,
  TC_ACT_SHOT,
  eth,
  icmpEcho,
  inetChecksum,
  ipv4,
  tcp,
  udp,
  type Ipv4Fields,
} from './packets.js';
import { PEER_IP, PEER_MAC, PEER_VTEP_MAC, POD, POD_MAC, VNI, VTEP_MAC, addPodBridge, delta, makeFixture, type Fixture } from './fixture.js';

/** In our subnet, on the bridge, but no neighbour entry: the kernel must resolve it. */
const UNRESOLVED_POD = '10.244.1.4';
/** Resolved, but its MAC is on no port the agent has seen (not learned yet, or its pod left). */
const UNLEARNED_POD = '10.244.1.5';
const BRIDGE_MTU = 1400;

describe('forward to a local pod', () => {
  let fx: Fixture;
  let bridge: { ifindex: number; address: string };
  let port: number;
  const decap = (data: Buffer) => fx.run(fx.underlay, 'underlay_decap', data);
  const ingress = (data: Buffer) => fx.run(fx.overlay, 'overlay_ingress', data);
  const fromPeer = (ip: Buffer): Buffer => Buffer.concat([eth(fx.ethMAC, PEER_MAC, ETH_P_IP), ip]);
  /** What the vxlan device hands its ingress after decapsulation. */
  const fromTunnel = (ip: Buffer): Buffer => Buffer.concat([eth(VTEP_MAC, PEER_VTEP_MAC, ETH_P_IP), ip]);
  const segment = (dst: string, f: Partial<Ipv4Fields> = {}, size = 100): Buffer =>
    ipv4({ src: '10.244.2.2', dst, protocol: IPPROTO_TCP, ttl: 63, ...f }, tcp(40000, 7777, Buffer.alloc(size, 0x61)));

  /** The packet as forwarded: to the pod's MAC from the bridge's, TTL one lower, header checksum still right. */
  function forwarded(frame: Buffer): Buffer {
    const out = Buffer.concat([eth(POD_MAC, bridge.address, ETH_P_IP), frame.subarray(14)]);
    out[14 + 8] -= 1;
    out.writeUInt16BE(0, 14 + 10);
    out.writeUInt16BE(inetChecksum(out.subarray(14, 34)), 14 + 10);
    return out;
  }

  /** inner: the frame as it is once decapsulated, when frame is a tunnel packet. */
  function expectForwarded(run: (d: Buffer) => { retval: number; data: Buffer }, frame: Buffer, inner = frame): void {
    const out = run(frame);
    assert.equal(out.retval, TC_ACT_REDIRECT);
    assert.deepEqual(out.data, forwarded(inner));
    assert.equal(inetChecksum(out.data.subarray(14, 34)), 0, 'the IPv4 header checksums to zero');
  }

  function expectPassed(run: (d: Buffer) => { retval: number; data: Buffer }, frame: Buffer, why: string): void {
    const out = run(frame);
    assert.equal(out.retval, TC_ACT_UNSPEC, why);
    assert.deepEqual(out.data, frame, `${why}: untouched`);
  }

  before(async () => {
    fx = await makeFixture();
    ({ bridge, port } = await addPodBridge(fx, BRIDGE_MTU));
    await fx.host.ip('neigh', 'replace', UNLEARNED_POD, 'lladdr', '02:00:00:00:13:05', 'dev', 'br0', 'nud', 'permanent');
  });
  after(() => fx?.destroy());

  it('direct peers (host-gw): a segment for a pod is forwarded to its bridge, and counted once', () => {
    fx.configure('host-gw', { podForward: true });
    const frame = fromPeer(segment(POD));
    const count = delta(() => fx.stats('ingress', 'direct'), () => expectForwarded(decap, frame));
    assert.deepEqual(count, { packets: 1n, bytes: BigInt(frame.length) });
    // UDP too.
    expectForwarded(decap, fromPeer(ipv4({ src: '10.244.2.2', dst: POD, protocol: IPPROTO_UDP, ttl: 9 }, udp(5000, 53, Buffer.alloc(40)))));
  });

  it('without the flag the stack forwards, as before', () => {
    fx.configure('host-gw');
    expectPassed(decap, fromPeer(segment(POD)), 'flag off');
  });

  it('leaves to the stack what it must answer or resolve: ICMP, TTL expiry, fragments, MTU, unresolved pods, host addresses', () => {
    fx.configure('host-gw', { podForward: true });
    expectPassed(decap, fromPeer(ipv4({ src: '10.244.2.2', dst: POD, protocol: IPPROTO_ICMP, ttl: 63 }, icmpEcho(1, 1))), 'ICMP');
    expectPassed(decap, fromPeer(segment(POD, { ttl: 1 })), 'TTL 1: time exceeded is the stack\'s');
    const syn = ipv4({ src: '10.244.2.2', dst: POD, protocol: IPPROTO_TCP, ttl: 63 }, tcp(40000, 7777, Buffer.alloc(0), 0x02));
    expectPassed(decap, fromPeer(syn), 'a SYN: where conntrack follows pods, the connection must start followed');
    expectForwarded(decap, fromPeer(ipv4({ src: '10.244.2.2', dst: POD, protocol: IPPROTO_TCP, ttl: 63 }, tcp(40000, 7777, Buffer.alloc(0), 0x12))));
    expectPassed(decap, fromPeer(segment(POD, { fragOff: 0x2000 })), 'a first fragment');
    expectPassed(decap, fromPeer(segment(POD, { fragOff: 0x0010 })), 'a later fragment');
    expectPassed(decap, fromPeer(segment(POD, {}, BRIDGE_MTU)), 'larger than the bridge MTU: fragmentation needed is the stack\'s');
    expectPassed(decap, fromPeer(segment(UNRESOLVED_POD)), 'no neighbour entry yet');
    expectPassed(decap, fromPeer(segment(UNLEARNED_POD)), 'a MAC on no known port');
    expectPassed(decap, fromPeer(segment('10.244.1.1')), 'the bridge\'s own address');
    expectPassed(decap, fromPeer(segment('10.244.9.9')), 'another subnet of the Network');
  });

  it('overlay_ingress: what the vxlan device decapsulated is counted and forwarded', () => {
    fx.configure('vxlan', { podForward: true });
    const frame = fromTunnel(segment(POD));
    const count = delta(() => fx.stats('ingress', 'vxlan'), () => expectForwarded(ingress, frame));
    assert.deepEqual(count, { packets: 1n, bytes: BigInt(frame.length) });
    expectPassed(ingress, fromTunnel(segment('10.244.1.1')), 'host address');
    fx.configure('vxlan');
    expectPassed(ingress, fromTunnel(segment(POD)), 'flag off');
  });

  it('overlay_ingress under udp: forwarded, not counted again (underlay_decap counted it)', () => {
    fx.configure('udp', { podForward: true, decapPort: 8285 });
    const count = delta(() => fx.stats('ingress', 'udp'), () => expectForwarded(ingress, fromTunnel(segment(POD))));
    assert.deepEqual(count, { packets: 0n, bytes: 0n });
  });

  it('ipip: decapsulated here and sent out of the pod\'s port (the bridge would segment the aggregate)', () => {
    fx.configure('ipip', { podForward: true });
    const inner = segment(POD);
    const count = delta(
      () => fx.stats('ingress', 'ipip'),
      () => expectForwarded(decap, Buffer.concat([eth(fx.ethMAC, PEER_MAC, ETH_P_IP), ipv4({ src: PEER_IP, dst: fx.host.address, protocol: IPPROTO_IPIP }, inner)]), Buffer.concat([eth(fx.ethMAC, PEER_MAC, ETH_P_IP), inner])),
    );
    assert.deepEqual(count, { packets: 1n, bytes: BigInt(14 + inner.length) });
    // A pod the agent has not seen: to the overlay device, as before.
    const other = segment(UNLEARNED_POD);
    const out = decap(fromPeer(ipv4({ src: PEER_IP, dst: fx.host.address, protocol: IPPROTO_IPIP }, other)));
    assert.equal(out.retval, TC_ACT_REDIRECT);
    assert.deepEqual(out.data, Buffer.concat([eth(fx.overlayMAC, PEER_MAC, ETH_P_IP), other]));
  });

  it('udp: a packet for a pod\'s port is decapsulated here and sent out of the port; the rest goes to the vxlan receive path', () => {
    fx.configure('udp', { podForward: true, decapPort: 8285 });
    const inner = segment(POD);
    const count = delta(
      () => fx.stats('ingress', 'udp'),
      () => expectForwarded(decap, fromPeer(ipv4({ src: PEER_IP, dst: fx.host.address, protocol: IPPROTO_UDP }, udp(8285, 8285, inner))), Buffer.concat([eth(fx.ethMAC, PEER_MAC, ETH_P_IP), inner])),
    );
    assert.deepEqual(count, { packets: 1n, bytes: BigInt(14 + inner.length) });
    // A pod the agent has not seen: rewritten into VXLAN for the overlay device's port (its receive path clears the tunnel marks for the bridge).
    const other = segment(UNLEARNED_POD);
    const out = decap(fromPeer(ipv4({ src: PEER_IP, dst: fx.host.address, protocol: IPPROTO_UDP }, udp(8285, 8285, other))));
    assert.equal(out.retval, TC_ACT_UNSPEC);
    assert.equal(out.data.length, 14 + 20 + 8 + 8 + 14 + other.length, 'VXLAN and an Ethernet header inserted');
  });

  it('vxlan: a plain packet for a pod is decapsulated at the underlay and sent out of its port; the rest is the vxlan device\'s', () => {
    fx.configure('vxlan', { podForward: true });
    const vxlan = (inner: Buffer, o: { vni?: number; flags?: number; dmac?: string; src?: string; port?: number } = {}): Buffer => {
      const h = Buffer.alloc(8);
      h.writeUInt32BE(o.flags ?? 0x08000000, 0);
      h.writeUInt32BE((o.vni ?? VNI) << 8, 4);
      const frame = Buffer.concat([h, eth(o.dmac ?? VTEP_MAC, PEER_VTEP_MAC, ETH_P_IP), inner]);
      return fromPeer(ipv4({ src: o.src ?? PEER_IP, dst: fx.host.address, protocol: IPPROTO_UDP }, udp(40001, o.port ?? 8472, frame)));
    };
    const inner = segment(POD);
    const count = delta(
      () => fx.stats('ingress', 'vxlan'),
      () => expectForwarded(decap, vxlan(inner), Buffer.concat([eth(fx.ethMAC, PEER_MAC, ETH_P_IP), inner])),
    );
    assert.deepEqual(count, { packets: 1n, bytes: BigInt(14 + inner.length) }, 'counted as the vxlan device would: the inner frame');
    expectPassed(decap, vxlan(inner, { vni: 7 }), 'another VNI (overlay_ingress drops it)');
    expectPassed(decap, vxlan(inner, { flags: 0x88000000 }), 'GBP');
    expectPassed(decap, vxlan(inner, { dmac: '02:00:00:00:77:77' }), 'for another VTEP');
    expectPassed(decap, vxlan(inner, { src: '192.0.2.99' }), 'not from the lease holder (overlay_ingress drops it)');
    expectPassed(decap, vxlan(inner, { port: 4789 }), 'another UDP port');
    expectPassed(decap, vxlan(segment(UNLEARNED_POD)), 'a pod the agent has not seen');
    expectPassed(decap, vxlan(ipv4({ src: '10.244.2.2', dst: POD, protocol: IPPROTO_ICMP, ttl: 63 }, icmpEcho(1, 1))), 'ICMP');
    fx.configure('vxlan');
    expectPassed(decap, vxlan(inner), 'flag off');
  });
});

describe('udp: handoff to the vxlan receive path', () => {
  let fx: Fixture;
  const decap = (data: Buffer) => fx.run(fx.underlay, 'underlay_decap', data);
  const fromPeer = (ip: Buffer): Buffer => Buffer.concat([eth(fx.ethMAC, PEER_MAC, ETH_P_IP), ip]);
  const inner = () => ipv4({ src: '10.244.2.2', dst: '10.244.1.2', protocol: IPPROTO_TCP, ttl: 63 }, tcp(40000, 7777, Buffer.alloc(64, 0x62)));
  const VXLAN = Buffer.from([0x08, 0, 0, 0, 0, 0, 0, 0]);

  before(async () => {
    fx = await makeFixture();
  });
  after(() => fx?.destroy());

  it('rewrites a udp packet into VXLAN for the overlay device\'s port and lets the stack take it', () => {
    fx.configure('udp', { decapPort: 8285 });
    const pkt = inner();
    const wire = fromPeer(ipv4({ src: PEER_IP, dst: fx.host.address, protocol: IPPROTO_UDP, id: 0x1234 }, udp(8285, 8285, pkt)));
    const count = delta(
      () => fx.stats('ingress', 'udp'),
      () => {
        const out = decap(wire);
        assert.equal(out.retval, TC_ACT_UNSPEC);
        // Outer IPv4 as it came (id, DF, TTL), with the new length; UDP to the device's port, checksum 0;
        // VXLAN with the I flag; an Ethernet header to the device's MAC from the sender's.
        const vxlan = Buffer.concat([VXLAN, eth(fx.overlayMAC, PEER_MAC, ETH_P_IP), pkt]);
        assert.deepEqual(out.data, fromPeer(ipv4({ src: PEER_IP, dst: fx.host.address, protocol: IPPROTO_UDP, id: 0x1234 }, udp(8285, 8285, vxlan))));
        assert.equal(inetChecksum(out.data.subarray(14, 34)), 0);
      },
    );
    assert.deepEqual(count, { packets: 1n, bytes: BigInt(14 + pkt.length) }, 'counted as before: the inner frame');
  });

  it('the rewritten UDP goes to the device\'s port, whatever the backend port', () => {
    fx.configure('udp', { udpPort: 9000, decapPort: 9001 });
    const pkt = inner();
    const out = decap(fromPeer(ipv4({ src: PEER_IP, dst: fx.host.address, protocol: IPPROTO_UDP }, udp(9000, 9000, pkt))));
    assert.equal(out.retval, TC_ACT_UNSPEC);
    assert.equal(out.data.readUInt16BE(14 + 20), 9001, 'source port');
    assert.equal(out.data.readUInt16BE(14 + 22), 9001, 'destination port');
  });

  it('drops VXLAN that arrives from outside for the device\'s port: only the program feeds it', () => {
    fx.configure('udp', { udpPort: 9000, decapPort: 9001 });
    const wire = fromPeer(ipv4({ src: PEER_IP, dst: fx.host.address, protocol: IPPROTO_UDP }, udp(9001, 9001, Buffer.concat([VXLAN, eth(fx.overlayMAC, PEER_MAC, ETH_P_IP), inner()]))));
    const count = delta(() => fx.drops('unsupported'), () => assert.equal(decap(wire).retval, TC_ACT_SHOT));
    assert.deepEqual(count, { packets: 1n, bytes: BigInt(wire.length) });
  });

  it('an outer header with options cannot be rewritten in place: decapsulated here instead', () => {
    fx.configure('udp', { decapPort: 8285 });
    const pkt = inner();
    const ip = ipv4({ src: PEER_IP, dst: fx.host.address, protocol: IPPROTO_UDP }, Buffer.concat([Buffer.alloc(4, 1), udp(8285, 8285, pkt)]));
    // Make it a 24-byte header: ihl 6, the 4 bytes after the base header are NOP options.
    ip[0] = 0x46;
    ip.writeUInt16BE(0, 10);
    ip.writeUInt16BE(inetChecksum(ip.subarray(0, 24)), 10);
    const out = decap(fromPeer(ip));
    assert.equal(out.retval, TC_ACT_REDIRECT);
    assert.deepEqual(out.data, Buffer.concat([eth(fx.overlayMAC, PEER_MAC, ETH_P_IP), pkt]));
  });

  it('without a decap port udp is decapsulated here, as before', () => {
    fx.configure('udp');
    const pkt = inner();
    const out = decap(fromPeer(ipv4({ src: PEER_IP, dst: fx.host.address, protocol: IPPROTO_UDP }, udp(8285, 8285, pkt))));
    assert.equal(out.retval, TC_ACT_REDIRECT);
    assert.deepEqual(out.data, Buffer.concat([eth(fx.overlayMAC, PEER_MAC, ETH_P_IP), pkt]));
  });
});
