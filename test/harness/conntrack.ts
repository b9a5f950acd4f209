// What the tests of flows conntrack follows share (fastpath.test.ts: the
// receive side; from-pod.test.ts: the send side): kube-proxy's INVALID drop
// counter, a FORWARD rule that only counts, conntrack -L, and TCP ends in pods
// that say how many bytes crossed and how the flow closed.
import assert from 'node:assert/strict';
import { Cluster, type ClusterNode, type Pod } from '../../lab/cluster.js';
import { applyProfile, type HostProfile } from '../../lab/profiles.js';
import type { Netns } from '../../lab/netns.js';

export interface ConntrackPair {
  c: Cluster;
  h1: ClusterNode;
  h2: ClusterNode;
  /** h1's first pod, the client. */
  a: Pod;
  /** h2's first pod, where the profile's services lead (its port `port`). */
  b: Pod;
}

/**
 * Two eBPF hosts (vxlan) with a pod each, the host profile's rules on both
 * (services lead to b's port), conntrack judging every flow itself (no
 * mid-stream pickups: an entry it lost would make the next packets INVALID),
 * and both agents past "conntrack follows flows on this host".
 */
export async function conntrackPair(profile: HostProfile, port: number, agentArgs: string[] = []): Promise<ConntrackPair> {
  const c = await Cluster.start({
    config: JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } }),
    dataplane: 'ebpf',
    hosts: [{ name: 'h1', octet: 11 }, { name: 'h2', octet: 12 }],
    agentArgs,
  });
  const [h1, h2] = [c.node('h1'), c.node('h2')];
  const [a, b] = [h1.pods[0], h2.pods[0]];
  for (const n of [h1, h2]) {
    await applyProfile(n.host, profile, { network: n.env.FLANNEL_NETWORK, subnet: n.env.FLANNEL_SUBNET, bridge: 'docker0', endpoints: [{ ip: b.ip, port }], services: 10 });
    await n.host.sysctl('net.netfilter.nf_conntrack_tcp_loose', '0');
  }
  // Both agents learn that conntrack follows flows here (fastpath.ts looks every 100 ms until it does).
  await a.ns.exec(['ping', '-c', '2', '-i', '0.2', '-W', '2', b.ip]);
  for (const n of [h1, h2]) await n.agent!.waitForMsg(/^conntrack follows flows on this host/, 10_000);
  return { c, h1, h2, a, b };
}

/** Packets KUBE-FORWARD dropped as INVALID on a host. */
export async function invalidDrops(n: ClusterNode): Promise<number> {
  const out = (await n.host.exec(['iptables', '-w', '-L', 'KUBE-FORWARD', '-v', '-x', '-n'])).stdout;
  const line = out.split('\n').find((l) => /DROP/.test(l) && /ctstate INVALID/.test(l));
  if (!line) throw new Error(`no INVALID drop rule in ${n.spec.name}'s KUBE-FORWARD:\n${out}`);
  return Number(line.trim().split(/\s+/)[0]);
}

/**
 * A rule at the top of FORWARD that counts, without deciding anything, the bytes of one direction that the
 * host forwards itself (bytes: GRO aggregates make packet counts incomparable). Returns the reader; remove
 * the rule with dropCounter.
 */
export async function countForwarded(n: ClusterNode, match: string[]): Promise<() => Promise<number>> {
  await n.host.exec(['iptables', '-w', '-I', 'FORWARD', '1', ...match, '-m', 'comment', '--comment', 'weft-test-count']);
  return async () => {
    const out = (await n.host.exec(['iptables', '-w', '-L', 'FORWARD', '1', '-v', '-x', '-n'])).stdout;
    return Number(out.trim().split(/\s+/)[1]);
  };
}

export async function dropCounter(n: ClusterNode): Promise<void> {
  await n.host.exec(['iptables', '-w', '-D', 'FORWARD', '1'], { allowFail: true });
}

/** conntrack -L lines for TCP flows to a port on a host (the original direction's destination port). */
export async function conntrackOf(n: ClusterNode, dport: number): Promise<string[]> {
  const r = await n.host.exec(['conntrack', '-L', '-p', 'tcp', '--dport', String(dport)], { allowFail: true });
  return r.stdout.split('\n').filter((l) => l.startsWith('tcp'));
}

/** A TCP server in a pod: counts bytes until the peer closes and says how many; `rst` aborts the first connection after 1.5 s of data. */
export function server(ns: Netns, port: number, mode: 'sink' | 'rst'): { ready: Promise<void>; done: Promise<string> } {
  const code = `const net = require('net'); let n = 0;
const s = net.createServer((c) => {
  const t0 = Date.now();
  c.on('data', (d) => { n += d.length; if (${mode === 'rst' ? 'true' : 'false'} && Date.now() - t0 > 1500) c.resetAndDestroy(); });
  c.on('end', () => { c.end(); console.log('bytes ' + n); s.close(); });
  c.on('error', () => { console.log('error ' + n); s.close(); });
  c.on('close', () => { console.log('closed ' + n); s.close(); });
}).listen(${port}, () => console.log('ready'));`;
  const child = ns.spawn(['node', '-e', code]);
  let out = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`server exited ${code}: ${out}`)));
  });
  const done = new Promise<string>((resolve) => child.once('exit', () => resolve(out)));
  return { ready, done };
}

/** Sends `seconds` of data at about `mbps`, then closes with a FIN; resolves with the bytes sent. */
export async function paced(from: Netns, ip: string, port: number, seconds: number, mbps: number): Promise<number> {
  const code = `const net = require('net'); let sent = 0; const chunk = Buffer.alloc(64 * 1024, 7);
const c = net.connect(${port}, '${ip}', () => {
  const per = ${mbps} * 1e6 / 8 / 20; const end = Date.now() + ${seconds * 1000};
  const tick = () => { if (Date.now() > end) { c.end(); return; } let q = 0; while (q < per) { c.write(chunk); q += chunk.length; sent += chunk.length; } setTimeout(tick, 50); };
  tick();
});
c.on('close', () => { console.log(String(sent)); process.exit(0); });
c.on('error', (e) => { console.error(e.message); process.exit(1); });`;
  const r = await from.exec(['node', '-e', code], { timeoutMs: (seconds + 30) * 1000 });
  return Number(r.stdout.trim());
}

/** Connects, writes until the server resets the connection (at most 10 s); true when the reset came. */
export async function untilReset(from: Netns, ip: string, port: number): Promise<boolean> {
  const code = `const net = require('net'); const c = net.connect(${port}, '${ip}', () => { const t = setInterval(() => c.write(Buffer.alloc(16384, 1)), 20); c.on('error', () => { clearInterval(t); console.log('reset'); process.exit(0); }); setTimeout(() => { console.log('no reset'); process.exit(1); }, 10000); });`;
  const r = await from.exec(['node', '-e', code], { allowFail: true, timeoutMs: 20_000 });
  return /^reset/.test(r.stdout);
}

/**
 * A flow from a to b's `port` that b's server resets after 1.5 s of data (a fast path carries it by then):
 * the client sees the reset, and conntrack on both hosts saw it too (CLOSE, where it stays for its 10 s).
 */
export async function resetClosesFlow(p: ConntrackPair, port: number): Promise<void> {
  const srv = server(p.b.ns, port, 'rst');
  await srv.ready;
  assert.ok(await untilReset(p.a.ns, p.b.ip, port), 'the client saw the reset');
  await srv.done;
  for (const n of [p.h1, p.h2]) {
    const lines = await conntrackOf(n, port);
    assert.equal(lines.length, 1, `${n.spec.name}: ${lines.join('\n')}`);
    assert.match(lines[0], /^tcp\s+\d+\s+\d+\s+CLOSE /, `${n.spec.name}: ${lines[0]}`);
  }
}

/**
 * Python that defines csum() and ack(src, dst, sport, dport): a bare TCP ACK
 * (sequence numbers of no connection) with its checksum, for tests that send
 * packets conntrack has no entry for. Scripts append their own sending.
 */
export const TCP_ACK_PY = `
import socket, struct, sys
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def ack(src, dst, sport, dport):
    sa, da = socket.inet_aton(src), socket.inet_aton(dst)
    tcp = struct.pack('!HHIIBBHHH', sport, dport, 12345, 67890, 5 << 4, 0x10, 64240, 0, 0)
    return sa, da, tcp[:16] + struct.pack('!H', csum(sa + da + struct.pack('!BBH', 0, 6, len(tcp)) + tcp)) + tcp[18:]
`;
