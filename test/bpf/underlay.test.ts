// underlay_decap through BPF_PROG_TEST_RUN: our ipip and udp tunnel traffic
// is decapsulated and handed to the overlay device; everything else passes
// untouched, also before the config is READY.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ETH_P_ARP,
  ETH_P_IP,
  IPPROTO_IPIP,
  IPPROTO_UDP,
  TC_ACT_UNSPEC,
  TC_ACT_REDIRECT,
  TC_ACT_SHOT,
  eth,
  ipv4,
  podPacket,
  udp,
} from './packets.js';
import { PEER_IP, PEER_MAC, delta, makeFixture, type Fixture } from './fixture.js';

describe('underlay_decap', () => {
  let fx: Fixture;
  const decap = (data: Buffer) => fx.run(fx.underlay, 'underlay_decap', data);
  /** A frame from the peer host to us on the underlay. */
  const fromPeer = (ip: Buffer): Buffer => Buffer.concat([eth(fx.ethMAC, PEER_MAC, ETH_P_IP), ip]);
  const inner = () => podPacket('10.244.1.2', { src: '10.244.2.2' });
  const ipipTo = (dst: string, payload: Buffer, fragOff?: number) =>
    fromPeer(ipv4({ src: PEER_IP, dst, protocol: IPPROTO_IPIP, fragOff }, payload));
  const udpTo = (dst: string, port: number, payload: Buffer) => fromPeer(ipv4({ src: PEER_IP, dst, protocol: IPPROTO_UDP }, udp(8285, port, payload)));
  /** What the overlay device must receive: the inner packet, addressed to the device's MAC. */
  const delivered = (ip: Buffer) => Buffer.concat([eth(fx.overlayMAC, PEER_MAC, ETH_P_IP), ip]);

  before(async () => {
    fx = await makeFixture();
  });
  after(() => fx?.destroy());

  it('ipip to our address: decapsulated and redirected into the overlay device', () => {
    fx.configure('ipip');
    const pkt = inner();
    const count = delta(
      () => fx.stats('ingress', 'ipip'),
      () => {
        const out = decap(ipipTo(fx.host.address, pkt));
        assert.equal(out.retval, TC_ACT_REDIRECT);
        assert.deepEqual(out.data, delivered(pkt));
      },
    );
    assert.deepEqual(count, { packets: 1n, bytes: BigInt(14 + pkt.length) });
  });

  it('udp to our port: decapsulated and redirected into the overlay device', () => {
    fx.configure('udp');
    const pkt = inner();
    const count = delta(
      () => fx.stats('ingress', 'udp'),
      () => {
        const out = decap(udpTo(fx.host.address, 8285, pkt));
        assert.equal(out.retval, TC_ACT_REDIRECT);
        assert.deepEqual(out.data, delivered(pkt));
      },
    );
    assert.equal(count.packets, 1n);
  });

  function expectPass(data: Buffer): void {
    const out = decap(data);
    assert.equal(out.retval, TC_ACT_UNSPEC);
    assert.deepEqual(out.data, data, 'passed untouched');
  }

  it('passes what is not our tunnel: other UDP ports, ipip in udp mode, other destinations, ARP', () => {
    fx.configure('udp');
    expectPass(udpTo(fx.host.address, 53, inner()));
    expectPass(ipipTo(fx.host.address, inner()));
    expectPass(udpTo('192.0.2.99', 8285, inner()));
    fx.configure('ipip');
    expectPass(udpTo(fx.host.address, 8285, inner()));
    expectPass(ipipTo('192.0.2.99', inner()));
    expectPass(Buffer.concat([eth('ff:ff:ff:ff:ff:ff', PEER_MAC, ETH_P_ARP), Buffer.alloc(28)]));
  });

  it('passes everything in vxlan and host-gw mode (the kernel decapsulates vxlan)', () => {
    fx.configure('vxlan');
    expectPass(udpTo(fx.host.address, 8472, Buffer.alloc(64)));
    expectPass(ipipTo(fx.host.address, inner()));
    fx.configure('host-gw');
    expectPass(ipipTo(fx.host.address, inner()));
  });

  it('counts pod traffic that a host-gw peer forwards to us, and passes it', () => {
    fx.configure('host-gw');
    const pkt = fromPeer(inner());
    const count = delta(
      () => fx.stats('ingress', 'direct'),
      () => expectPass(pkt),
    );
    assert.deepEqual(count, { packets: 1n, bytes: BigInt(pkt.length) });
  });

  it('passes everything before the config is READY, so attaching early never cuts a host off', () => {
    fx.configure('ipip', { ready: false });
    expectPass(ipipTo(fx.host.address, inner()));
  });

  function expectDrop(reason: Parameters<Fixture['drops']>[0], data: Buffer): void {
    const count = delta(
      () => fx.drops(reason),
      () => assert.equal(decap(data).retval, TC_ACT_SHOT),
    );
    assert.deepEqual(count, { packets: 1n, bytes: BigInt(data.length) }, `one ${reason} drop`);
  }

  it('drops our tunnel packets it cannot deliver, by reason', () => {
    fx.configure('ipip');
    // An inner packet that is not IPv4.
    expectDrop('unsupported', ipipTo(fx.host.address, Buffer.concat([Buffer.from([0x60]), Buffer.alloc(59)])));
    // An outer fragment cannot be decapsulated in place.
    expectDrop('unsupported', ipipTo(fx.host.address, inner(), 0x2000));
    // An inner packet shorter than an IPv4 header.
    expectDrop('bad_header', ipipTo(fx.host.address, Buffer.from([0x45, 0, 0, 8, 0, 0, 0, 0])));
    fx.configure('udp');
    expectDrop('bad_header', udpTo(fx.host.address, 8285, Buffer.from([0x45, 0, 0, 8])));
  });

  it('admits a tunnel packet from a cluster address only from the PublicIP of the lease that holds it', () => {
    const from = (src: string, innerSrc: string, proto: 'ipip' | 'udp') => {
      const pkt = podPacket('10.244.1.2', { src: innerSrc });
      const payload = proto === 'ipip' ? pkt : udp(8285, 8285, pkt);
      return Buffer.concat([eth(fx.ethMAC, PEER_MAC, ETH_P_IP), ipv4({ src, dst: fx.host.address, protocol: proto === 'ipip' ? IPPROTO_IPIP : IPPROTO_UDP }, payload)]);
    };
    for (const proto of ['ipip', 'udp'] as const) {
      fx.configure(proto);
      // A host with no lease speaking for the peer's pods, for ours, and for a subnet nobody holds.
      expectDrop('unknown_peer', from('192.0.2.99', '10.244.2.2', proto));
      expectDrop('unknown_peer', from(PEER_IP, '10.244.1.3', proto));
      expectDrop('unknown_peer', from(PEER_IP, '10.244.200.2', proto));
      // The peer itself, and a source outside the Network (the peer forwarded it untranslated): delivered.
      for (const [src, innerSrc] of [[PEER_IP, '10.244.2.2'], ['192.0.2.99', '172.16.0.5']]) {
        const out = decap(from(src, innerSrc, proto));
        assert.equal(out.retval, TC_ACT_REDIRECT, `${proto} from ${src} with inner source ${innerSrc}`);
      }
      // WEFT_EBPF_SENDER_CHECK=0: the rule is off, the spoofed packet is delivered.
      fx.configure(proto, { anySender: true });
      assert.equal(decap(from('192.0.2.99', '10.244.2.2', proto)).retval, TC_ACT_REDIRECT, `${proto}: any sender when the check is off`);
    }
  });
});
