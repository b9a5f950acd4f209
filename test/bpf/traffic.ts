// Traffic and kernel counters for the dataplane tests that look at which path
// packets took: the receiving host's IP forwarding counters, ICMP it sent,
// and what a pod's interface received, around a burst of UDP datagrams.
import type { Netns } from '../../lab/netns.js';

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

const SINK = `const s = require('dgram').createSocket('udp4'); let n = 0;
s.on('message', () => n++);
s.bind(Number(process.argv[1]), () => console.log('ready'));
process.stdin.on('data', () => { console.log(String(n)); process.exit(0); });`;

const SOURCE = `const [ip, port, count, ttl] = process.argv.slice(1).map((x, i) => (i ? Number(x) : x));
const s = require('dgram').createSocket('udp4'); let i = 0;
s.bind(() => { s.setTTL(ttl); const next = () => { if (i++ >= count) return s.close(); s.send(Buffer.alloc(512, 7), port, ip, () => setTimeout(next, 2)); }; next(); });`;

/**
 * Sends count datagrams from one namespace to ip:port (with the given IP
 * TTL), 2 ms apart, and returns how many a sink in the target namespace
 * counted. Bounded by the count and the timeouts.
 */
export async function udpBurst(from: Netns, to: Netns, ip: string, count: number, opts: { port?: number; ttl?: number } = {}): Promise<number> {
  const port = opts.port ?? 9999;
  const sink = to.spawn(['node', '-e', SINK, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  sink.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  try {
    await waitOutput(() => out.includes('ready'), 5000, `UDP sink in ${to.name}`);
    await from.exec(['node', '-e', SOURCE, ip, String(port), String(count), String(opts.ttl ?? 64)], { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 300));
    sink.stdin!.write('x');
    await waitOutput(() => /\d+\s*$/.test(out.replace('ready', '')), 5000, `UDP sink in ${to.name} to report`);
    return Number(out.replace('ready', '').trim());
  } finally {
    sink.kill('SIGKILL');
  }
}

async function waitOutput(ok: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`${what}: no answer in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
