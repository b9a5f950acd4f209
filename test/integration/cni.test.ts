// weft's CNI plugin end to end on the eBPF dataplane, invoked as a container runtime invokes it
// (lab/cni.ts), with Debian's bridge, host-local, portmap and bandwidth as the delegates and chained
// plugins, in lab hosts whose real agents program the eBPF dataplane. The checks that do not depend on the
// dataplane run here only; cni-netlink.test.ts runs the traffic checks on the netlink dataplane.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CniFailure, CniNetwork } from '../../lab/cni.js';
import { subnetOf } from '../../lab/cluster.js';
import { cniCluster, hostVeth, inSubnet, linkExists, matrixCheck, newPod, PODS, portmapCheck, reservation } from '../harness/cni.js';
import { IPERF3_PORT } from '../../lab/netns.js';

test("ebpf: pods made through weft's CNI plugin", async (t) => {
  const c = await cniCluster('ebpf');
  t.after(() => c.destroy());
  const [h1, h2] = [c.node('h1'), c.node('h2')];

  await t.test(matrixCheck.title, () => matrixCheck.run(c));

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

  await t.test('bandwidth chained after flannel and portmap: the runtime\'s limits shape the pod\'s veth, and DEL takes them off', async () => {
    const cni = h1.cni!.chained('30-bandwidth', [{ type: 'bandwidth', capabilities: { bandwidth: true } }]);
    const ns = await newPod(h1, 'slow');
    const bandwidth = { ingressRate: 8_000_000, ingressBurst: 80_000, egressRate: 8_000_000, egressBurst: 80_000 };
    const a = await cni.add('h1-slow', ns, { bandwidth });
    assert.equal((a.result.ips as Array<{ address: string }>)[0].address.split('/')[0], a.ip, 'the chain ends with our result');
    const veth = hostVeth(a);
    assert.match((await h1.host.exec(['tc', 'qdisc', 'show', 'dev', veth])).stdout, /qdisc tbf .*rate 8Mbit/);
    await cni.del(a);
    assert.equal(await linkExists(h1, veth), false);
    assert.doesNotMatch(await h1.host.ip('link'), /bwp/, 'the egress ifb device is gone');
  });

  await t.test(portmapCheck.title, () => portmapCheck.run(c));

  await t.test('the eBPF dataplane follows cni0 and hands peers\' TCP flows straight to CNI pods', async () => {
    for (const n of c.nodes) {
      const line = await n.agent!.waitForLog('the bridge it follows', (l) => l.msg === 'following the bridges that hold our subnet');
      assert.deepEqual(line.bridges, ['cni0']);
    }
    const [a, b] = [h1.pods[0], h2.pods[0]];
    // The bridge plugin masquerades for the pods (ipMasq: the agents do not), so conntrack follows every flow on
    // these hosts, as on a docker or Kubernetes node: a peer's established TCP flow skips h2's forward path once
    // the agent has marked it liberal in conntrack (README, "Flows conntrack follows"); the rest is conntrack's.
    await h2.agent!.waitForMsg(/^conntrack follows flows on this host/, 10_000);
    // A rule that only counts, at the top of h2's FORWARD: the bytes for b that h2's stack forwards itself.
    const rule = ['FORWARD', '-d', b.ip, '-p', 'tcp', '--dport', String(IPERF3_PORT), '-m', 'comment', '--comment', 'weft-test-count'];
    await h2.host.exec(['iptables', '-w', '-I', ...rule]);
    try {
      await b.ns.iperf3Server();
      const r = await a.ns.exec(['iperf3', '-c', b.ip, '-p', String(IPERF3_PORT), '-t', '3', '-J'], { timeoutMs: 30_000 });
      const received = (JSON.parse(r.stdout) as { end: { sum_received: { bytes: number } } }).end.sum_received.bytes;
      const out = (await h2.host.exec(['iptables', '-w', '-L', 'FORWARD', '1', '-v', '-x', '-n'])).stdout;
      const byStack = Number(out.trim().split(/\s+/)[1]);
      assert.ok(received > 10_000_000, `the stream moved ${received} bytes`);
      assert.ok(byStack < received / 5, `h2's stack forwarded ${byStack} of the ${received} bytes b received; the programs should have taken the rest`);
    } finally {
      await h2.host.exec(['iptables', '-w', '-D', ...rule], { allowFail: true });
    }
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
});
