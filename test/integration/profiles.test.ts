// The bench's `bare` host profile (lab/profiles.ts): flanneld's own default
// rule, FLANNEL-FWD, on every host (the lab's flannel hosts write none of their
// own), and nothing that makes conntrack follow flows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster } from '../../lab/cluster.js';
import { applyProfile } from '../../lab/profiles.js';

test("bare profile: FLANNEL-FWD accepts the pods' forwarded packets and conntrack follows nothing", async (t) => {
  // The agents write no forward rules here: what is in FORWARD is the profile's.
  const c = await Cluster.start({
    config: JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'host-gw' } }),
    dataplane: 'netlink',
    hosts: [{ name: 'h1', octet: 11 }, { name: 'h2', octet: 12 }],
    agentArgs: ['--iptables-forward-rules=false'],
  });
  t.after(() => c.destroy());
  const [h1, h2] = [c.node('h1'), c.node('h2')];
  for (const n of [h1, h2]) {
    assert.doesNotMatch((await n.host.exec(['iptables', '-S', 'FORWARD'])).stdout, /FLANNEL-FWD/, `${n.host.name}: no forward rules before the profile`);
    await applyProfile(n.host, 'bare', { network: n.env.FLANNEL_NETWORK, subnet: n.env.FLANNEL_SUBNET, bridge: 'docker0' });
  }
  await h1.pods[0].ns.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', h2.pods[0].ip]);
  for (const n of [h1, h2]) {
    assert.match((await n.host.exec(['iptables', '-S', 'FORWARD'])).stdout, /-A FORWARD .*-j FLANNEL-FWD/);
    // -v -x: each rule's packet count. Requests and replies both come from a pod: -s <Network>, the first rule.
    const counts = (await n.host.exec(['iptables', '-L', 'FLANNEL-FWD', '-v', '-x', '-n'])).stdout
      .split('\n')
      .filter((l) => /ACCEPT/.test(l))
      .map((l) => Number(l.trim().split(/\s+/)[0]));
    assert.equal(counts.length, 2, `${n.host.name}: FLANNEL-FWD's two rules`);
    assert.ok(counts[0] >= 3, `${n.host.name}: FLANNEL-FWD accepted the pings (${counts.join(', ')})`);
    assert.equal((await n.host.exec(['iptables', '-t', 'nat', '-S'])).stdout.includes('FLANNEL-POSTRTG'), false, `${n.host.name}: no masquerade on bare`);
    const tracked = (await n.host.exec(['cat', '/proc/sys/net/netfilter/nf_conntrack_count'])).stdout.trim();
    assert.equal(tracked, '0', `${n.host.name}: conntrack follows no flow`);
  }
});
