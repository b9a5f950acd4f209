// from_pod (bpf/gateway.c, src/dataplane/ebpf/podports.ts) on the lab's
// docker and kube host profiles: the agent puts it on every port of the pods'
// bridge, pods' established TCP flows to another host's pods are sent from
// the port past bridge-nf and the host's forward path once conntrack tracks
// them liberally, and conntrack stays right about them: the flow outlives its
// timeout, FIN and RST close it, a translated flow's replies take the host's
// path, kube-proxy still drops what is INVALID, an expiring TTL is still
// answered, and a pod made after the agent started gets the program.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Cluster, ClusterNode, Pod } from '../../lab/cluster.js';
import { serviceIP, SERVICE_PORT, type HostProfile } from '../../lab/profiles.js';
import { CLI } from '../../lab/agent.js';
import { withNetns } from 'weft/native/addon.js';
import { BpfLink, BpfObject, progInfo, tcFilters, tcxPrograms, tcxSupported } from 'weft/native/bpf.js';
import { NetlinkHandle } from 'weft/native/netlink.js';
import { snmp, udpBurst } from '../bpf/traffic.js';
import { conntrackOf, conntrackPair, countForwarded, resetClosesFlow, dropCounter, invalidDrops, paced, server, TCP_ACK_PY } from '../harness/conntrack.js';

const PORT = 7000;
const BYSTANDER_O = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../build/test-bpf/bystander.o');

/** Runs fn in a host's network namespace with a device's ifindex. */
function onDevice<T>(node: ClusterNode, dev: string, fn: (ifindex: number) => T): T {
  return withNetns(`/run/netns/${node.host.name}`, () => {
    const nl = NetlinkHandle.open();
    let ix: number;
    try {
      ix = nl.link(dev)!.index;
    } finally {
      nl.close();
    }
    return fn(ix);
  });
}

/** The programs named from_pod on a device's ingress (tcx links and classic filters). */
function fromPodOn(node: ClusterNode, dev: string): number {
  return withNetns(`/run/netns/${node.host.name}`, () => {
    const nl = NetlinkHandle.open();
    try {
      const link = nl.link(dev);
      if (!link) return 0;
      const tcx = tcxSupported() ? tcxPrograms(link.index, 'ingress').filter((e) => progInfo(e.progId).name === 'from_pod').length : 0;
      return tcx + tcFilters(link.index, 'ingress').filter((f) => /^from_pod/.test(f.name ?? '')).length;
    } finally {
      nl.close();
    }
  });
}

/** The host end of a lab pod's veth (lab/netns.ts addPod). */
const portOf = (pod: Pod): string => `v${pod.ns.name.split('-').pop()}`.slice(0, 15);

/** `weft monitor` on a host for `seconds`, trace events about `address`: the programs that sent them. */
async function tracePrograms(n: ClusterNode, address: string, seconds: number): Promise<Map<string, number>> {
  const r = await n.host.exec([process.execPath, CLI, 'monitor', '--bpf-pin-dir', n.host.pinDir, '--type', 'trace', '--sample', '10', '--address', address, '--duration', String(seconds), '-o', 'json'], { timeoutMs: (seconds + 20) * 1000 });
  const seen = new Map<string, number>();
  for (const line of r.stdout.split('\n').filter((l) => l.startsWith('{'))) {
    const e = JSON.parse(line) as { program?: string; action?: string };
    const k = `${e.program} ${e.action}`;
    seen.set(k, (seen.get(k) ?? 0) + 1);
  }
  return seen;
}

/** A TCP ACK for no connection, sent from a pod by a raw socket: conntrack has no entry, so it is INVALID (nf_conntrack_tcp_loose=0). */
async function strayAcks(from: Pod, to: Pod, count: number): Promise<void> {
  const py = `${TCP_ACK_PY}
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sa, da, tcp = ack(src, dst, 40001, ${PORT})
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
for i in range(n): s.sendto(tcp, (dst, 0))
`;
  await from.ns.exec(['python3', '-c', py, from.ip, to.ip, String(count)]);
}

for (const profile of ['kube', 'docker'] as const satisfies readonly HostProfile[]) {
  describe(`${profile} profile: from_pod on the pods' ports`, () => {
    let c: Cluster;
    let h1: ClusterNode;
    let h2: ClusterNode;
    let a: Pod;
    let b: Pod;

    before(async () => {
      ({ c, h1, h2, a, b } = await conntrackPair(profile, PORT));
    });

    after(() => c?.destroy());

    test('the agent put from_pod on each pod\'s port, and only there; weft bpf programs shows it as weft\'s, in place', async () => {
      for (const n of [h1, h2]) {
        assert.equal(fromPodOn(n, portOf(n.pods[0])), 1, `${n.spec.name}: from_pod on ${portOf(n.pods[0])}`);
        assert.equal(fromPodOn(n, 'docker0') + fromPodOn(n, 'eth0'), 0, `${n.spec.name}: not on the bridge or the underlay`);
      }
      const r = await h1.host.exec([process.execPath, CLI, 'bpf', 'programs', '--pin-dir', h1.host.pinDir, '-o', 'json']);
      const j = JSON.parse(r.stdout) as { filters: Array<{ ifname: string; name: string | null; weft: boolean }>; findings: Array<{ message: string }> };
      assert.deepEqual(j.filters.filter((f) => f.name === 'from_pod').map((f) => [f.ifname, f.weft]), [[portOf(a), true]]);
      assert.deepEqual(j.findings.filter((f) => /from_pod/.test(f.message)), [], 'no finding about from_pod');
    });

    test('a long established stream is sent from the pod\'s port past bridge-nf, outlives conntrack\'s timeout, and closes with its FIN', async (t) => {
      const from = [h1, h2].map((n) => n.agent!.lines.length);
      for (const n of [h1, h2]) await n.host.sysctl('net.netfilter.nf_conntrack_tcp_timeout_established', '2');
      t.after(async () => {
        for (const n of [h1, h2]) await n.host.sysctl('net.netfilter.nf_conntrack_tcp_timeout_established', '86400');
      });
      for (const [i, n] of [h1, h2].entries()) await n.agent!.waitForLog('the new conntrack timeout', (l) => l.ctTimeoutMs === 2000, 5000, from[i]);
      // What h1 forwards itself of a's data: bridge-nf hands every packet it sees to FORWARD.
      const forwarded = await countForwarded(h1, ['-s', a.ip, '-d', b.ip, '-p', 'tcp', '--dport', String(PORT)]);
      t.after(() => dropCounter(h1));
      const invalid = profile === 'kube' ? [await invalidDrops(h1), await invalidDrops(h2)] : [];
      const srv = server(b.ns, PORT, 'sink');
      await srv.ready;
      // 8 s, four times conntrack's timeout, at 50 Mbit/s; the monitor watches h1 meanwhile.
      const [sent, traced] = await Promise.all([paced(a.ns, b.ip, PORT, 8, 50), tracePrograms(h1, b.ip, 4)]);
      const out = await srv.done;
      assert.match(out, new RegExp(`bytes ${sent}\\b`), `every byte arrived and the FIN closed the stream: sent ${sent}, server said ${out.trim()}`);
      const slow = await forwarded();
      assert.ok(slow < sent / 5, `h1 forwarded ${slow} of the ${sent} bytes a sent itself: the rest should have left from a's port`);
      assert.ok((traced.get('from_pod encap') ?? 0) > 0, `weft monitor on h1 saw from_pod send a's packets: ${JSON.stringify([...traced])}`);
      if (profile === 'kube') assert.deepEqual([await invalidDrops(h1), await invalidDrops(h2)], invalid, 'conntrack found nothing INVALID on either host');
      // Closed in conntrack by both FINs and the last ACK: TIME_WAIT on both hosts, as without the fast path.
      for (const n of [h1, h2]) {
        const lines = await conntrackOf(n, PORT);
        assert.equal(lines.length, 1, `${n.spec.name}: conntrack -L shows the flow: ${lines.join('\n')}`);
        assert.match(lines[0], /^tcp\s+\d+\s+\d+\s+TIME_WAIT /, `${n.spec.name}: ${lines[0]}`);
      }
    });

    test('a RST closes a flow from_pod carries', async (t) => {
      const port = PORT + 1;
      const forwarded = await countForwarded(h1, ['-s', a.ip, '-d', b.ip, '-p', 'tcp', '--dport', String(port)]);
      t.after(() => dropCounter(h1));
      await resetClosesFlow({ c, h1, h2, a, b }, port);
      assert.ok((await forwarded()) < 1_000_000, 'most of the flow left from a\'s port');
    });

    test('a flow translated where its replies start (DNAT to b on h2) keeps its translation: from_pod leaves b\'s replies to the host', async (t) => {
      // An address of h2's subnet no pod holds, DNAT'ed by h2 to b (as a hostPort or NodePort would be).
      const vip = h2.env.FLANNEL_SUBNET.replace(/\.1\/\d+$/, '.200');
      await h2.host.exec(['iptables', '-w', '-t', 'nat', '-I', 'PREROUTING', '-d', vip, '-p', 'tcp', '--dport', '80', '-j', 'DNAT', '--to-destination', `${b.ip}:${PORT}`]);
      t.after(() => h2.host.exec(['iptables', '-w', '-t', 'nat', '-D', 'PREROUTING', '-d', vip, '-p', 'tcp', '--dport', '80', '-j', 'DNAT', '--to-destination', `${b.ip}:${PORT}`], { allowFail: true }));
      // b's replies (ACKs) as h2 forwards them itself: all of them, since each needs its source translated back.
      const replies = await countForwarded(h2, ['-s', b.ip, '-d', a.ip, '-p', 'tcp', '--sport', String(PORT)]);
      t.after(() => dropCounter(h2));
      const srv = server(b.ns, PORT, 'sink');
      await srv.ready;
      // A reply sent untranslated (from b's own address) would reach a's TCP as a stranger's and reset the stream.
      const sent = await paced(a.ns, vip, 80, 3, 20);
      const out = await srv.done;
      assert.match(out, new RegExp(`bytes ${sent}\\b`), `every byte through the translated address: sent ${sent}, server said ${out.trim()}`);
      const lines = await conntrackOf(h2, 80);
      assert.ok(lines.some((l) => l.includes(`dst=${vip}`) && l.includes(`src=${b.ip}`) && l.includes(`sport=${PORT}`)), `h2's conntrack shows the DNAT: ${lines.join('\n')}`);
      assert.ok((await replies()) > 0, 'h2 forwarded b\'s replies itself');
      if (profile === 'kube') {
        // A ClusterIP (DNAT on h1, the client's host) to b: the replies are translated back on h1.
        const srv2 = server(b.ns, PORT, 'sink');
        await srv2.ready;
        const sent2 = await paced(a.ns, serviceIP(0), SERVICE_PORT, 2, 20);
        assert.match(await srv2.done, new RegExp(`bytes ${sent2}\\b`), 'every byte through the ClusterIP');
        const l1 = (await h1.host.exec(['conntrack', '-L', '-p', 'tcp', '-d', serviceIP(0)], { allowFail: true })).stdout;
        assert.match(l1, new RegExp(`src=${b.ip.replace(/\./g, '\\.')} dst=${a.ip.replace(/\./g, '\\.')} sport=${PORT}`), `h1's conntrack shows the service's DNAT: ${l1}`);
      }
    });

    if (profile === 'kube') {
      test('kube-proxy\'s INVALID drop still drops what a pod sends for no connection', async () => {
        const before = [await invalidDrops(h1), await snmp(b.ns, 'Tcp', 'OutRsts')];
        await strayAcks(a, b, 5);
        // Dropped on h1, where it entered: none reaches b, whose TCP would answer each with a RST.
        assert.ok((await invalidDrops(h1)) >= before[0] + 5, `h1 dropped ${(await invalidDrops(h1)) - before[0]} of 5 as INVALID`);
        const marker = await udpBurst(a.ns, b.ns, b.ip, 1);
        assert.equal(marker, 1, 'a datagram sent after them arrived: they had their chance to');
        assert.equal(await snmp(b.ns, 'Tcp', 'OutRsts'), before[1], 'none reached b');
      });
    }

    test('a packet whose TTL expires on h1 is answered by h1', async () => {
      const exceeded = await snmp(h1.host, 'Icmp', 'OutTimeExcds');
      assert.equal(await udpBurst(a.ns, b.ns, b.ip, 3, { ttl: 1 }), 0, 'nothing sent with TTL 1 reaches another host\'s pod');
      assert.ok((await snmp(h1.host, 'Icmp', 'OutTimeExcds')) > exceeded, 'h1 sent time exceeded');
    });

    test('a pod made after the agent started gets from_pod, and its flows use it', async (t) => {
      const from = h1.agent!.lines.length;
      const p = await c.addPod(h1);
      await h1.agent!.waitForLog('from_pod on the new port', (l) => l.msg === 'from_pod\'s ports changed' && Number(l.attached) > 0, 10_000, from);
      assert.equal(fromPodOn(h1, portOf(p)), 1);
      const port = PORT + 2;
      const forwarded = await countForwarded(h1, ['-s', p.ip, '-d', b.ip, '-p', 'tcp', '--dport', String(port)]);
      t.after(() => dropCounter(h1));
      const srv = server(b.ns, port, 'sink');
      await srv.ready;
      const sent = await paced(p.ns, b.ip, port, 3, 50);
      assert.match(await srv.done, new RegExp(`bytes ${sent}\\b`));
      const slow = await forwarded();
      assert.ok(slow < sent / 5, `h1 forwarded ${slow} of ${sent} bytes from the new pod itself`);
    });

    if (profile === 'docker' && tcxSupported()) {
      test('someone else\'s program on a pod\'s port sees its packets first; from_pod removed by hand comes back; weft uninstall takes it off the port and leaves theirs', async (t) => {
        const port = portOf(a);
        const obj = BpfObject.load(BYSTANDER_O);
        t.after(() => obj.close());
        // At the head of the port's chain, as a policy program would put itself.
        const theirs = onDevice(h1, port, (ix) => BpfLink.attachTcx(ix, 'ingress', obj.program('bystander_tcx').fd, true));
        t.after(() => theirs.close());
        const seen = (): bigint => obj.map('by_tcx_seen').lookup(Buffer.alloc(4))!.readBigUInt64LE(0);
        const chain = (): string[] => onDevice(h1, port, (ix) => tcxPrograms(ix, 'ingress').map((e) => progInfo(e.progId).name));
        assert.deepEqual(chain(), ['bystander_tcx', 'from_pod']);
        const srv = server(b.ns, PORT, 'sink');
        await srv.ready;
        const sent = await paced(a.ns, b.ip, PORT, 2, 20);
        assert.match(await srv.done, new RegExp(`bytes ${sent}\\b`));
        assert.ok(seen() > 100n, `their program saw the stream's packets (${seen()}) before from_pod sent them`);
        // Someone detaches from_pod: the agent's next pass (at most 30 s: a tcx detach sends no netlink event) puts it back, last.
        const mine = onDevice(h1, port, (ix) => tcxPrograms(ix, 'ingress').find((e) => progInfo(e.progId).name === 'from_pod')!);
        const link = BpfLink.fromId(mine.linkId);
        link.detach();
        link.close();
        assert.deepEqual(chain(), ['bystander_tcx']);
        const from = h1.agent!.lines.length;
        await h1.agent!.waitForLog('from_pod put back', (l) => l.msg === 'from_pod\'s ports changed' && Number(l.attached) === 1, 40_000, from);
        assert.deepEqual(chain(), ['bystander_tcx', 'from_pod']);
        // weft uninstall (agent stopped, as an operator runs it) removes from_pod's links and pins, nothing of theirs.
        assert.equal(await h1.agent!.stop(), 0);
        const r = await h1.host.exec([process.execPath, CLI, 'uninstall', '--bpf-pin-dir', h1.host.pinDir, '-o', 'json']);
        const report = JSON.parse(r.stdout) as { links: string[]; pins: string[] };
        const ports = h1.pods.map(portOf).sort();
        assert.deepEqual(report.links.filter((l) => l.endsWith('(from_pod)')).sort(), ports.map((p) => `${p} ingress (from_pod)`));
        assert.equal(report.pins.filter((p) => /\/link_from_pod_\d+$/.test(p)).length, ports.length, report.pins.join(', '));
        assert.deepEqual(chain(), ['bystander_tcx']);
        const before = seen();
        await a.ns.exec(['ping', '-c', '2', '-i', '0.2', '-W', '2', h1.env.FLANNEL_SUBNET.split('/')[0]]);
        assert.ok(seen() > before, 'their program still runs');
      });
    }
  });
}
