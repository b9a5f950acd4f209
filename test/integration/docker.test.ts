// Real docker on two weft hosts, as a fresh machine runs it: ip_forward off
// until dockerd turns it on (and sets the FORWARD policy to DROP), dockerd
// started with `weft mk-docker-opts`' output, containers from a busybox image
// made with `docker import`. The containers on the two hosts ping each other
// and move 50 MB over TCP; h1 runs the eBPF dataplane, h2 netlink. Without
// --iptables-forward-rules this is what failed: the decapsulated packets died
// in FORWARD (test/integration/firewall.test.ts shows that control).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Lab, type LabHost } from '../../lab/netns.js';
import { LabEtcd } from '../../lab/etcd.js';
import { CLI, startAgent, subnetFile, type LabAgent } from '../../lab/agent.js';
import { BUSYBOX_IMAGE, LabDocker, dockerUnavailable } from '../../lab/docker.js';

const MB = 50;
const unavailable = dockerUnavailable();
const cleanup: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

/** dockerd's options as the unit's ExecStartPost writes them: DOCKER_OPTS=" --bip=... --ip-masq=false --mtu=... ". */
async function dockerOpts(host: LabHost): Promise<string[]> {
  const out = path.join(host.dir, 'docker_opts.env');
  await host.exec([process.execPath, CLI, 'mk-docker-opts', '-f', subnetFile(host), '-d', out]);
  const combined = /^DOCKER_OPTS="(.*)"$/m.exec(fs.readFileSync(out, 'utf8'))![1];
  return combined.split(' ').filter(Boolean);
}

test('containers on two fresh weft hosts reach each other through real docker', { skip: unavailable ?? false, timeout: 110_000 }, async (t) => {
  const started = Date.now();
  const lab = await Lab.create();
  cleanup.push(() => lab.destroy());
  const hadContainerdRun = fs.existsSync('/run/containerd');
  const [h1, h2] = [await lab.addHost('h1', { octet: 11, ipForward: false }), await lab.addHost('h2', { octet: 12, ipForward: false })];
  const etcd = await LabEtcd.start({ netns: lab.router });
  cleanup.push(() => etcd.destroy());
  await etcd.etcdctl(['put', '/coreos.com/network/config', '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}']);
  for (const h of [h1, h2]) assert.equal((await h.exec(['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim(), '0', 'a fresh host forwards nothing');

  // As the unit runs it: --ip-masq, the forward rules on by default.
  const agents: LabAgent[] = [
    startAgent(h1, { etcdEndpoint: etcd.endpoint, dataplane: 'ebpf', extra: ['--ip-masq'] }),
    startAgent(h2, { etcdEndpoint: etcd.endpoint, dataplane: 'netlink', extra: ['--ip-masq'] }),
  ];
  cleanup.push(async () => void (await Promise.all(agents.map((a) => a.stop()))));
  await Promise.all(agents.map((a) => a.waitForMsg('agent ready', 30_000)));

  const opts = await Promise.all([h1, h2].map(dockerOpts));
  assert.ok(opts[0].includes('--ip-masq=false'), `mk-docker-opts: ${opts[0].join(' ')}`);
  const dockers = await Promise.all([h1, h2].map((h, i) => LabDocker.start(h, opts[i])));
  cleanup.push(async () => {
    await Promise.all(dockers.map((d) => d.stop()));
    // containerd's shims keep their sockets in /run/containerd/s whatever its state dir: remove what we made, if empty.
    for (const d of hadContainerdRun ? [] : ['/run/containerd/s', '/run/containerd']) {
      try {
        fs.rmdirSync(d);
      } catch {
        // Not empty, or already gone: not ours to remove then.
      }
    }
  });
  t.diagnostic(`agents and both dockerds up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  for (const h of [h1, h2]) {
    assert.equal((await h.exec(['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim(), '1', 'dockerd turned forwarding on');
    assert.match((await h.exec(['iptables', '-S', 'FORWARD'])).stdout, /^-P FORWARD DROP$/m, '... and set the FORWARD policy to DROP');
  }
  await Promise.all(dockers.map((d) => d.importBusybox()));

  const [d1, d2] = dockers;
  await d2.docker(['run', '-d', '--name', 'c2', BUSYBOX_IMAGE, 'sleep', '600']);
  await d1.docker(['run', '-d', '--name', 'c1', BUSYBOX_IMAGE, 'sleep', '600']);
  const [ip1, ip2] = [await d1.ipOf('c1'), await d2.ipOf('c2')];
  const env1 = fs.readFileSync(subnetFile(h1), 'utf8');
  assert.ok(env1.includes(`FLANNEL_SUBNET=${ip1.replace(/\.\d+$/, '.1')}/`), `c1 (${ip1}) is in h1's subnet: ${env1}`);

  const ping = async (d: LabDocker, from: string, to: string): Promise<void> => {
    const r = await d.docker(['exec', from, 'ping', '-c', '3', '-i', '0.2', '-W', '2', to], true);
    assert.equal(r.code, 0, `${from} -> ${to}: ${r.stdout}${r.stderr}`);
  };
  await ping(d1, 'c1', ip2);
  await ping(d2, 'c2', ip1);

  // 50 MB from c1 to a listener in c2, counted at the receiver (-i: busybox nc -l ends on EOF from its stdin).
  await d2.docker(['run', '-d', '-i', '--name', 'sink', BUSYBOX_IMAGE, 'sh', '-c', 'nc -l -p 5001 | wc -c']);
  const sink = await d2.ipOf('sink');
  const t0 = Date.now();
  const send = await d1.docker(['exec', 'c1', 'sh', '-c', `dd if=/dev/zero bs=1048576 count=${MB} 2>/dev/null | nc -w 10 ${sink} 5001`], true, 60_000);
  assert.equal(send.code, 0, send.stderr);
  await d2.docker(['wait', 'sink'], false, 30_000);
  const seconds = (Date.now() - t0) / 1000;
  assert.equal((await d2.docker(['logs', 'sink'])).stdout.trim(), String(MB * 1048576), 'every byte arrived');
  t.diagnostic(`${MB} MB container to container across hosts in ${seconds.toFixed(2)} s; whole test ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
