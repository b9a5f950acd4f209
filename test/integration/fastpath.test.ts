// The fast path for flows conntrack follows (bpf/include/conntrack.h,
// src/dataplane/ebpf/fastpath.ts) on hosts with kube-proxy's rules (the lab's
// kube profile: KUBE-FORWARD's INVALID drop, 1,000 ClusterIP services): an
// established TCP flow's packets skip the receiving host's forward path once
// conntrack tracks it liberally, and conntrack stays right about it: the flow
// outlives conntrack's timeout, nothing becomes INVALID, a FIN or a RST closes
// it in conntrack, a service flow (DNAT) keeps its translation, and a packet
// of a flow conntrack has no entry for is still conntrack's to drop.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Cluster, ClusterNode, Pod } from '../../lab/cluster.js';
import { serviceIP, SERVICE_PORT } from '../../lab/profiles.js';
import { waitFor } from '../../lab/exec.js';
import { snmp } from '../bpf/traffic.js';
import { httpGet } from '../../lab/prometheus.js';
import { conntrackOf, conntrackPair, countForwarded, resetClosesFlow, dropCounter, invalidDrops, paced, server, TCP_ACK_PY } from '../harness/conntrack.js';

const PORT = 7000;
const HEALTH_PORT = 9102;
let c: Cluster;
let h1: ClusterNode;
let h2: ClusterNode;
let a: Pod;
let b: Pod;

before(async () => {
  // Services lead to b's port PORT; every host gets kube-proxy's rules.
  ({ c, h1, h2, a, b } = await conntrackPair('kube', PORT, ['--healthz-ip', '0.0.0.0', '--healthz-port', String(HEALTH_PORT)]));
});

/** A host's agent's count of flows it marked liberal, by how it found them (/metrics). */
async function marks(n: ClusterNode): Promise<{ wake: number; sweep: number }> {
  const body = (await httpGet(n.host, `http://127.0.0.1:${HEALTH_PORT}/metrics`)).body;
  const value = (found: string): number => Number(new RegExp(`^weft_dataplane_ct_flows_marked_total\\{found="${found}"\\} (\\d+)$`, 'm').exec(body)?.[1] ?? NaN);
  return { wake: value('wake'), sweep: value('sweep') };
}

after(() => c?.destroy());

test('an established flow skips the receiving host once conntrack tracks it liberally, outlives conntrack\'s timeout, and closes with its FIN', async (t) => {
  // Conntrack forgets an established flow after 2 s without a packet it sees.
  const from = [h1, h2].map((n) => n.agent!.lines.length);
  for (const n of [h1, h2]) await n.host.sysctl('net.netfilter.nf_conntrack_tcp_timeout_established', '2');
  t.after(async () => {
    for (const n of [h1, h2]) await n.host.sysctl('net.netfilter.nf_conntrack_tcp_timeout_established', '86400');
  });
  // The agents read the timeout (every second once conntrack follows flows) and hand it to the programs.
  for (const [i, n] of [h1, h2].entries()) await n.agent!.waitForLog('the new conntrack timeout', (l) => l.ctTimeoutMs === 2000, 5000, from[i]);
  const forwarded = await countForwarded(h2, ['-d', b.ip, '-p', 'tcp', '--dport', String(PORT)]);
  t.after(() => dropCounter(h2));
  const invalid = [await invalidDrops(h1), await invalidDrops(h2)];
  const srv = server(b.ns, PORT, 'sink');
  await srv.ready;
  // 8 s, four times conntrack's timeout, at 50 Mbit/s.
  const sent = await paced(a.ns, b.ip, PORT, 8, 50);
  const out = await srv.done;
  assert.match(out, new RegExp(`bytes ${sent}\\b`), `every byte arrived and the FIN closed the stream: sent ${sent}, server said ${out.trim()}`);
  const slow = await forwarded();
  assert.ok(slow < sent / 5, `h2 forwarded ${slow} of the ${sent} bytes b received itself: the rest skipped its forward path`);
  assert.deepEqual([await invalidDrops(h1), await invalidDrops(h2)], invalid, 'conntrack found nothing INVALID on either host');
  // Closed in conntrack by both FINs and the last ACK: TIME_WAIT on both hosts, as without the fast path.
  for (const n of [h1, h2]) {
    const lines = await conntrackOf(n, PORT);
    assert.equal(lines.length, 1, `${n.spec.name}: conntrack -L shows the flow: ${lines.join('\n')}`);
    assert.match(lines[0], /^tcp\s+\d+\s+\d+\s+TIME_WAIT /, `${n.spec.name}: ${lines[0]}`);
  }
});

test('the programs wake the agent for each flow they leave it: a short flow is marked when it is found, not at the sweep', async () => {
  const before = await marks(h2);
  assert.ok(Number.isInteger(before.wake) && Number.isInteger(before.sweep), `h2's /metrics counts marks by how they were found: ${JSON.stringify(before)}`);
  const forwarded = await countForwarded(h2, ['-d', b.ip, '-p', 'tcp', '--dport', String(PORT + 2)]);
  try {
    const srv = server(b.ns, PORT + 2, 'sink');
    await srv.ready;
    // One second: the sweep alone (once a second) would leave much of it on h2's forward path.
    const sent = await paced(a.ns, b.ip, PORT + 2, 1, 50);
    assert.match(await srv.done, new RegExp(`bytes ${sent}\\b`));
    const after = await marks(h2);
    assert.ok(after.wake > before.wake, `h2 marked the flow as the programs' record woke it: before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
    const slow = await forwarded();
    assert.ok(slow < sent / 5, `h2 forwarded ${slow} of the ${sent} bytes itself: the rest skipped its forward path`);
  } finally {
    await dropCounter(h2);
  }
});

test('a RST closes a fast flow in conntrack', async () => {
  await resetClosesFlow({ c, h1, h2, a, b }, PORT + 1);
});

test('a service flow (DNAT to a pod on another host) keeps its translation: its replies take the host\'s path', async () => {
  const srv = server(b.ns, PORT, 'sink');
  await srv.ready;
  const sent = await paced(a.ns, serviceIP(0), SERVICE_PORT, 3, 20);
  const out = await srv.done;
  assert.match(out, new RegExp(`bytes ${sent}\\b`), `every byte through the ClusterIP: sent ${sent}, server said ${out.trim()}`);
  // On h1, where the translation happened, conntrack shows the flow translated and closed.
  const lines = (await h1.host.exec(['conntrack', '-L', '-p', 'tcp', '-d', serviceIP(0)], { allowFail: true })).stdout.split('\n').filter((l) => l.startsWith('tcp'));
  assert.ok(lines.some((l) => l.includes(`dport=${SERVICE_PORT}`) && l.includes(`src=${b.ip}`) && l.includes(`sport=${PORT}`)), `h1's conntrack shows the DNAT: ${lines.join('\n')}`);
});

test('a packet of a flow conntrack has no entry for is still conntrack\'s to drop as INVALID', async () => {
  // A TCP ACK for no connection, sent as h1's vxlan would send it: h2's shortcut would hand it to b, whose TCP would answer with a RST.
  const vtep = JSON.parse(await h2.host.ip('-j', 'link', 'show', 'weft.vxlan'))[0].address as string;
  const srcVtep = JSON.parse(await h1.host.ip('-j', 'link', 'show', 'weft.vxlan'))[0].address as string;
  const py = `${TCP_ACK_PY}
src, dst, dmac, smac = sys.argv[1:5]
sa, da, tcp = ack(src, dst, 40000, ${PORT})
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, sa, da)
ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
eth = bytes.fromhex(dmac.replace(':', '')) + bytes.fromhex(smac.replace(':', '')) + b'\\x08\\x00'
vx = struct.pack('!II', 0x08000000, 1 << 8)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(5): s.sendto(vx + eth + ip + tcp, (sys.argv[5], 8472))
`;
  const before = [await invalidDrops(h2), await snmp(b.ns, 'Tcp', 'OutRsts')];
  await h1.host.exec(['python3', '-c', py, a.ip, b.ip, vtep, srcVtep, h2.host.address]);
  await waitFor('h2 to drop the 5 packets as INVALID', async () => (await invalidDrops(h2)) >= before[0] + 5, 5000, 100);
  assert.equal(await snmp(b.ns, 'Tcp', 'OutRsts'), before[1], 'none of them reached b (its TCP would have answered with a RST)');
});
