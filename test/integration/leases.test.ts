// The lease manager and the lease session against a real etcd (Debian's etcd,
// started by the test on a free loopback port): concurrency, reservations,
// renewal, our own lease deleted, malformed leases. Compaction and etcd
// outages are tested against real agents in test/integration/agent.test.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { LabEtcd } from '../../lab/etcd.js';
import { waitFor } from '../../lab/exec.js';
import { parseNetworkConfig } from 'weft/config/network.js';
import { EtcdRegistry } from 'weft/subnet/registry.js';
import { LeaseManager } from 'weft/subnet/manager.js';
import { keySplits } from 'weft/subnet/allocator.js';
import { keyBounds, type RawRangePage } from 'weft/subnet/range-decode.js';
import { LeaseSession, type PeerEvent } from 'weft/subnet/session.js';
import { WeftError } from 'weft/core/errors.js';
import type { LeaseAttrs } from 'weft/subnet/lease.js';
import { memLog } from '../harness/memlog.js';

let etcd: LabEtcd;
const registries: EtcdRegistry[] = [];
let prefixCounter = 0;

before(async () => {
  etcd = await LabEtcd.start();
});
after(async () => {
  for (const r of registries) r.close();
  await etcd.destroy();
});

/** A fresh prefix per test, so tests do not see each other's leases. */
function freshPrefix(): string {
  return `/weft-test/${process.pid}-${prefixCounter++}/network`;
}

function registry(prefix: string): EtcdRegistry {
  const r = new EtcdRegistry({ endpoints: [etcd.endpoint], prefix });
  registries.push(r);
  return r;
}

function attrsFor(ip: string): LeaseAttrs {
  return { PublicIP: ip, PublicIPv6: null, BackendType: 'host-gw' };
}

function manager(prefix: string, ip: string, configJson: string, extra: Partial<ConstructorParameters<typeof LeaseManager>[0]> = {}): LeaseManager {
  return new LeaseManager({ registry: registry(prefix), config: parseNetworkConfig(configJson), attrs: attrsFor(ip), renewMarginMin: 60, log: memLog().log, ...extra });
}

test('50 concurrent acquisitions against 60 free subnets all succeed with distinct subnets', async () => {
  const prefix = freshPrefix();
  const cfg = '{"Network":"10.244.0.0/16","SubnetMin":"10.244.1.0","SubnetMax":"10.244.60.0","Backend":{"Type":"host-gw"}}';
  const managers = Array.from({ length: 50 }, (_, i) => manager(prefix, `192.0.2.${100 + i}`, cfg));
  const leases = await Promise.all(managers.map(async (m) => (await m.acquire()).own));
  managers.forEach((m) => m.stop());
  const subnets = new Set(leases.map((l) => l.subnet.toString()));
  assert.equal(subnets.size, 50);
  const stored = await registry(prefix).listLeases();
  assert.equal(stored.leases.length, 50);
  for (const l of stored.leases) assert.notEqual(l.leaseId, '0', 'each lease has an etcd lease (TTL)');
});

test('a reservation is honoured: only its PublicIP gets it, and it never expires', async () => {
  const prefix = freshPrefix();
  const cfg = '{"Network":"10.244.0.0/16","SubnetMin":"10.244.1.0","SubnetMax":"10.244.3.0","Backend":{"Type":"host-gw"}}';
  await etcd.etcdctl(['put', `${prefix}/subnets/10.244.2.0-24`, '{"PublicIP":"192.0.2.99"}']);
  const others = [manager(prefix, '192.0.2.1', cfg), manager(prefix, '192.0.2.2', cfg)];
  const got = await Promise.all(others.map(async (m) => (await m.acquire()).own));
  assert.deepEqual(got.map((l) => l.subnet.toString()).sort(), ['10.244.1.0/24', '10.244.3.0/24']);
  await assert.rejects(manager(prefix, '192.0.2.3', cfg).acquire(), (e: Error) => e instanceof WeftError && e.kind === 'config' && /out of subnets/.test(e.message));
  const owner = manager(prefix, '192.0.2.99', cfg);
  const mine = (await owner.acquire()).own;
  others.forEach((m) => m.stop());
  owner.stop();
  assert.equal(mine.subnet.toString(), '10.244.2.0/24');
  assert.equal(mine.reservation, true);
  const stored = (await registry(prefix).listLeases()).leases.find((l) => l.subnet.toString() === '10.244.2.0/24')!;
  assert.equal(stored.leaseId, '0', 'still a reservation, without a TTL');
  assert.equal(stored.attrs.BackendType, 'host-gw', 'our backend data written into the reservation');
});

test('a restarted host reclaims its lease; the previous subnet.env subnet comes second', async () => {
  const prefix = freshPrefix();
  const cfg = '{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}';
  const first = manager(prefix, '192.0.2.5', cfg);
  const a = (await first.acquire()).own;
  first.stop();
  const again = manager(prefix, '192.0.2.5', cfg);
  const b = (await again.acquire()).own;
  again.stop();
  assert.equal(b.subnet.toString(), a.subnet.toString());
  const prevSubnet = parseNetworkConfig(cfg).ipv4.subnetMax;
  const fresh = manager(prefix, '192.0.2.6', cfg, { previous: { subnet: prevSubnet } });
  const c = (await fresh.acquire()).own;
  fresh.stop();
  assert.equal(c.subnet.toString(), prevSubnet.toString());
});

test('renewal rewrites the lease with a new TTL before it expires', async () => {
  const prefix = freshPrefix();
  const m = manager(prefix, '192.0.2.7', '{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}', { ttlSec: 63, renewMarginMin: 1 });
  const first = (await m.acquire()).own;
  const renewed = await new Promise<{ leaseId: string }>((resolve) => m.once('renewed', resolve));
  m.stop();
  assert.notEqual(renewed.leaseId, first.leaseId);
  const stored = (await registry(prefix).listLeases()).leases[0];
  assert.equal(stored.leaseId, renewed.leaseId);
  const ttl = await registry(prefix).leaseTTL(stored.leaseId);
  assert.ok(ttl > 55 && ttl <= 63, `fresh TTL, got ${ttl}`);
  assert.equal(await registry(prefix).leaseTTL(first.leaseId), -1, 'the old etcd lease was revoked');
});

/** A lease session as the agent runs it, without the agent: our lease acquired, the peers' events collected. */
async function watched(prefix: string, ip: string) {
  const mem = memLog();
  const reg = registry(prefix);
  const session = new LeaseSession({ registry: reg, config: parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}'), attrs: attrsFor(ip), renewMarginMin: 60, log: mem.log });
  const own = await session.acquire();
  const events: PeerEvent[] = [];
  session.on('peer', (e) => events.push(e));
  await session.watch();
  return { session, own, events, mem, reg };
}

test('our lease deleted by hand is re-acquired, same subnet', async () => {
  const prefix = freshPrefix();
  const h = await watched(prefix, '192.0.2.8');
  const key = `${prefix}/subnets/${h.own.subnet.ip}-24`;
  await etcd.etcdctl(['del', key]);
  await waitFor('the lease re-acquired', () => h.mem.has(/re-acquired the same subnet/));
  const value = await etcd.etcdctl(['get', '--print-value-only', key]);
  assert.match(value, /"PublicIP":"192.0.2.8"/);
  assert.ok(h.mem.has(/re-acquired the same subnet/));
  await h.session.stop();
});

test('malformed leases written by someone else are skipped with a warning naming the key', async () => {
  const prefix = freshPrefix();
  await etcd.etcdctl(['put', `${prefix}/subnets/garbage-key`, '{"PublicIP":"192.0.2.50"}']);
  const h = await watched(prefix, '192.0.2.9');
  await etcd.etcdctl(['put', `${prefix}/subnets/10.244.77.0-24`, 'not json at all']);
  await etcd.etcdctl(['put', `${prefix}/subnets/10.244.78.0-24`, '{"PublicIP":"192.0.2.78","BackendType":"host-gw"}']);
  await waitFor('the valid peer', () => h.events.some((e) => e.lease.subnet.toString() === '10.244.78.0/24'));
  assert.ok(h.mem.has(/garbage-key.*skipping malformed lease|skipping malformed lease.*garbage-key/));
  assert.ok(h.mem.has(/10\.244\.77\.0-24/));
  assert.equal(h.events.filter((e) => e.lease.subnet.toString() === '10.244.77.0/24').length, 0);
  await h.session.stop();
});

test('a list of 5,000 leases is emitted in slices, other work runs between them, and a stop ends it', { timeout: 60_000 }, async () => {
  const prefix = freshPrefix();
  const seed = registry(prefix).client;
  const value = (i: number) => JSON.stringify({ PublicIP: `198.51.100.${1 + (i % 200)}`, PublicIPv6: null, BackendType: 'host-gw' });
  for (let i = 0; i < 5000; i += 125) {
    await seed.kv.txn({
      success: Array.from({ length: 125 }, (_, j) => ({ request_put: { key: Buffer.from(`${prefix}/subnets/10.${1 + ((i + j) >> 8)}.${(i + j) & 0xff}.0-24`), value: Buffer.from(value(i + j)) } })),
    });
  }
  const config = parseNetworkConfig('{"Network":"10.0.0.0/8","Backend":{"Type":"host-gw"}}');
  const open = () => new LeaseSession({ registry: registry(prefix), config, attrs: attrsFor('192.0.2.20'), renewMarginMin: 60, log: memLog().log });

  // Every lease once; something scheduled when the list began ran before it was all emitted.
  const whole = open();
  await whole.acquire();
  const names = new Set<string>();
  let emitted = 0;
  whole.on('peer', (e) => {
    emitted++;
    names.add(e.lease.name);
  });
  let emittedWhenOtherWorkRan = -1;
  setImmediate(() => (emittedWhenOtherWorkRan = emitted));
  await whole.watch();
  assert.equal(emitted, 5000);
  assert.equal(names.size, 5000);
  assert.ok(emittedWhenOtherWorkRan > 0 && emittedWhenOtherWorkRan < 5000, `other work ran after ${emittedWhenOtherWorkRan} of 5000 leases`);

  // A session stopped halfway through its list emits no more of it, and watch() returns.
  const halted = open();
  await halted.acquire();
  let seen = 0;
  halted.on('peer', () => {
    if (++seen === 2500) void halted.stop();
  });
  await halted.watch();
  assert.ok(seen >= 2500 && seen < 5000, `${seen} leases emitted after the stop at 2,500`);
  await whole.stop();
});

test('a list cut in pieces is read all at once: every key once, in key order, at the revision of the first page', { timeout: 60_000 }, async () => {
  const prefix = freshPrefix();
  const r = registry(prefix);
  const sub = r.subnetsPrefix;
  // 3,000 subnets spread over a /8, and two keys that are not subnets, before and after them.
  const names = ['0-junk', 'zz', ...Array.from({ length: 3000 }, (_, j) => `10.${(j * 21) >> 8}.${(j * 21) & 255}.0-24`)];
  for (let i = 0; i < names.length; i += 125) {
    await r.client.kv.txn({ success: names.slice(i, i + 125).map((n) => ({ request_put: { key: Buffer.from(sub + n), value: Buffer.from('{}') } })) });
  }
  const { revision: before } = await r.getConfig();
  const cuts = keySplits(parseNetworkConfig('{"Network":"10.0.0.0/8"}').ipv4, 4, 0);
  const sorted = [...names].sort();
  const gone = sorted[sorted.length - 5];
  assert.ok(gone > cuts[2], 'the key deleted lies in the last piece');

  // Once the first page is in and before any other piece is read, a key is written and one deleted in the last piece.
  const raw = r as unknown as { rangePage(req: { revision: number | string }): Promise<RawRangePage> };
  const rangePage = raw.rangePage.bind(r);
  let inFlight = 0;
  let most = 0;
  let changed = false;
  raw.rangePage = async (req) => {
    if (Number(req.revision) !== 0 && !changed) {
      changed = true;
      await r.client.put(`${sub}zzz`).value('{}');
      await r.client.delete().key(sub + gone);
    }
    inFlight++;
    most = Math.max(most, inFlight);
    try {
      return await rangePage(req);
    } finally {
      inFlight--;
    }
  };
  const namesInto = (out: string[]) => (page: RawRangePage) => {
    for (let i = 0; i < page.count; i++) {
      const [ks, ke] = keyBounds(page, i);
      out.push(page.buf.toString('latin1', ks + Buffer.byteLength(sub), ke));
    }
  };
  const seen: string[] = [];
  const at = await r.rangePaged(sub, namesInto(seen), cuts.map((c) => Buffer.from(sub + c)));
  assert.ok(changed, 'the store changed during the read');
  assert.equal(at, before, 'read at the revision of the first page');
  assert.deepEqual(seen, sorted, 'every key once, in key order, as it was at that revision');
  assert.ok(most >= 2, `pieces were read at once (${most} calls in flight at most)`);
  // Read again in one piece: the store as it is now.
  const now: string[] = [];
  raw.rangePage = rangePage;
  await r.rangePaged(sub, namesInto(now));
  assert.deepEqual(now, [...sorted.filter((n) => n !== gone), 'zzz']);
});
