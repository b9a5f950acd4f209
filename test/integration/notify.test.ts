// systemd's notification protocol against a listening NOTIFY_SOCKET (a path,
// and an abstract name): STATUS lines on the way, READY=1 only once subnet.env
// exists, from the agent's own PID (systemd drops a Type=notify unit's READY
// from any other), WATCHDOG=1 at half WATCHDOG_USEC, STOPPING=1 on SIGTERM.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Lab, type LabHost } from '../../lab/netns.js';
import { LabEtcd } from '../../lab/etcd.js';
import { startAgent, subnetFile } from '../../lab/agent.js';
import { NotifyListener } from '../../lab/notify.js';

let lab: Lab;
let etcd: LabEtcd;
let host: LabHost;
before(async () => {
  lab = await Lab.create();
  host = await lab.addHost('h1', { octet: 11 });
  etcd = await LabEtcd.start({ netns: lab.router });
});
after(async () => {
  await etcd?.destroy();
  await lab?.destroy();
});

test('a path socket: STATUS while waiting, READY=1 after subnet.env and the peers, from the main PID, WATCHDOG=1, STOPPING=1', async () => {
  fs.rmSync(subnetFile(host), { force: true });
  // A peer that exists before the agent starts: READY=1 waits until its route is programmed.
  const peer = '{"PublicIP":"192.0.2.99","PublicIPv6":null,"BackendType":"host-gw"}';
  await etcd.etcdctl(['put', '/n1/network/subnets/10.244.99.0-24', peer]);
  const listener = await NotifyListener.start(host, path.join(host.dir, 'notify.sock'), subnetFile(host));
  const agent = startAgent(host, {
    etcdEndpoint: etcd.endpoint,
    dataplane: 'netlink',
    extra: ['--etcd-prefix', '/n1/network'],
    env: { NOTIFY_SOCKET: listener.address, WATCHDOG_USEC: '400000' },
  });
  try {
    const waiting = await listener.waitFor('the wait for the config', (m) => m.lines.some((l) => l.startsWith('STATUS=waiting for the network config at /n1/network/config')));
    assert.equal(waiting.fileExists, false, 'no subnet.env while waiting');
    assert.equal(listener.lines.includes('READY=1'), false);
    await etcd.etcdctl(['put', '/n1/network/config', '{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}']);
    const ready = await listener.waitFor('READY=1', (m) => m.lines.includes('READY=1'), 20_000);
    assert.equal(ready.fileExists, true, 'subnet.env was there when READY=1 arrived');
    assert.equal(ready.pid, agent.pid, 'sent by the main PID, as NotifyAccess=main needs');
    assert.match(ready.lines.find((l) => l.startsWith('STATUS='))!, /^STATUS=ready: subnet 10\.244\.\d+\.0\/24, 1 peer, dataplane netlink$/);
    // The agent's stdout and the listener's report reach this process by two pipes, in either order: wait for the line, then compare the clocks.
    const peerAdded = await agent.waitForLog('peer added for 192.0.2.99', (l) => l.msg === 'peer added' && l.peer === '192.0.2.99');
    const addedAt = Date.parse(String(peerAdded.time));
    assert.ok(addedAt <= ready.atMs, `the initial peers were programmed before READY=1 (logged at ${addedAt}, READY=1 received at ${ready.atMs})`);
    // Through the nexthop object weft names after the subnet (10.244.99.0 is 183788288).
    assert.match(await host.ip('route'), /10\.244\.99\.0\/24 nhid 183788288 via 192\.0\.2\.99 dev eth0 /);
    const statuses = listener.lines.filter((l) => l.startsWith('STATUS=')).map((l) => l.replace(/ 10\.244\.\d+\.0\/24/, ' SUBNET'));
    assert.deepEqual(statuses.slice(0, 4), [
      'STATUS=waiting for the network config at /n1/network/config in etcd',
      'STATUS=acquiring a subnet lease',
      'STATUS=programming the dataplane for SUBNET',
      'STATUS=listing and programming the peers of SUBNET',
    ]);
    const since = Date.now();
    await listener.waitFor('three WATCHDOG=1', () => listener.lines.filter((l) => l === 'WATCHDOG=1').length >= 3, 3000);
    assert.ok(Date.now() - since < 1500, 'every 200 ms for WATCHDOG_USEC=400000');
    await agent.stop();
    await listener.waitFor('STOPPING=1', (m) => m.lines.includes('STOPPING=1'), 3000);
    assert.ok(listener.messages.every((m) => m.pid === agent.pid));
  } finally {
    await agent.stop();
    await listener.stop();
  }
});

test('an abstract socket (@name), as systemd also hands out', async () => {
  fs.rmSync(subnetFile(host), { force: true });
  await etcd.etcdctl(['put', '/n2/network/config', '{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}']);
  const listener = await NotifyListener.start(host, `@${lab.id}-notify`, subnetFile(host));
  const agent = startAgent(host, { etcdEndpoint: etcd.endpoint, extra: ['--etcd-prefix', '/n2/network'], env: { NOTIFY_SOCKET: listener.address } });
  try {
    const ready = await listener.waitFor('READY=1', (m) => m.lines.includes('READY=1'));
    assert.equal(ready.fileExists, true);
    assert.equal(ready.pid, agent.pid);
    assert.equal(listener.lines.includes('WATCHDOG=1'), false, 'no watchdog without WATCHDOG_USEC');
  } finally {
    await agent.stop();
    await listener.stop();
  }
});
