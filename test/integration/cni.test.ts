// weft's CNI plugin end to end, invoked as a container runtime invokes it
// (lab/cni.ts), with Debian's bridge, host-local and portmap as the
// delegates, in lab hosts whose real agents run the eBPF dataplane and the
// netlink one. The agents run with --ip-masq as kube-flannel runs flanneld, so
// the bridge does not masquerade pod-to-pod traffic and each sink sees the
// sending pod's own address.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Cluster, subnetOf, type ClusterNode, type Pod } from '../../lab/cluster.js';
import { CniFailure, CniNetwork, type Attachment } from '../../lab/cni.js';
import { crossHostMatrix, matrixFailures, startSinks, transfer } from '../../lab/matrix.js';
import { IPNet, parseIP } from 'weft/core/ipnet.js';
import { snmp, udpBurst } from '../bpf/traffic.js';

const CONFIG = JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } });
const PODS = 20;

/** The host-side veth of an attachment: the result's interface without a sandbox that is not the bridge. */
function hostVeth(a: Attachment): string {
  const ifs = a.result.interfaces as Array<{ name: string; sandbox?: string }>;
  return ifs.find((i) => !i.sandbox && i.name !== 'cni0')!.name;
}

async function linkExists(node: ClusterNode, dev: string): Promise<boolean> {
  return (await node.host.exec(['ip', 'link', 'show', 'dev', dev], { allowFail: true })).code === 0;
}

/** host-local's reservation file for an address (its dataDir/<network name>/<ip>). */
const reservation = (cni: CniNetwork, ip: string): string => path.join(cni.ipamDir, 'cbr0', ip);

function inSubnet(ip: string, subnet: string): boolean {
  return IPNet.parse(subnet)!.containsIP(parseIP(ip)!.value);
}

async function newPod(node: ClusterNode, name: string): Promise<Pod['ns']> {
  return node.host.addPodNetns(name);
}

for (const dataplane of ['ebpf', 'netlink'] as const) {
  test(`${dataplane}: pods made through weft's CNI plugin`, async (t) => {
    const c = await Cluster.start({
      config: CONFIG,
      dataplane,
      pods: 'cni',
      podsPerHost: PODS,
      agentArgs: ['--ip-masq'],
      hosts: [{ name: 'h1', octet: 11 }, { name: 'h2', octet: 12 }, { name: 'h3', octet: 13, segment: 1 }],
    });
    t.after(() => c.destroy());
    const [h1, h2] = [c.node('h1'), c.node('h2')];

    await t.test(`${PODS} pods per host on three hosts: addresses from each host's subnet, every pod reaches every pod on the other hosts (ping and TCP)`, async () => {
      for (const n of c.nodes) {
        const subnet = subnetOf(n);
        assert.equal(n.pods.length, PODS);
        assert.equal(new Set(n.pods.map((p) => p.ip)).size, PODS, `${n.spec.name}: distinct addresses`);
        for (const p of n.pods) assert.ok(inSubnet(p.ip, subnet), `${p.ip} is in ${n.spec.name}'s subnet ${subnet}`);
      }
      const results = await crossHostMatrix(c.pods, { parallel: 3 });
      assert.equal(results.length, 3 * PODS * 2 * PODS);
      assert.equal(matrixFailures(results), '', `${results.filter((r) => !r.ping || 'error' in r.tcp).length} of ${results.length} pairs failed`);
    });

    await t.test('DEL removes the veth and releases the address (an ADD asking for it gets it); DEL twice succeeds; CHECK reports a deleted interface', async () => {
      const cni = h1.cni!;
      const pod = h1.pods.at(-1)!;
      const a = pod.attachment!;
      assert.equal(await cni.check(a), null, 'CHECK of a healthy pod passes');
      const veth = hostVeth(a);
      assert.ok(await linkExists(h1, veth));
      assert.ok(fs.existsSync(reservation(cni, pod.ip)));
      // While the pod holds its address, nobody else gets it.
      const other = await newPod(h1, 'q1');
      await assert.rejects(cni.add('h1-q1', other, {}, { args: `IgnoreUnknown=1;IP=${pod.ip}` }), CniFailure);
      await cni.del(a);
      assert.equal(await linkExists(h1, veth), false, 'the host end of the veth is gone');
      assert.equal(fs.existsSync(reservation(cni, pod.ip)), false, 'host-local released the address');
      assert.equal(fs.existsSync(path.join(cni.dataDir, a.containerID)), false, 'the saved delegate config is gone');
      await cni.del(a);
      const again = await cni.add('h1-q1', other, {}, { args: `IgnoreUnknown=1;IP=${pod.ip}` });
      assert.equal(again.ip, pod.ip, 'the released address was taken by the next ADD');
      // CHECK with the interface gone from the pod: the bridge notices, and our plugin passes its error on.
      assert.equal(await cni.check(again), null);
      await other.ip('link', 'del', 'eth0');
      const failed = await cni.check(again);
      assert.ok(failed, 'CHECK failed');
      assert.equal(failed.plugin, 'flannel');
      assert.match(failed.reply.json?.msg as string, /eth0/);
      await cni.del(again);
      assert.equal(fs.existsSync(reservation(cni, pod.ip)), false);
    });

    await t.test(`${PODS} ADDs in parallel on one host all succeed with distinct addresses; ${PODS} DELs in parallel release them`, async () => {
      const cni = h2.cni!;
      const netns = await Promise.all(Array.from({ length: PODS }, (_, i) => newPod(h2, `par${i}`)));
      const adds = await Promise.all(netns.map((ns, i) => cni.add(`h2-par${i}`, ns)));
      const ips = adds.map((a) => a.ip);
      assert.equal(new Set(ips).size, PODS, `distinct: ${ips.join(' ')}`);
      for (const ip of ips) assert.ok(inSubnet(ip, subnetOf(h2)), `${ip} in ${subnetOf(h2)}`);
      for (const ip of [...ips, ...h2.pods.map((p) => p.ip)]) assert.ok(fs.existsSync(reservation(cni, ip)), `${ip} reserved`);
      await Promise.all(adds.map((a) => cni.del(a)));
      for (const ip of ips) assert.equal(fs.existsSync(reservation(cni, ip)), false, `${ip} released`);
    });

    await t.test('portmap: a hostPort on one host reaches the pod from another host', async () => {
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
    });

    if (dataplane === 'ebpf') {
      await t.test('the eBPF dataplane follows cni0 and hands peers\' packets straight to CNI pods', async () => {
        for (const n of c.nodes) {
          const line = await n.agent!.waitForLog('the bridge it follows', (l) => l.msg === 'following the bridges that hold our subnet');
          assert.deepEqual(line.bridges, ['cni0']);
        }
        const [a, b] = [h1.pods[0], h2.pods[0]];
        const fwd = await snmp(h2.host, 'Ip', 'ForwDatagrams');
        assert.equal(await udpBurst(a.ns, b.ns, b.ip, 200), 200, 'every datagram reached the pod');
        const byStack = (await snmp(h2.host, 'Ip', 'ForwDatagrams')) - fwd;
        assert.ok(byStack < 100, `h2's stack forwarded ${byStack} of 200 datagrams; the programs should have`);
      });

      await t.test('no agent yet (no subnet.env): code 11 with the message, and nothing left behind', async () => {
        const h4 = await c.lab.addHost('h4', { octet: 14 });
        const cni = await CniNetwork.install(h4);
        const ns = await h4.addPodNetns('p1');
        const r = await cni.invoke('ADD', cni.flannelConfig(), 'h4-p1', ns);
        assert.equal(r.code, 1);
        assert.equal(r.json?.code, 11);
        assert.equal(r.json?.msg, 'subnet.env not found: is the weft agent running?');
        await assert.rejects(cni.add('h4-p1', ns), (err: unknown) => err instanceof CniFailure && err.plugin === 'flannel' && err.reply.json?.code === 11);
        assert.equal(fs.existsSync(cni.dataDir) && fs.readdirSync(cni.dataDir).length > 0, false, 'no saved delegate config');
        assert.equal(fs.existsSync(cni.ipamDir), false, 'no address reserved');
        assert.doesNotMatch(await h4.ip('link'), /cni0|veth/, 'no bridge, no veth on the host');
        assert.deepEqual((await ns.ip('-o', 'link')).trim().split('\n').map((l) => l.split(':')[1].trim()), ['lo'], 'the pod has only lo');
        // STATUS (1.1.0) says the same as "not available".
        const status = await cni.invoke('STATUS', cni.flannelConfig({ cniVersion: '1.1.0' }), '');
        assert.deepEqual([status.code, status.json?.code], [1, 50]);
        // DEL of a container that was never created succeeds, and prints nothing.
        const del = await cni.invoke('DEL', cni.flannelConfig(), 'h4-never');
        assert.deepEqual([del.code, del.stdout], [0, '']);
      });

      await t.test('malformed configs: a decode error naming the field', async () => {
        const cni = h1.cni!;
        const ns = await newPod(h1, 'bad');
        const cases: Array<[Record<string, unknown> | string, number, RegExp]> = [
          [cni.flannelConfig({ delegate: 'bridge' }), 6, /delegate: expected an object/],
          [cni.flannelConfig({ subnetFile: 5 }), 6, /subnetFile: expected a string/],
          [cni.flannelConfig({ ipam: { routes: [{ dst: 'nowhere' }] } }), 6, /ipam\.routes\[0\]\.dst: expected a CIDR/],
          [cni.flannelConfig({ delegate: { type: 7 } }), 6, /delegate\.type: expected a string/],
          [cni.flannelConfig({ delegate: { ipam: {} } }), 7, /must not have 'ipam'/],
          [cni.flannelConfig({ cniVersion: '0.2.0' }), 1, /incompatible CNI versions/],
          ['{"cniVersion": "1.0.0", "name": "cbr0", "type": "flannel",', 6, /error unmarshall network config/],
        ];
        for (const [config, code, msg] of cases) {
          const r = await cni.invoke('ADD', config, 'h1-bad', ns);
          assert.equal(r.code, 1, r.stdout);
          assert.equal(r.json?.code, code, r.stdout);
          assert.match(`${r.json?.msg} ${r.json?.details ?? ''}`, msg);
        }
        assert.equal(fs.existsSync(path.join(cni.dataDir, 'h1-bad')), false);
      });

      await t.test("kube-flannel's 0.3.1 config gets a 0.3.1 result; a 1.1.0 config is served by 1.0.0 delegates; STATUS passes and GC releases what is not valid", async () => {
        const cni = h1.cni!;
        const old = await newPod(h1, 'v031');
        const r031 = await cni.invoke('ADD', cni.flannelConfig({ cniVersion: '0.3.1' }), 'h1-v031', old);
        assert.equal(r031.code, 0, r031.stdout);
        assert.equal(r031.json?.cniVersion, '0.3.1');
        assert.equal((r031.json?.ips as Array<{ version: string }>)[0].version, '4');
        const next = await newPod(h1, 'v110');
        const r110 = await cni.invoke('ADD', cni.flannelConfig({ cniVersion: '1.1.0' }), 'h1-v110', next);
        assert.equal(r110.code, 0, r110.stdout);
        assert.equal(r110.json?.cniVersion, '1.1.0');
        const ip110 = ((r110.json?.ips as Array<{ address: string }>)[0].address).split('/')[0];
        const status = await cni.invoke('STATUS', cni.flannelConfig({ cniVersion: '1.1.0' }), '');
        assert.deepEqual([status.code, status.stdout], [0, '']);
        // GC: every attachment but h1-v110 is still valid.
        const valid = [...fs.readdirSync(cni.dataDir)].filter((id) => id !== 'h1-v110').map((containerID) => ({ containerID, ifname: 'eth0' }));
        const gc = await cni.invoke('GC', cni.flannelConfig({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': valid }), '');
        assert.equal(gc.code, 0, gc.stdout);
        assert.equal(fs.existsSync(path.join(cni.dataDir, 'h1-v110')), false, 'the stale attachment is forgotten');
        assert.equal(fs.existsSync(reservation(cni, ip110)), false, 'and its address released');
        assert.ok(fs.existsSync(path.join(cni.dataDir, 'h1-v031')), 'valid attachments stay');
        await cni.invoke('DEL', cni.flannelConfig({ cniVersion: '0.3.1' }), 'h1-v031', old);
      });
    }
  });
}
