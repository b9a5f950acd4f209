// The CNI plugin's integration tests, shared by the eBPF file (test/integration/cni.test.ts) and the
// netlink one (cni-netlink.test.ts): a cluster whose pods are made through weft's CNI plugin, and the
// checks that depend on the dataplane carrying the pods' traffic.
import assert from 'node:assert/strict';
import path from 'node:path';
import { Cluster, subnetOf, type ClusterNode, type Pod } from '../../lab/cluster.js';
import type { Attachment, CniNetwork } from '../../lab/cni.js';
import { crossHostMatrix, matrixFailures, startSinks, transfer } from '../../lab/matrix.js';
import { IPNet, parseIP } from 'weft/core/ipnet.js';

export const PODS = 20;

/**
 * Three hosts with real agents, PODS pods each through the plugin. The agents run with --ip-masq as
 * kube-flannel runs flanneld, so the bridge does not masquerade pod-to-pod traffic and each sink sees the
 * sending pod's own address.
 */
export function cniCluster(dataplane: 'ebpf' | 'netlink'): Promise<Cluster> {
  return Cluster.start({
    config: JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } }),
    dataplane,
    pods: 'cni',
    podsPerHost: PODS,
    agentArgs: ['--ip-masq'],
    hosts: [{ name: 'h1', octet: 11 }, { name: 'h2', octet: 12 }, { name: 'h3', octet: 13, segment: 1 }],
  });
}

/** The host-side veth of an attachment: the result's interface without a sandbox that is not the bridge. */
export function hostVeth(a: Attachment): string {
  const ifs = a.result.interfaces as Array<{ name: string; sandbox?: string }>;
  return ifs.find((i) => !i.sandbox && i.name !== 'cni0')!.name;
}

export async function linkExists(node: ClusterNode, dev: string): Promise<boolean> {
  return (await node.host.exec(['ip', 'link', 'show', 'dev', dev], { allowFail: true })).code === 0;
}

/** host-local's reservation file for an address (its dataDir/<network name>/<ip>). */
export const reservation = (cni: CniNetwork, ip: string): string => path.join(cni.ipamDir, 'cbr0', ip);

export function inSubnet(ip: string, subnet: string): boolean {
  return IPNet.parse(subnet)!.containsIP(parseIP(ip)!.value);
}

export async function newPod(node: ClusterNode, name: string): Promise<Pod['ns']> {
  return node.host.addPodNetns(name);
}

/** Every pod to every pod on the other hosts: ping and a TCP transfer; addresses from each host's subnet. */
export const matrixCheck = {
  title: `${PODS} pods per host on three hosts: addresses from each host's subnet, every pod reaches every pod on the other hosts (ping and TCP)`,
  run: async (c: Cluster): Promise<void> => {
    for (const n of c.nodes) {
      const subnet = subnetOf(n);
      assert.equal(n.pods.length, PODS);
      assert.equal(new Set(n.pods.map((p) => p.ip)).size, PODS, `${n.spec.name}: distinct addresses`);
      for (const p of n.pods) assert.ok(inSubnet(p.ip, subnet), `${p.ip} is in ${n.spec.name}'s subnet ${subnet}`);
    }
    const results = await crossHostMatrix(c.pods, { parallel: 3 });
    assert.equal(results.length, 3 * PODS * 2 * PODS);
    assert.equal(matrixFailures(results), '', `${results.filter((r) => !r.ping || 'error' in r.tcp).length} of ${results.length} pairs failed`);
  },
};

/** portmap: a hostPort reached from another host. */
export const portmapCheck = {
  title: 'portmap: a hostPort on one host reaches the pod from another host',
  run: async (c: Cluster): Promise<void> => {
    const [h1, h2] = [c.node('h1'), c.node('h2')];
    const ns = await newPod(h1, 'web');
    const a = await h1.cni!.add('h1-web', ns, { portMappings: [{ hostPort: 8080, containerPort: 7777, protocol: 'tcp' }] });
    const sinks = startSinks([{ ns, ip: a.ip }], 7777);
    try {
      const got = await transfer(h2.host, h1.host.address, 8080, 4096);
      assert.deepEqual(got, { bytes: 4096, seenFrom: h2.host.address }, 'h2 reached the pod through 192.0.2.11:8080');
      assert.equal(sinks.served.get(a.ip), 1);
    } finally {
      await sinks.close();
    }
    await h1.cni!.del(a);
    const iptables = (await h1.host.exec(['iptables-save', '-t', 'nat'])).stdout;
    assert.doesNotMatch(iptables, /dport 8080/, 'DEL removed the port mapping');
  },
};
