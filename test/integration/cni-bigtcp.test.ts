// "bigTCP": true in weft's CNI plugin config (src/cni/bigtcp.ts): a pod's interface, its veth's host end
// and the bridge take the underlay's BIG TCP limits when the underlay (the default route's device) has them
// above 64 KiB, and nothing changes otherwise or without the option. One lab host, a subnet.env written
// here (no agent: the plugin only reads it), Debian's bridge and host-local as the delegates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Lab, type Netns } from '../../lab/netns.js';
import { CniNetwork, type Attachment } from '../../lab/cni.js';
import { subnetFile } from '../../lab/agent.js';
import { writeSubnetEnv } from 'weft/agent/subnet-env.js';
import { IPNet } from 'weft/core/ipnet.js';
import { NetlinkHandle, type LinkSizes } from 'weft/native/netlink.js';

const BIG = 196608;

function sizes(ns: Netns, dev: string): LinkSizes {
  const nl = NetlinkHandle.openIn(`/run/netns/${ns.name}`);
  try {
    const l = nl.link(dev);
    assert.ok(l, `${ns.name} has ${dev}`);
    return nl.linkSizes(l.index)!;
  } finally {
    nl.close();
  }
}

function setUnderlay(ns: Netns, size: number): void {
  const nl = NetlinkHandle.openIn(`/run/netns/${ns.name}`);
  try {
    nl.linkSet(nl.link('eth0')!.index, { gsoIpv4MaxSize: size, groIpv4MaxSize: size });
  } finally {
    nl.close();
  }
}

test('bigTCP: the pod follows the underlay\'s BIG TCP limits, and only when asked and the underlay has them', async (t) => {
  const lab = await Lab.create();
  t.after(() => lab.destroy());
  const host = await lab.addHost('h1', { octet: 11 });
  fs.mkdirSync(host.dir, { recursive: true });
  writeSubnetEnv(subnetFile(host), { network: IPNet.parse('10.244.0.0/16')!, subnet: IPNet.parse('10.244.7.0/24')!, mtu: 1500, ipMasq: true });
  const cni = await CniNetwork.install(host);
  const withBig = cni.chained('big', []);
  const list = withBig.conflist();
  list.plugins.find((p) => p.type === 'flannel')!.bigTCP = true;
  fs.writeFileSync(withBig.confFile, JSON.stringify(list));

  const hostEnd = (a: Attachment): string => (a.result.interfaces as Array<{ name: string; sandbox?: string }>).find((i) => !i.sandbox && i.name !== 'cni0')!.name;
  const expect = (a: Attachment, gso: number, what: string): void => {
    for (const [ns, dev] of [[a.netns, a.ifname], [host, hostEnd(a)], [host, 'cni0']] as const) {
      const z = sizes(ns, dev);
      assert.deepEqual([z.gsoIpv4MaxSize, z.groIpv4MaxSize], [gso, gso], `${what}: ${ns.name}/${dev}`);
    }
  };
  const pod = async (name: string, net: CniNetwork): Promise<Attachment> => net.add(`c-${name}`, await host.addPodNetns(name));

  await t.test('underlay at the default 64 KiB: nothing changes', async () => {
    expect(await pod('p1', withBig), 65536, 'underlay 65536');
  });
  setUnderlay(host, BIG);
  await t.test('underlay raised: the pod\'s interface, its host end and cni0 take its limits', async () => {
    expect(await pod('p2', withBig), BIG, 'underlay BIG');
  });
  await t.test('without "bigTCP" in the config: a new pod keeps the default (cni0 stays as the other pod left it)', async () => {
    const a = await pod('p3', cni);
    assert.equal(sizes(a.netns, 'eth0').gsoIpv4MaxSize, 65536);
    assert.equal(sizes(host, hostEnd(a)).gsoIpv4MaxSize, 65536);
  });
});
