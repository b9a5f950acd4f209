// The netlink dataplane's nexthop objects, against a lab host's kernel: each
// peer's next hop lives in a nexthop named after its subnet (flannel's
// gateway, device and onlink), which keeps programming O(N); a classic route
// left by an older agent is taken over in place; an id someone
// else's nexthop holds is left alone (that peer gets flannel's classic
// route); and uninstall removes routes before nexthops before the device.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Lab, type LabHost } from '../../lab/netns.js';
import { waitFor } from '../../lab/exec.js';
import { NetlinkHandle } from 'weft/native/netlink.js';
import { NetlinkDataplane, uninstallNetlink } from 'weft/dataplane/netlink/index.js';
import { createLogger } from 'weft/core/log.js';
import type { PeerRoute } from 'weft/core/model.js';
import { localNetwork, route } from '../../lab/model.js';

let lab: Lab;
let h: LabHost;
let nl: NetlinkHandle;
const nsPath = (x: LabHost): string => `/run/netns/${x.name}`;
const log = createLogger({ level: 'error', pretty: false });
const lines = (text: string): string[] => text.split('\n').map((l) => l.trim()).filter(Boolean);
const nhidOf = (subnet: string): number => subnet.split('/')[0].split('.').reduce((n, octet) => n * 256 + Number(octet), 0);

const peer = (i: number): PeerRoute =>
  route({ subnet: `10.244.${i}.0/24`, publicIP: `192.0.2.${100 + i}`, encap: 'vxlan', vni: 1, vtepMAC: `02:00:00:00:01:${i.toString(16).padStart(2, '0')}` });

function dataplane(): { dp: NetlinkDataplane; start: (peers: PeerRoute[]) => Promise<void> } {
  const eth0 = nl.link('eth0')!;
  const local = localNetwork({
    backend: 'vxlan',
    network: '10.244.0.0/16',
    subnet: '10.244.200.0/24',
    publicIP: h.address,
    iface: { name: 'eth0', index: eth0.index, mtu: eth0.mtu, address: h.address, mac: eth0.mac ?? '', networks: ['192.0.2.0/24'] },
    mtu: eth0.mtu - 50,
    vxlan: { vni: 1, port: 8472, gbp: false, learning: false, vtepMAC: '0e:ff:00:00:00:01' },
    pinDir: h.pinDir,
  });
  const dp = new NetlinkDataplane(log, { netns: nsPath(h), reconcileMs: 3_600_000 });
  return {
    dp,
    start: async (peers) => {
      await dp.start(local, { routes: () => peers });
      await dp.syncPeers();
    },
  };
}

before(async () => {
  lab = await Lab.create();
  h = await lab.addHost('h1', { octet: 11 });
  nl = NetlinkHandle.openIn(nsPath(h));
});

after(async () => {
  nl?.close();
  await lab?.destroy();
});

test('a classic route (an older agent\'s) is replaced by one through a nexthop; an id held by someone else\'s nexthop gets the classic route', async () => {
  const peers = [peer(1), peer(2), peer(3)];
  // What an older agent left on this host for peer 1 (the device is adopted: same shape); someone else's nexthop holds peer 2's id.
  await h.ip('link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '1', 'local', h.address, 'dev', 'eth0', 'dstport', '8472', 'nolearning');
  await h.ip('link', 'set', 'flannel.1', 'up');
  await h.ip('route', 'replace', '10.244.1.0/24', 'via', '10.244.1.0', 'dev', 'flannel.1', 'onlink', 'proto', '87');
  await h.ip('nexthop', 'add', 'id', String(nhidOf('10.244.2.0/24')), 'via', '192.0.2.1', 'dev', 'eth0', 'proto', 'static');
  const { dp, start } = dataplane();
  try {
    await start(peers);
    const routes = lines(await h.ip('route', 'show', 'proto', '87'));
    assert.deepEqual(routes, [
      `10.244.1.0/24 nhid ${nhidOf('10.244.1.0/24')} via 10.244.1.0 dev flannel.1 onlink`,
      '10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink',
      `10.244.3.0/24 nhid ${nhidOf('10.244.3.0/24')} via 10.244.3.0 dev flannel.1 onlink`,
    ]);
    assert.equal(lines(await h.ip('route', 'show', '10.244.1.0/24')).length, 1, 'the older route replaced, not doubled');
    assert.deepEqual(lines(await h.ip('nexthop')), [
      `id ${nhidOf('10.244.1.0/24')} via 10.244.1.0 dev flannel.1 scope link proto 87 onlink`,
      `id ${nhidOf('10.244.2.0/24')} via 192.0.2.1 dev eth0 scope link proto static`,
      `id ${nhidOf('10.244.3.0/24')} via 10.244.3.0 dev flannel.1 scope link proto 87 onlink`,
    ]);
    // A second sync changes nothing; the other's nexthop stays its own.
    await dp.syncPeers();
    assert.deepEqual(lines(await h.ip('route', 'show', 'proto', '87')), routes);
    // The id freed, the next reconcile moves peer 2 onto a nexthop of its own.
    await h.ip('nexthop', 'del', 'id', String(nhidOf('10.244.2.0/24')));
    dp.reconcile('test');
    assert.deepEqual(lines(await h.ip('route', 'show', '10.244.2.0/24')), [`10.244.2.0/24 nhid ${nhidOf('10.244.2.0/24')} via 10.244.2.0 dev flannel.1 proto 87 onlink`]);
    // A nexthop deleted by hand takes its route with it (the kernel reports only the nexthop's deletion); that
    // event alone brings both back (the periodic reconcile is an hour away here).
    await h.ip('nexthop', 'del', 'id', String(nhidOf('10.244.3.0/24')));
    const restored = `10.244.3.0/24 nhid ${nhidOf('10.244.3.0/24')} via 10.244.3.0 dev flannel.1 proto 87 onlink`;
    await waitFor('the route and its nexthop restored', async () => lines(await h.ip('route', 'show', '10.244.3.0/24')).join() === restored, 5000);
    // A peer that leaves takes its route and its nexthop.
    await dp.removePeer(peers[0]);
    assert.deepEqual(lines(await h.ip('route', 'show', '10.244.1.0/24')), []);
    assert.doesNotMatch(await h.ip('nexthop'), new RegExp(`^id ${nhidOf('10.244.1.0/24')} `, 'm'));
  } finally {
    await dp.stop();
  }
});

test('uninstall removes weft\'s routes, nexthops and device, and leaves someone else\'s nexthop and route', async () => {
  const peers = Array.from({ length: 150 }, (_, i) => peer(i + 1));
  const { dp, start } = dataplane();
  await start(peers);
  await dp.stop();
  await h.ip('nexthop', 'add', 'id', '7', 'via', '192.0.2.1', 'dev', 'eth0', 'proto', 'static');
  await h.ip('route', 'add', '198.51.100.0/24', 'nhid', '7');
  assert.equal(lines(await h.ip('nexthop', 'show', 'proto', '87')).length, 150);
  const report = uninstallNetlink(log, { netns: nsPath(h) });
  assert.deepEqual(report, { routes: [], devices: ['flannel.1'] });
  assert.deepEqual(lines(await h.ip('route', 'show', 'proto', '87')), []);
  assert.deepEqual(lines(await h.ip('nexthop')), ['id 7 via 192.0.2.1 dev eth0 scope link proto static']);
  assert.deepEqual(lines(await h.ip('route', 'show', '198.51.100.0/24')), ['198.51.100.0/24 nhid 7 via 192.0.2.1 dev eth0']);
  assert.doesNotMatch(await h.ip('link'), /flannel\.1/);
});
