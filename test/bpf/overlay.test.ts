// overlay_egress through BPF_PROG_TEST_RUN: the exact bytes each
// encapsulation produces, and every drop counted under its reason.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ETH_P_ARP,
  ETH_P_IP,
  ETH_P_IPV6,
  IPPROTO_IPIP,
  IPPROTO_UDP,
  TC_ACT_UNSPEC,
  TC_ACT_REDIRECT,
  TC_ACT_SHOT,
  eth,
  inetChecksum,
  ipv4,
  podPacket,
  udp,
} from './packets.js';
import { FAR_IP, PEER_IP, PEER_MAC, PEER_VTEP_MAC, UNRESOLVED_IP, VNI, VTEP_MAC, delta, makeFixture, type Fixture } from './fixture.js';

describe('overlay_egress', () => {
  let fx: Fixture;
  /** A frame as the kernel hands it to the overlay device: NOARP, so both MACs are the device's own. */
  const frame = (inner: Buffer): Buffer => Buffer.concat([eth(fx.overlayMAC, fx.overlayMAC, ETH_P_IP), inner]);
  const egress = (data: Buffer) => fx.run(fx.overlay, 'overlay_egress', data);

  before(async () => {
    fx = await makeFixture();
    fx.configure('vxlan');
    fx.setPeer({ subnet: '10.244.2.0/24', publicIP: PEER_IP, encap: 'vxlan', directRouting: false, vni: VNI, vtepMAC: PEER_VTEP_MAC });
    fx.setPeer({ subnet: '10.244.3.0/24', publicIP: PEER_IP, encap: 'ipip', directRouting: false });
    fx.setPeer({ subnet: '10.244.4.0/24', publicIP: PEER_IP, encap: 'udp', directRouting: false });
    fx.setPeer({ subnet: '10.244.5.0/24', publicIP: PEER_IP, encap: 'direct', directRouting: false });
    fx.setPeer({ subnet: '10.244.6.0/24', publicIP: UNRESOLVED_IP, encap: 'ipip', directRouting: false });
    fx.setPeer({ subnet: '10.244.7.0/24', publicIP: FAR_IP, encap: 'direct', directRouting: false });
    fx.setPeer({ subnet: '10.244.8.0/24', publicIP: FAR_IP, encap: 'ipip', directRouting: false });
    fx.setPeer({ subnet: '10.244.9.0/24', publicIP: PEER_IP, encap: 'direct', directRouting: true, vni: VNI, vtepMAC: PEER_VTEP_MAC });
  });
  after(() => fx?.destroy());

  it('vxlan: rewrites the inner MACs to the VTEPs and hands the packet to the vxlan device', () => {
    const inner = podPacket('10.244.2.2');
    const count = delta(
      () => fx.stats('egress', 'vxlan'),
      () => {
        const out = egress(frame(inner));
        assert.equal(out.retval, TC_ACT_UNSPEC);
        assert.deepEqual(out.data, Buffer.concat([eth(PEER_VTEP_MAC, VTEP_MAC, ETH_P_IP), inner]));
      },
    );
    assert.deepEqual(count, { packets: 1n, bytes: BigInt(14 + inner.length) });
  });

  /** The outer IPv4 header weft pushes for an inner packet of innerLen bytes with DF set. */
  function outerHeader(protocol: number, dst: string, innerLen: number, extra: number): Buffer {
    const h = ipv4({ src: fx.host.address, dst, protocol, ttl: 64, df: true, id: 0 }, Buffer.alloc(innerLen + extra));
    return h.subarray(0, 20);
  }

  it('ipip: pushes outer IPv4 (protocol 4, DF, TTL 64, checksum) and sends it to the resolved next hop', () => {
    const inner = podPacket('10.244.3.2');
    const out = egress(frame(inner));
    assert.equal(out.retval, TC_ACT_REDIRECT);
    const want = Buffer.concat([eth(PEER_MAC, fx.ethMAC, ETH_P_IP), outerHeader(IPPROTO_IPIP, PEER_IP, inner.length, 0), inner]);
    assert.deepEqual(out.data, want);
    assert.equal(inetChecksum(out.data.subarray(14, 34)), 0, 'outer header checksums to zero');
  });

  it('udp: pushes outer IPv4 + UDP 8285 -> 8285 with checksum 0 and the raw inner packet as payload', () => {
    fx.configure('udp');
    try {
      const inner = podPacket('10.244.4.2');
      const count = delta(
        () => fx.stats('egress', 'udp'),
        () => {
          const out = egress(frame(inner));
          assert.equal(out.retval, TC_ACT_REDIRECT);
          const ipHdr = outerHeader(IPPROTO_UDP, PEER_IP, inner.length, 8);
          const udpHdr = udp(8285, 8285, inner).subarray(0, 8);
          assert.deepEqual(out.data, Buffer.concat([eth(PEER_MAC, fx.ethMAC, ETH_P_IP), ipHdr, udpHdr, inner]));
        },
      );
      assert.equal(count.packets, 1n);
    } finally {
      fx.configure('vxlan');
    }
  });

  it('udp: uses the configured port for both ends', () => {
    fx.configure('udp', { udpPort: 9999 });
    try {
      const out = egress(frame(podPacket('10.244.4.2')));
      assert.equal(out.data.readUInt16BE(34), 9999);
      assert.equal(out.data.readUInt16BE(36), 9999);
    } finally {
      fx.configure('vxlan');
    }
  });

  it('ipip: a packet without DF gets an outer header without DF, and ECN is carried out (CE as ECT(0))', () => {
    const inner = podPacket('10.244.3.2', { df: false, tos: 0xb8 | 3 });
    const out = egress(frame(inner));
    assert.equal(out.retval, TC_ACT_REDIRECT);
    const outer = out.data.subarray(14, 34);
    assert.equal(outer.readUInt16BE(6), 0, 'frag_off: no DF');
    assert.equal(outer[1], 2, 'tos: DSCP not copied, CE becomes ECT(0)');
    assert.equal(inetChecksum(outer), 0);
    assert.deepEqual(out.data.subarray(34), inner);
  });

  it('ipip: a peer behind the router is reached through the gateway MAC', () => {
    const inner = podPacket('10.244.8.2');
    const out = egress(frame(inner));
    assert.equal(out.retval, TC_ACT_REDIRECT);
    assert.deepEqual(out.data.subarray(0, 14), eth(fx.routerMAC, fx.ethMAC, ETH_P_IP));
    assert.deepEqual(out.data.subarray(14, 34), outerHeader(IPPROTO_IPIP, FAR_IP, inner.length, 0));
  });

  it('ipip: an unresolved next hop is left to bpf_redirect_neigh (MACs untouched here)', () => {
    const inner = podPacket('10.244.6.2');
    const out = egress(frame(inner));
    assert.equal(out.retval, TC_ACT_REDIRECT);
    assert.deepEqual(out.data.subarray(0, 14), eth(fx.overlayMAC, fx.overlayMAC, ETH_P_IP));
    assert.deepEqual(out.data.subarray(14, 34), outerHeader(IPPROTO_IPIP, UNRESOLVED_IP, inner.length, 0));
  });

  it('host-gw: forwards the unmodified packet with the next hop MACs', () => {
    const inner = podPacket('10.244.5.2');
    const count = delta(
      () => fx.stats('egress', 'direct'),
      () => {
        const out = egress(frame(inner));
        assert.equal(out.retval, TC_ACT_REDIRECT);
        assert.deepEqual(out.data, Buffer.concat([eth(PEER_MAC, fx.ethMAC, ETH_P_IP), inner]));
      },
    );
    assert.equal(count.packets, 1n);
  });

  it('DirectRouting vxlan peer: forwarded like host-gw, no tunnel', () => {
    const inner = podPacket('10.244.9.2');
    const out = egress(frame(inner));
    assert.equal(out.retval, TC_ACT_REDIRECT);
    assert.deepEqual(out.data, Buffer.concat([eth(PEER_MAC, fx.ethMAC, ETH_P_IP), inner]));
  });

  function expectDrop(reason: Parameters<Fixture['drops']>[0], data: Buffer): void {
    const count = delta(
      () => fx.drops(reason),
      () => assert.equal(egress(data).retval, TC_ACT_SHOT),
    );
    assert.deepEqual(count, { packets: 1n, bytes: BigInt(data.length) }, `one ${reason} drop of ${data.length} bytes`);
  }

  it('host-gw to a peer that is not on our segment: dropped as fib_failed', () => {
    expectDrop('fib_failed', frame(podPacket('10.244.7.2')));
  });

  it('no lease for the destination: dropped as no_peer', () => {
    expectDrop('no_peer', frame(podPacket('10.244.200.2')));
  });

  it('a departed peer: its traffic is dropped as no_peer, never sent to the old address', () => {
    const route = { subnet: '10.244.10.0/24', publicIP: PEER_IP, encap: 'ipip' as const, directRouting: false };
    fx.setPeer(route);
    assert.equal(egress(frame(podPacket('10.244.10.2'))).retval, TC_ACT_REDIRECT);
    fx.deletePeer(route.subnet);
    expectDrop('no_peer', frame(podPacket('10.244.10.2')));
  });

  it('our own subnet is no peer: no_peer', () => {
    expectDrop('no_peer', frame(podPacket('10.244.1.3')));
  });

  // BPF_PROG_TEST_RUN itself refuses frames shorter than Ethernet + 20 bytes of IPv4, so a
  // truncated header is one whose IHL claims more than the packet holds.
  it('a truncated IPv4 header (IHL beyond the packet): bad_header', () => {
    const data = frame(podPacket('10.244.3.2')).subarray(0, 14 + 40);
    data[14] = 0x4f;
    expectDrop('bad_header', data);
  });

  it('an IPv4 ethertype carrying another IP version: bad_header', () => {
    const data = frame(podPacket('10.244.3.2'));
    data[14] = 0x65;
    expectDrop('bad_header', data);
  });

  it('an IPv4 total length beyond the packet: bad_header', () => {
    const data = frame(podPacket('10.244.3.2'));
    data.writeUInt16BE(data.length, 16);
    expectDrop('bad_header', data);
  });

  it('IPv6 and ARP: unsupported', () => {
    expectDrop('unsupported', Buffer.concat([eth(fx.overlayMAC, fx.overlayMAC, ETH_P_IPV6), Buffer.alloc(60, 0x60)]));
    expectDrop('unsupported', Buffer.concat([eth(fx.overlayMAC, fx.overlayMAC, ETH_P_ARP), Buffer.alloc(28)]));
  });

  it('a packet that would not fit the underlay MTU once encapsulated: too_big', () => {
    expectDrop('too_big', frame(podPacket('10.244.3.2', { size: 1500 - 20 - 8 })));
    // The same packet 20 bytes smaller fits.
    assert.equal(egress(frame(podPacket('10.244.3.2', { size: 1500 - 20 - 8 - 20 }))).retval, TC_ACT_REDIRECT);
  });

  it('before the config is READY: not_ready', () => {
    fx.configure('vxlan', { ready: false });
    try {
      expectDrop('not_ready', frame(podPacket('10.244.2.2')));
    } finally {
      fx.configure('vxlan');
    }
  });
});
