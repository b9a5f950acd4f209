// --ip-masq and --iptables-forward-rules with real iptables (Debian's, the nft
// backend) in lab hosts, on both dataplanes: flannel's chains, rule for rule;
// pods reach an address outside the cluster that has no route back to them
// (only masquerading brings the reply home) while pod-to-pod traffic keeps its
// source; pods still reach each other under docker's FORWARD DROP policy;
// flushed rules come back within --iptables-resync; weft uninstall removes them.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, sourceSeen, subnetOf, reach, type ClusterNode } from '../../lab/cluster.js';
import { startAgent, CLI } from '../../lab/agent.js';
import { SEGMENTS, type LabHost } from '../../lab/netns.js';
import { waitFor } from '../../lab/exec.js';

const CONFIG = '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}';
/** The lab router: outside the cluster, with no route to 10.244.0.0/16. */
const OUTSIDE = SEGMENTS[0].gateway;

const clusters: Cluster[] = [];
after(async () => {
  for (const c of clusters) await c.destroy();
});

async function iptables(host: LabHost, ...args: string[]): Promise<string> {
  return (await host.exec(['iptables', '-w', '5', ...args])).stdout;
}

/** flannel's rules as iptables-save prints them (FLANNEL.md, with flannel's comments). */
function flannelRules(subnet: string): { nat: string[]; filter: string[] } {
  const m = '-m comment --comment "flanneld masq"';
  const f = '-m comment --comment "flanneld forward"';
  const n = '10.244.0.0/16';
  return {
    nat: [
      `-A POSTROUTING ${m} -j FLANNEL-POSTRTG`,
      `-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 ${m} -j RETURN`,
      `-A FLANNEL-POSTRTG -s ${subnet} -d ${n} ${m} -j RETURN`,
      `-A FLANNEL-POSTRTG -s ${n} -d ${subnet} ${m} -j RETURN`,
      `-A FLANNEL-POSTRTG ! -s ${n} -d ${subnet} ${m} -j RETURN`,
      `-A FLANNEL-POSTRTG -s ${n} ! -d 224.0.0.0/4 ${m} -j MASQUERADE --random-fully`,
      `-A FLANNEL-POSTRTG ! -s ${n} -d ${n} ${m} -j MASQUERADE --random-fully`,
    ],
    filter: [`-A FORWARD ${f} -j FLANNEL-FWD`, `-A FLANNEL-FWD -s ${n} ${f} -j ACCEPT`, `-A FLANNEL-FWD -d ${n} ${f} -j ACCEPT`],
  };
}

async function saved(host: LabHost, table: string): Promise<string[]> {
  return (await host.exec(['iptables-save', '-t', table])).stdout.split('\n').filter((l) => /^-A .*FLANNEL/.test(l));
}

/** Stops the node's agent and starts it again with `extra` (the firewall flags under test). */
async function restart(c: Cluster, node: ClusterNode, dataplane: string, extra: string[]): Promise<void> {
  await node.agent!.stop();
  node.agent = startAgent(node.host, { etcdEndpoint: c.etcd.endpoint, dataplane, extra: ['--etcd-prefix', c.prefix, ...extra] });
  await node.agent.waitForMsg('agent ready', 30_000);
}

for (const dataplane of ['ebpf', 'netlink']) {
  test(`${dataplane}: --ip-masq masquerades what leaves the cluster and nothing inside it; --iptables-forward-rules gets past FORWARD DROP`, async (t) => {
    const c = await Cluster.start({
      hosts: [{ name: 'h1', octet: 11 }, { name: 'h2', octet: 12 }],
      config: CONFIG,
      dataplane,
      agentArgs: ['--ip-masq', '--iptables-resync', '1'],
    });
    clusters.push(c);
    const [h1, h2] = [c.node('h1'), c.node('h2')];
    const [p1, p2] = [h1.pods[0], h2.pods[0]];

    await t.test("flannel's chains, rule for rule", async () => {
      const want = flannelRules(subnetOf(h1));
      assert.deepEqual(await saved(h1.host, 'nat'), want.nat);
      assert.deepEqual(await saved(h1.host, 'filter'), want.filter);
      assert.equal(h1.env.FLANNEL_IPMASQ, 'true');
    });

    await t.test('a pod reaches the outside as its host; a pod on another host sees the pod itself', async () => {
      assert.equal(await sourceSeen(p1.ns, c.lab.router, OUTSIDE), h1.host.address, 'masqueraded to the host address (the router has no route back to pods)');
      assert.equal(await sourceSeen(p1.ns, p2.ns, p2.ip), p1.ip, 'pod to pod keeps its source');
      assert.equal(await sourceSeen(p2.ns, p1.ns, p1.ip), p2.ip);
    });

    await t.test("with docker's FORWARD policy DROP, pods still reach each other (and do not without the rules)", async () => {
      for (const n of [h1, h2]) await iptables(n.host, '-P', 'FORWARD', 'DROP');
      assert.ok((await reach(p1.ns, p2.ip, 'icmp')).ok, 'ping across hosts under FORWARD DROP');
      assert.ok((await reach(p2.ns, p1.ip, 'tcp', p1.ns)).ok, 'tcp across hosts under FORWARD DROP');
      // The control: an agent started with the forward rules off removes FLANNEL-FWD, and the policy drops.
      await restart(c, h2, dataplane, ['--ip-masq', '--iptables-forward-rules=false']);
      assert.deepEqual(await saved(h2.host, 'filter'), []);
      assert.equal((await reach(p1.ns, p2.ip, 'icmp')).ok, false, 'FORWARD DROP without FLANNEL-FWD drops');
      await restart(c, h2, dataplane, ['--ip-masq', '--iptables-resync', '1']);
      assert.ok((await reach(p1.ns, p2.ip, 'icmp')).ok);
    });

    await t.test('flushed or deleted rules come back within --iptables-resync', async (t) => {
      const from = h1.agent!.lines.length;
      // All three changes in one transaction, so that a resync between them cannot repair half of them first.
      const damage = ['*filter', '-F FLANNEL-FWD', 'COMMIT', '*nat', '-F FLANNEL-POSTRTG', '-D POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG', 'COMMIT', ''];
      await h1.host.exec(['iptables-restore', '--noflush'], { input: damage.join('\n') });
      const t0 = Date.now();
      // iptables-restore commits each table in a transaction of its own: a resync that falls between the two sees
      // the filter table's damage alone and repairs the nat table's in its next pass, on a line of its own.
      const jump = /the jump from POSTROUTING to FLANNEL-POSTRTG was missing/;
      const repaired = await h1.agent!.waitForLog(
        'the repair of the POSTROUTING jump',
        (l) => l.msg === 'firewall: restored the rules someone changed' && ((l.repairs as string[] | undefined) ?? []).some((r) => jump.test(r)),
        5000,
        from,
      );
      const want = flannelRules(subnetOf(h1));
      await waitFor('the rules back', async () => (await saved(h1.host, 'nat')).join('\n') === want.nat.join('\n') && (await saved(h1.host, 'filter')).join('\n') === want.filter.join('\n'), 3000);
      const ms = Date.now() - t0;
      t.diagnostic(`rules back ${ms} ms after the flush (--iptables-resync 1)`);
      assert.ok(ms < 2500, `restored after ${ms} ms with --iptables-resync 1`);
      const fwd = h1.agent!.lines.slice(from).filter((l) => l.msg === 'firewall: restored the rules someone changed').flatMap((l) => l.repairs as string[]);
      assert.ok(fwd.some((r) => /FLANNEL-FWD/.test(r)), `the forward chain's repair was logged too: ${JSON.stringify(fwd)} (with ${JSON.stringify(repaired.repairs)})`);
      assert.equal(await sourceSeen(p1.ns, c.lab.router, OUTSIDE), h1.host.address);
    });

    await t.test('weft uninstall removes the chains and the jumps, and without them the outside is out of reach', async () => {
      await h1.agent!.stop();
      await iptables(h1.host, '-P', 'FORWARD', 'ACCEPT');
      const r = await h1.host.exec([process.execPath, CLI, 'uninstall', '--bpf-pin-dir', h1.host.pinDir]);
      assert.match(r.stdout, /^removed chain    iptables nat FLANNEL-POSTRTG \(and 1 jump to it\)$/m);
      assert.match(r.stdout, /^removed chain    iptables filter FLANNEL-FWD \(and 1 jump to it\)$/m);
      assert.deepEqual([...(await saved(h1.host, 'nat')), ...(await saved(h1.host, 'filter'))], []);
      assert.equal(await sourceSeen(p1.ns, c.lab.router, OUTSIDE), null, 'no masquerading: the reply has no way back');
      const again = await h1.host.exec([process.execPath, CLI, 'uninstall', '--bpf-pin-dir', h1.host.pinDir]);
      assert.doesNotMatch(again.stdout, /FLANNEL/);
    });

    await c.destroy();
    clusters.splice(clusters.indexOf(c), 1);
  });
}
