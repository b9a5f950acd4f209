// The lab itself: hosts on two segments reach each other through the router,
// pods reach their host, etcd in the router namespace serves both the agents'
// side of the underlay and the test process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BRIDGE_NF_SYSCTLS, Lab } from '../../lab/netns.js';
import { LabEtcd } from '../../lab/etcd.js';

test('lab: hosts, pods and etcd', async (t) => {
  const lab = await Lab.create();
  t.after(() => lab.destroy());
  const h1 = await lab.addHost('h1', { octet: 11 });
  const h2 = await lab.addHost('h2', { octet: 21, segment: 1 });
  await h1.exec(['ping', '-c1', '-W2', h2.address]);
  // The router is the wire: its segment bridges run no bridge-nf (a host keeps the kernel's default, its profile's choice).
  for (const key of BRIDGE_NF_SYSCTLS) assert.equal((await lab.router.exec(['sysctl', '-n', key])).stdout.trim(), '0', key);
  await h1.addBridge('cni0', '10.244.1.1/24', 1450);
  const pod = await h1.addPod('p1', { bridge: 'cni0', cidr: '10.244.1.2/24', gateway: '10.244.1.1', mtu: 1450 });
  await pod.exec(['ping', '-c1', '-W2', '10.244.1.1']);

  const etcd = await LabEtcd.start({ netns: lab.router });
  t.after(() => etcd.destroy());
  const c = etcd.client();
  await c.put('/weft-lab/k').value('v');
  const fromHost = await h2.exec(['etcdctl', '--endpoints', etcd.endpoint, 'get', '--print-value-only', '/weft-lab/k'], { env: { ...process.env, ETCDCTL_API: '3' } });
  assert.equal(fromHost.stdout.trim(), 'v');
});
