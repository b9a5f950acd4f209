// Traffic and kernel counters for the dataplane tests that look at which path
// packets took: the receiving host's IP forwarding counters, ICMP it sent,
// and what a pod's interface received, around a burst of UDP datagrams.
import type { Netns } from '../../lab/netns.js';
import type { Running } from '../../lab/exec.js';

/** A value from /proc/net/snmp in the namespace, e.g. ('Ip', 'ForwDatagrams'). */
export async function snmp(ns: Netns, group: string, field: string): Promise<number> {
  const lines = (await ns.exec(['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith(`${group}:`));
  if (lines.length < 2) throw new Error(`/proc/net/snmp in ${ns.name}: no ${group} lines`);
  const names = lines[0].split(/\s+/).slice(1);
  const values = lines[1].split(/\s+/).slice(1);
  const i = names.indexOf(field);
  if (i < 0) throw new Error(`/proc/net/snmp in ${ns.name}: no ${group} ${field}`);
  return Number(values[i]);
}

/** Packets and bytes a device in the namespace has received. */
export async function rxStats(ns: Netns, dev: string): Promise<{ packets: number; bytes: number }> {
  const [l] = JSON.parse((await ns.exec(['ip', '-j', '-s', 'link', 'show', 'dev', dev])).stdout) as Array<{ stats64: { rx: { packets: number; bytes: number } } }>;
  return { packets: l.stats64.rx.packets, bytes: l.stats64.rx.bytes };
}

// The sink counts datagrams until the first end marker, then prints the count and exits.
const SINK = `const s = require('dgram').createSocket('udp4'); let n = 0;
s.on('message', (m) => { if (m.toString() === 'end') { console.log(String(n)); process.exit(0); } n++; });
s.bind(Number(process.argv[1]), () => console.log('ready'));`;

// count datagrams with the given TTL, 2 ms apart, then end markers with the default TTL every 20 ms until killed.
const SOURCE = `const [ip, port, count, ttl] = process.argv.slice(1).map((x, i) => (i ? Number(x) : x));
const s = require('dgram').createSocket('udp4'); let i = 0;
const end = () => s.send('end', port, ip, () => setTimeout(end, 20));
s.bind(() => { s.setTTL(ttl); const next = () => { if (i++ >= count) { s.setTTL(64); return end(); } s.send(Buffer.alloc(512, 7), port, ip, () => setTimeout(next, 2)); }; next(); });`;

/**
 * Sends count datagrams from one namespace to ip:port (with the given IP
 * TTL), 2 ms apart, and returns how many a sink in the target namespace
 * counted. The count is taken when the sink receives the end marker the
 * source sends after the last datagram, on the same socket, so on the same
 * path and in order: a datagram that has not arrived by then never will, and
 * one that was dropped is proven dropped, without waiting a while. (The
 * marker goes with the default TTL, so it arrives when the burst's TTL is
 * meant not to.) Bounded by the timeouts.
 */
export async function udpBurst(from: Netns, to: Netns, ip: string, count: number, opts: { port?: number; ttl?: number } = {}): Promise<number> {
  const port = String(opts.port ?? 9999);
  const sink = to.start(['node', '-e', SINK, port], { timeoutMs: 30_000, allowFail: true });
  let source: Running | undefined;
  try {
    await sink.output.waitFor(`the UDP sink in ${to.name}`, /^ready$/m, 5000);
    source = from.start(['node', '-e', SOURCE, ip, port, String(count), String(opts.ttl ?? 64)], { timeoutMs: 20_000, allowFail: true });
    const [, n] = await sink.output.waitFor(`the UDP sink in ${to.name} to receive the end marker`, /^(\d+)$/m, 20_000);
    return Number(n);
  } finally {
    source?.child.kill('SIGKILL');
    sink.child.kill('SIGKILL');
  }
}
