// What the agent reads of the host for the programs' shortcuts, against a
// real lab host: the bridges that hold our subnet and the MACs learned on
// their ports (weft_ports), and the device that holds our subnet's gateway
// address (gateway_ingress). Bridges that are not ours, the bridge's own
// addresses and weft's own devices are left out.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Lab, type LabHost } from '../../lab/netns.js';
import { withNetns } from 'weft/native/addon.js';
import { NetlinkHandle } from 'weft/native/netlink.js';
import { desiredPorts } from 'weft/dataplane/ebpf/ports.js';
import { findGatewayDevice } from 'weft/dataplane/ebpf/gateway.js';
import { net } from '../../lab/model.js';

const SUBNET = net('10.244.1.0/24');

describe('host discovery for the shortcuts', () => {
  let lab: Lab;
  let host: LabHost;
  const inHost = <T>(fn: (nl: NetlinkHandle) => T): T =>
    withNetns(`/run/netns/${host.name}`, () => {
      const nl = NetlinkHandle.open();
      try {
        return fn(nl);
      } finally {
        nl.close();
      }
    });
  const index = async (dev: string): Promise<number> => (JSON.parse(await host.ip('-j', 'link', 'show', dev)) as Array<{ ifindex: number }>)[0].ifindex;

  before(async () => {
    lab = await Lab.create();
    host = await lab.addHost('h1', { octet: 11 });
  });
  after(() => lab?.destroy());

  it('no bridge yet: nothing to follow, no gateway', () => {
    assert.deepEqual(inHost((nl) => desiredPorts(nl, SUBNET)), { bridges: [], entries: new Map() });
    assert.equal(inHost((nl) => findGatewayDevice(nl, SUBNET, [])), null);
  });

  it('a docker-style bridge with pods: each pod\'s MAC maps to its port, once the bridge has learned it', async () => {
    await host.addBridge('docker0', '10.244.1.1/24', 1450);
    const p1 = await host.addPod('p1', { bridge: 'docker0', cidr: '10.244.1.2/24', gateway: '10.244.1.1', mtu: 1450 });
    const p2 = await host.addPod('p2', { bridge: 'docker0', cidr: '10.244.1.3/24', gateway: '10.244.1.1', mtu: 1450 });
    // A bridge of someone else's, with a port and a learned MAC, holding no address in our subnet.
    await host.addBridge('br-other', '10.244.200.1/24', 1500);
    const q1 = await host.addPod('q1', { bridge: 'br-other', cidr: '10.244.200.2/24', gateway: '10.244.200.1', mtu: 1500 });
    const mac = async (ns: typeof p1): Promise<string> => (JSON.parse(await ns.ip('-j', 'link', 'show', 'eth0')) as Array<{ address: string }>)[0].address;
    for (const [pod, gw] of [[p1, '10.244.1.1'], [p2, '10.244.1.1'], [q1, '10.244.200.1']] as const) {
      await pod.exec(['ping', '-c', '1', '-W', '2', gw]);
    }
    const br = await index('docker0');
    const got = inHost((nl) => desiredPorts(nl, SUBNET));
    assert.deepEqual(got.bridges, ['docker0']);
    assert.deepEqual(
      [...got.entries].sort(),
      [
        [`${br}/${await mac(p1)}`, { ifindex: await index('vp1'), peer: true }],
        [`${br}/${await mac(p2)}`, { ifindex: await index('vp2'), peer: true }],
      ].sort(),
      'the pods\' MACs only: not the bridge\'s, not its ports\', not another bridge\'s',
    );
  });

  it('a port whose other end stays in the host is no pod\'s: the programs redirect to it, never into a peer namespace', async () => {
    await host.ip('link', 'add', 'vloc', 'type', 'veth', 'peer', 'name', 'vloc-p');
    await host.ip('link', 'set', 'vloc', 'master', 'docker0', 'up');
    await host.ip('link', 'set', 'vloc-p', 'up');
    await host.exec(['bridge', 'fdb', 'add', '02:00:00:00:99:01', 'dev', 'vloc', 'master', 'dynamic']);
    const got = inHost((nl) => desiredPorts(nl, SUBNET));
    assert.deepEqual(got.entries.get(`${await index('docker0')}/02:00:00:00:99:01`), { ifindex: await index('vloc'), peer: false });
    await host.ip('link', 'del', 'vloc');
  });

  it('a MAC whose pod left is gone with its port', async () => {
    await host.ip('link', 'del', 'vp2');
    const got = inHost((nl) => desiredPorts(nl, SUBNET));
    assert.deepEqual([...got.entries.values()], [{ ifindex: await index('vp1'), peer: true }]);
  });

  it('the gateway is the device whose address holds our subnet, weft\'s own devices left out', async () => {
    assert.equal(inHost((nl) => findGatewayDevice(nl, SUBNET, []))?.name, 'docker0');
    // The overlay device holds <subnet>.0/32: inside the subnet, but it does not hold the subnet.
    await host.ip('link', 'add', 'weft0', 'type', 'veth', 'peer', 'name', 'weft0-peer');
    await host.ip('addr', 'add', '10.244.1.0/32', 'dev', 'weft0');
    assert.equal(inHost((nl) => findGatewayDevice(nl, SUBNET, []))?.name, 'docker0');
    assert.equal(inHost((nl) => findGatewayDevice(nl, SUBNET, [nl.link('docker0')!.index])), null, 'excluded: none left');
  });
});
