// /metrics against a real Prometheus: Debian's prometheus in a lab namespace
// scrapes two agents (eBPF dataplane, vxlan) every second, one on its health
// port and one on --metrics-port, and its HTTP API must answer with the
// agents' state and with kernel counters that follow known traffic: N pings
// raise the packet counters by at least N, traffic to a departed peer raises
// the no_peer drops. promtool accepts the text, and 200 more peers add no
// series.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cluster, subnetOf, type ClusterNode } from '../../lab/cluster.js';
import { run, waitFor } from '../../lab/exec.js';
import type { LabHost } from '../../lab/netns.js';
import { LabPrometheus, httpGet } from '../../lab/prometheus.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

let c: Cluster;
let h1: ClusterNode;
let h2: ClusterNode;
let h3: ClusterNode;
let promHost: LabHost;
let prom: LabPrometheus;
/** h1 serves /metrics on its health port, h2 on a port of its own. */
let i1: string;
let i2: string;

before(async () => {
  c = await Cluster.start({
    config: JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } }),
    dataplane: 'ebpf',
    hosts: [{ name: 'h1', octet: 11 }, { name: 'h2', octet: 12 }, { name: 'h3', octet: 13 }],
    agentArgs: ['--healthz-ip', '0.0.0.0', '--healthz-port', '9102', '--metrics-port', '9103'],
  });
  [h1, h2, h3] = [c.node('h1'), c.node('h2'), c.node('h3')];
  i1 = `${h1.host.address}:9102`;
  i2 = `${h2.host.address}:9103`;
  await h1.agent!.waitForLog('two peers', () => h1.agent!.lines.filter((l) => l.msg === 'peer added').length >= 2, 15_000);
  promHost = await c.lab.addHost('prom', { octet: 50 });
  prom = await LabPrometheus.start(promHost, [i1, i2]);
});
after(async () => {
  await prom?.stop();
  await c?.destroy();
});

/** Waits until expr has a value that satisfies ok; returns it. */
function until(what: string, expr: string, ok: (v: number) => boolean, timeoutMs = 15_000): Promise<number> {
  let last: number | null = null;
  return waitFor(
    what,
    async () => {
      last = await prom.value(expr);
      return last !== null && ok(last) ? last : undefined;
    },
    timeoutMs,
    250,
  ).catch((err: Error) => {
    err.message += ` (last value of ${expr}: ${last})`;
    throw err;
  });
}

test('Prometheus scrapes both agents: on the health port and on --metrics-port', async () => {
  await until('both targets up', 'sum(up{job="weft"})', (v) => v === 2);
  const up = await prom.query('up{job="weft"}');
  assert.deepEqual(up.map((s) => s.metric.instance).sort(), [i1, i2].sort());
  // The --metrics-port server serves /metrics alone.
  assert.equal((await httpGet(promHost, `http://${i2}/healthz`)).status, 404);
  assert.equal((await httpGet(promHost, `http://${h2.host.address}:9102/healthz`)).status, 200);
});

test('the agent\'s state: lease, peers, etcd, dataplane, Node\'s process metrics', async () => {
  const on = `instance="${i1}"`;
  await until('h1 has two programmed peers', `weft_peers{${on},backend="vxlan",state="programmed"}`, (v) => v === 2);
  const lease = await prom.query(`weft_lease_info{${on}}`);
  assert.deepEqual(lease.map((s) => [s.metric.subnet, s.metric.reservation, s.value]), [[subnetOf(h1), 'false', 1]]);
  const left = await prom.value(`weft_lease_expiry_timestamp_seconds{${on}} - time()`);
  assert.ok(left !== null && left > 86_000 && left <= 86_400, `the lease expires in ${left} s (24 h TTL)`);
  assert.equal(await prom.value(`weft_etcd_watch_connected{${on}}`), 1);
  assert.ok((await prom.value(`weft_etcd_watch_revision{${on}}`))! > 0);
  assert.equal(await prom.value(`weft_dataplane_info{${on},dataplane="ebpf",requested="ebpf"}`), 1);
  assert.equal(await prom.value(`weft_dataplane_peers{${on}}`), 2);
  assert.ok((await prom.value(`weft_dataplane_sync_duration_seconds_count{${on},op="full"}`))! >= 1, 'the initial full sync was timed');
  // h2 started after h1: h1's lease was in its first list, programmed in a batch while the list was applied,
  // so the sync after the list found it in place and added only h2's own subnet's entry (not a peer's).
  assert.ok((await prom.value(`weft_dataplane_sync_duration_seconds_count{instance="${i2}",op="batch"}`))! >= 1, "h2's first list went to its map in a batch");
  const synced = h2.agent!.lines.find((l) => l.msg === 'peer map synchronised');
  assert.deepEqual([synced?.peers, synced?.added, synced?.changed], [1, 1, 0], 'the sync after the list found h1 in place (2 added: it did not)');
  assert.equal(await prom.value(`sum(weft_etcd_request_errors_total{${on}})`), 0);
  assert.ok((await prom.value(`process_resident_memory_bytes{${on}}`))! > 10e6, "Node's default metrics");
  assert.ok((await prom.value(`nodejs_heap_size_used_bytes{${on}}`))! > 0);
  assert.equal((await prom.query(`weft_build_info{${on}}`)).length, 1);
});

test('N pings: the packet counters rise by at least N on both ends', async () => {
  const N = 10;
  const out = `weft_dataplane_packets_total{instance="${i1}",direction="egress",encap="vxlan"}`;
  const into = `weft_dataplane_packets_total{instance="${i2}",direction="ingress",encap="vxlan"}`;
  const out0 = await until('h1 egress counter scraped', out, () => true);
  const in0 = await until('h2 ingress counter scraped', into, () => true);
  await h1.pods[0].ns.exec(['ping', '-c', String(N), '-i', '0.2', '-W', '2', h2.pods[0].ip]);
  await until(`h1's egress vxlan packets to rise by ${N}`, out, (v) => v >= out0 + N);
  await until(`h2's ingress vxlan packets to rise by ${N}`, into, (v) => v >= in0 + N);
  assert.ok((await prom.value(`weft_dataplane_bytes_total{instance="${i1}",direction="egress",encap="vxlan"}`))! >= N * 98, 'bytes too');
});

test('traffic to a departed peer: no_peer drops rise', async () => {
  await h3.agent!.stop();
  await c.etcd.etcdctl(['del', `${c.prefix}/subnets/${subnetOf(h3).replace('/', '-')}`]);
  await h1.agent!.waitForLog('h3 removed', (l) => l.msg === 'peer removed' && l.subnet === subnetOf(h3));
  const drops = `weft_dataplane_drops_total{instance="${i1}",reason="no_peer"}`;
  const d0 = await until('the no_peer series', drops, () => true);
  const r = await h1.pods[0].ns.exec(['ping', '-c', '3', '-i', '0.2', '-W', '1', h3.pods[0].ip], { allowFail: true });
  assert.notEqual(r.code, 0, 'the departed peer does not answer');
  await until('no_peer drops to rise by 3', drops, (v) => v >= d0 + 3);
  await until('h1 to count one programmed peer', `weft_peers{instance="${i1}",state="programmed"}`, (v) => v === 1);
  assert.ok((await prom.value(`weft_dataplane_sync_duration_seconds_count{instance="${i1}",op="remove"}`))! >= 1);
});

test('promtool check metrics accepts the text of both agents', async () => {
  for (const target of [i1, i2]) {
    const r = await httpGet(promHost, `http://${target}/metrics`);
    assert.equal(r.status, 200);
    const file = path.join(c.lab.dir, `metrics-${target.replace(/[:.]/g, '-')}.txt`);
    fs.writeFileSync(file, r.body);
    const check = await run(['sh', '-c', `promtool check metrics < ${file}`], { allowFail: true });
    assert.equal(check.code, 0, `promtool on ${target}: ${check.stdout}${check.stderr}`);
    assert.equal((check.stdout + check.stderr).trim(), '', 'no lint findings');
  }
});

test('bounded cardinality: 200 more peers change values, not the number of series', async () => {
  const series = `count({__name__=~"weft_.+",instance="${i1}"})`;
  const before = await until('the series count', series, () => true);
  const taken = new Set([h1, h2].map((n) => subnetOf(n)));
  const client = c.etcd.client();
  const grant = await client.leaseClient.leaseGrant({ TTL: 3600 });
  const subnets = Array.from({ length: 256 }, (_, i) => `10.244.${i}.0/24`).filter((s) => !taken.has(s) && s !== '10.244.0.0/24').slice(0, 200);
  for (let i = 0; i < subnets.length; i += 100) {
    const success = subnets.slice(i, i + 100).map((s, k) => {
      const n = i + k;
      const value = { PublicIP: `198.51.100.${100 + (n % 150)}`, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: `0e:be:01:00:${(n >> 8).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}` } };
      return { request_put: { key: Buffer.from(`${c.prefix}/subnets/${s.replace('/', '-')}`), value: Buffer.from(JSON.stringify(value)), lease: grant.ID } };
    });
    await client.kv.txn({ success });
  }
  await until('h1 to program 201 peers', `weft_peers{instance="${i1}",state="programmed"}`, (v) => v === 201);
  await until('the kernel to hold them', `weft_dataplane_peers{instance="${i1}"}`, (v) => v === 201);
  assert.equal(await prom.value(series), before, 'the same series, with other values');
  await client.leaseClient.leaseRevoke({ ID: grant.ID });
});

interface Panel {
  title: string;
  targets?: Array<{ expr: string }>;
}

test('the Grafana dashboard: every query is valid PromQL over metrics the agents export, and answers', async () => {
  const dash = JSON.parse(fs.readFileSync(path.join(repo, 'contrib/grafana/weft.json'), 'utf8')) as { panels: Panel[] };
  const exported = new Set(
    (await httpGet(promHost, `http://${i1}/metrics`)).body
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(/[{ ]/)[0]),
  );
  // Empty here for want of the events they count: the netlink dataplane's reconcile loop, peers skipped.
  const mayBeEmpty = /reconcile_|state=\\?"skipped\\?"\}\)$|by \(backend, reason\)/;
  const queries = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
  assert.ok(queries.length >= 20, `${queries.length} queries`);
  for (const q of queries) {
    for (const name of q.expr.match(/\b(?:weft|process)_[a-z_]+/g) ?? []) assert.ok(exported.has(name), `${q.panel}: ${name} is not in /metrics`);
    const expr = q.expr.replaceAll('$instance', '.*').replaceAll('$job', '.*').replaceAll('$__rate_interval', '1m').replaceAll('$__range', '5m');
    const result = await prom.query(expr);
    if (!mayBeEmpty.test(q.expr)) assert.ok(result.length > 0, `${q.panel}: ${expr} returned nothing`);
  }
});
