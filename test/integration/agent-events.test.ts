// The agent in this process against a real etcd, with a dataplane that only
// records what it is told (the factory seam the CLI fills with the real
// ones): the order of what reaches a dataplane as leases come, change and go,
// when our own lease is taken over, and after a re-list. No kernel involved:
// the dataplanes' own tests cover what they do with it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Agent } from 'weft/agent/agent.js';
import type { DataplaneFactory } from 'weft/agent/dataplane.js';
import { WeftError } from 'weft/core/errors.js';
import type { LocalNetwork, PeerRoute } from 'weft/core/model.js';
import type { Dataplane, DataplaneStatus, PeerSource } from 'weft/dataplane/types.js';
import { LabEtcd } from '../../lab/etcd.js';
import { waitFor } from '../../lab/exec.js';
import { iface } from '../../lab/model.js';
import { memLog } from '../harness/memlog.js';

// Agents choose from 10.244.128.0 up; the leases tests write are below: a lease written over the one an agent
// chose at random would be the test's fault (it made 'the dataplane hears start...' flaky).
const CONFIG = '{"Network":"10.244.0.0/16","SubnetMin":"10.244.128.0","Backend":{"Type":"vxlan"}}';
const PUBLIC_IP = '192.0.2.11';

let etcd: LabEtcd;
let dir: string;
let n = 0;

before(async () => {
  etcd = await LabEtcd.start();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-agent-events-'));
});
after(async () => {
  await etcd?.destroy();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Every call a dataplane gets, as one line each. */
class RecordingDataplane implements Dataplane {
  readonly kind = 'ebpf' as const;
  readonly calls: string[] = [];
  private peers!: PeerSource;

  async start(local: LocalNetwork, peers: PeerSource): Promise<void> {
    this.peers = peers;
    this.calls.push(`start ${local.subnet}`);
  }
  async syncPeers(): Promise<void> {
    this.calls.push(`sync ${[...this.peers.routes()].map((r) => String(r.subnet)).sort().join(' ')}`);
  }
  async upsertPeer(r: PeerRoute, previous?: PeerRoute): Promise<void> {
    this.calls.push(`upsert ${r.subnet} via ${r.publicIP}${previous ? ` (was via ${previous.publicIP})` : ''}`);
  }
  async removePeer(r: PeerRoute): Promise<void> {
    this.calls.push(`remove ${r.subnet}`);
  }
  async status(): Promise<DataplaneStatus> {
    return { peersInKernel: [...this.peers.routes()].length };
  }
  async stop(): Promise<void> {}
  async uninstall(): Promise<void> {}
}

/**
 * A TCP relay between the agent and etcd that the test can cut: the agent
 * loses etcd (connections reset, new ones refused) while the test process
 * keeps writing to it directly.
 */
class Relay {
  private readonly sockets = new Set<net.Socket>();
  private cut = false;
  private constructor(private readonly server: net.Server) {}

  static async to(endpoint: string): Promise<Relay> {
    const target = new URL(endpoint);
    const relay: Relay = new Relay(
      net.createServer((c) => {
        if (relay.cut) return void c.destroy();
        const up = net.connect(Number(target.port), target.hostname);
        for (const s of [c, up]) {
          relay.sockets.add(s);
          s.on('close', () => relay.sockets.delete(s));
          s.on('error', () => s.destroy());
        }
        c.pipe(up).pipe(c);
        c.on('close', () => up.destroy());
        up.on('close', () => c.destroy());
      }),
    );
    await new Promise<void>((resolve) => relay.server.listen(0, '127.0.0.1', resolve));
    return relay;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  down(): void {
    this.cut = true;
    for (const s of this.sockets) s.destroy();
  }

  up(): void {
    this.cut = false;
  }

  async close(): Promise<void> {
    this.down();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

interface Run {
  agent: Agent;
  dp: RecordingDataplane;
  prefix: string;
  /** Settles when agent.run() does: undefined when stopped, the error when it ended on one. */
  ended: Promise<Error | undefined>;
}

async function startAgent(prefix: string, endpoint = etcd.clientEndpoint): Promise<Run> {
  const dp = new RecordingDataplane();
  const factory: DataplaneFactory = async () => ({ dataplane: dp, reason: 'recording (test)' });
  const agent = new Agent(
    {
      etcd: { endpoints: [endpoint], prefix },
      subnetFile: path.join(dir, `subnet-${n}.env`),
      renewMarginMin: 60,
      leaseTTLSec: 86400,
      ipMasq: false,
      healthzIP: '127.0.0.1',
      healthzPort: 0,
      dataplane: 'auto',
      bpfPinDir: '/nonexistent',
    },
    { iface: iface({ name: 'eth0', index: 2, mtu: 1500, address: PUBLIC_IP, mac: '02:00:00:00:00:11', networks: ['192.0.2.0/24'] }), publicIP: PUBLIC_IP },
    memLog().log,
    factory,
  );
  const ended = agent.run().then(
    () => undefined,
    (err: Error) => err,
  );
  await waitFor('the agent ready', () => agent.ready);
  return { agent, dp, prefix, ended };
}

async function freshPrefix(): Promise<string> {
  const prefix = `/events${n++}/network`;
  await etcd.etcdctl(['put', `${prefix}/config`, CONFIG]);
  return prefix;
}

function vxlanLease(ip: string, mac: string): string {
  return JSON.stringify({ PublicIP: ip, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: mac } });
}

const put = (prefix: string, subnet: string, value: string): Promise<string> => etcd.etcdctl(['put', `${prefix}/subnets/${subnet.replace('/', '-')}`, value]);
const del = (prefix: string, subnet: string): Promise<string> => etcd.etcdctl(['del', `${prefix}/subnets/${subnet.replace('/', '-')}`]);

/** The calls from `from` on, once `want` of them have arrived (a reconnection backs off for up to 30 s). */
async function callsAfter(r: Run, from: number, want: number, timeoutMs = 10_000): Promise<string[]> {
  return waitFor(`${want} dataplane calls after #${from}`, () => (r.dp.calls.length >= from + want ? r.dp.calls.slice(from) : undefined), timeoutMs);
}

test('the dataplane hears start, one sync of the listed peers, then each change in the order etcd made it', async () => {
  const prefix = await freshPrefix();
  await put(prefix, '10.244.50.0/24', vxlanLease('192.0.2.50', '02:00:00:00:00:50'));
  await put(prefix, '10.244.51.0/24', vxlanLease('192.0.2.51', '02:00:00:00:00:51'));
  const r = await startAgent(prefix);
  try {
    assert.equal(r.dp.calls.length, 2, `only start and sync before ready: ${r.dp.calls.join('; ')}`);
    assert.match(r.dp.calls[0], /^start 10\.244\.\d+\.0\/24$/);
    assert.equal(r.dp.calls[1], 'sync 10.244.50.0/24 10.244.51.0/24');

    const mark = r.dp.calls.length;
    await put(prefix, '10.244.52.0/24', vxlanLease('192.0.2.52', '02:00:00:00:00:52'));
    await put(prefix, '10.244.50.0/24', vxlanLease('192.0.2.60', '02:00:00:00:00:60'));
    // A lease this backend cannot serve replaces a routed one: the route goes, nothing is programmed for it.
    await put(prefix, '10.244.51.0/24', JSON.stringify({ PublicIP: '192.0.2.51', PublicIPv6: null, BackendType: 'host-gw' }));
    await del(prefix, '10.244.52.0/24');
    assert.deepEqual(await callsAfter(r, mark, 4), [
      'upsert 10.244.52.0/24 via 192.0.2.52',
      'upsert 10.244.50.0/24 via 192.0.2.60 (was via 192.0.2.50)',
      'remove 10.244.51.0/24',
      'remove 10.244.52.0/24',
    ]);
    const s = await r.agent.snapshot();
    assert.deepEqual([s.peers.inView, s.peers.routed, s.peers.skipped, s.peers.inMaps], [2, 1, 1, 1]);
    assert.match(s.errors.at(-1)?.message ?? '', /cannot reach peer 192\.0\.2\.51 \(10\.244\.51\.0\/24\): its lease says backend host-gw/);
  } finally {
    await r.agent.stop();
  }
});

test('our subnet taken over by another host ends the agent with a WeftError, after nothing more reached the dataplane', async () => {
  const prefix = await freshPrefix();
  const r = await startAgent(prefix);
  const own = r.agent.own!.subnet.toString();
  const mark = r.dp.calls.length;
  await put(prefix, own, vxlanLease('192.0.2.99', '02:00:00:00:00:99'));
  const err = await r.ended;
  assert.ok(err instanceof WeftError, `a WeftError, got ${err}`);
  assert.match(err.message, new RegExp(`our subnet ${own.replace(/\./g, '\\.')} was taken over by 192\\.0\\.2\\.99`));
  assert.deepEqual(r.dp.calls.slice(mark), [], 'our own key is never a peer');
});

test('after etcd was lost and compacted, the re-list hands the dataplane only the difference', async () => {
  const prefix = await freshPrefix();
  await put(prefix, '10.244.70.0/24', vxlanLease('192.0.2.70', '02:00:00:00:00:70'));
  await put(prefix, '10.244.71.0/24', vxlanLease('192.0.2.71', '02:00:00:00:00:71'));
  const relay = await Relay.to(etcd.clientEndpoint);
  const r = await startAgent(prefix, relay.endpoint);
  try {
    relay.down();
    await waitFor('the watch to notice', () => r.agent.session?.connected === false);
    await put(prefix, '10.244.72.0/24', vxlanLease('192.0.2.72', '02:00:00:00:00:72'));
    await del(prefix, '10.244.70.0/24');
    const rev = JSON.parse(await etcd.etcdctl(['get', 'x', '-w', 'json'])).header.revision as number;
    await etcd.etcdctl(['compact', String(rev)]);
    const mark = r.dp.calls.length;
    relay.up();
    const calls = await callsAfter(r, mark, 2, 45_000);
    assert.deepEqual([...calls].sort(), ['remove 10.244.70.0/24', 'upsert 10.244.72.0/24 via 192.0.2.72']);
    // The unchanged peer is not touched; what came back is the whole table.
    assert.deepEqual((await r.agent.snapshot()).peers.routed, 2);
    assert.ok(!r.dp.calls.slice(mark).some((c) => c.includes('10.244.71.0')));
  } finally {
    await r.agent.stop();
    await relay.close();
  }
});
