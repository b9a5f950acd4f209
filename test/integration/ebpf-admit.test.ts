// What the eBPF dataplane does with vxlan packets that are not from its
// network: the collect_md device decapsulates every VNI from every sender,
// so overlay_ingress holds them to the network's VNI and to the rule that a
// pod address speaks only through the PublicIP of the lease that holds it.
// Real packets, from real vxlan devices in the lab's router namespace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, subnetOf, type ClusterNode } from '../../lab/cluster.js';
import { openPinnedMaps } from 'weft/dataplane/ebpf/loader.js';
import { decodeCounter, dropKey, type DropReason } from 'weft/dataplane/ebpf/maps.js';
import { snmp } from '../bpf/traffic.js';

function drops(node: ClusterNode, reason: DropReason): bigint {
  const maps = openPinnedMaps(node.host.pinDir);
  try {
    return decodeCounter(maps.drops.lookup(dropKey(reason))!).packets;
  } finally {
    Object.values(maps).forEach((m) => m.close());
  }
}

test('vxlan: a wrong VNI, and a sender that is not the lease holder of the pod address it uses, are dropped and counted', async (t) => {
  const c = await Cluster.start({
    config: JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } }),
    dataplane: 'ebpf',
    hosts: [{ name: 'h1', octet: 11 }, { name: 'h2', octet: 12 }],
  });
  t.after(() => c.destroy());
  const [h1, h2] = [c.node('h1'), c.node('h2')];
  const [target, peerPod] = [h1.pods[0], h2.pods[0]];
  const [dev] = JSON.parse(await h1.host.ip('-j', 'link', 'show', 'weft.vxlan')) as Array<{ address: string }>;
  const router = c.lab.router;
  // An address inside h2's subnet: only h2 (192.0.2.12) may send from it.
  const spoofed = peerPod.ip.replace(/\.\d+$/, '.77');
  const h1Subnet = subnetOf(h1);

  /** A vxlan device in the router namespace aimed at h1, sending from src to the target pod. */
  async function sender(name: string, vni: number, src: string): Promise<void> {
    await router.ip('link', 'add', name, 'type', 'vxlan', 'id', String(vni), 'remote', h1.host.address, 'local', '192.0.2.1', 'dstport', '8472', 'nolearning');
    await router.ip('addr', 'add', `${src}/32`, 'dev', name);
    await router.ip('link', 'set', name, 'up');
    await router.ip('route', 'replace', h1Subnet, 'dev', name, 'src', src);
    await router.ip('neigh', 'replace', target.ip, 'lladdr', dev.address, 'dev', name, 'nud', 'permanent');
  }

  async function send(src: string): Promise<void> {
    await router.exec(['ping', '-c', '3', '-i', '0.2', '-W', '1', '-I', src, target.ip], { allowFail: true });
  }

  // Legitimate traffic first: the rule must let h2's pods through.
  const echoes0 = await snmp(target.ns, 'Icmp', 'InEchos');
  await peerPod.ns.exec(['ping', '-c', '2', '-i', '0.2', '-W', '2', target.ip]);
  assert.equal((await snmp(target.ns, 'Icmp', 'InEchos')) - echoes0, 2, 'h2\'s pod reaches h1\'s pod');

  await sender('wvx1', 1, spoofed);
  let echoes = await snmp(target.ns, 'Icmp', 'InEchos');
  let before = drops(h1, 'unknown_peer');
  await send(spoofed);
  // At least: the device also sends its own IGMP reports from that address.
  assert.ok(drops(h1, 'unknown_peer') - before >= 3n, `h1 dropped the 3 pings from 192.0.2.1 claiming ${spoofed} as unknown_peer`);
  assert.equal((await snmp(target.ns, 'Icmp', 'InEchos')) - echoes, 0, 'the pod saw none of them');
  await router.ip('link', 'del', 'wvx1');

  // A VNI the network does not use: dropped before anything else is asked.
  await sender('wvx2', 2, spoofed);
  echoes = await snmp(target.ns, 'Icmp', 'InEchos');
  before = drops(h1, 'wrong_vni');
  await send(spoofed);
  assert.ok(drops(h1, 'wrong_vni') - before >= 3n, 'h1 dropped the 3 pings with VNI 2 as wrong_vni');
  assert.equal((await snmp(target.ns, 'Icmp', 'InEchos')) - echoes, 0, 'the pod saw none of them');
  await router.ip('link', 'del', 'wvx2');

  // An inner source outside the Network passes, as flannel's device lets it (a host forwarding untranslated traffic).
  await sender('wvx3', 1, '172.16.0.5');
  echoes = await snmp(target.ns, 'Icmp', 'InEchos');
  await send('172.16.0.5');
  assert.equal((await snmp(target.ns, 'Icmp', 'InEchos')) - echoes, 3, 'the pod received the 3 pings from outside the Network');
});
