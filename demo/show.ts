// What the demo shows once the cluster is up: the leases, the ping matrix,
// iperf3 across hosts, and the dataplane's own view of its peers.
import fs from 'node:fs';
import path from 'node:path';
import type { LabHost, Netns } from '../lab/netns.js';
import type { LabEtcd } from '../lab/etcd.js';
import { bold, dim, FAIL, green, info, output, red, shell, table, waiting } from './ui.js';

export interface DemoPod {
  name: string;
  ns: Netns;
  ip: string;
  host: LabHost;
}

export async function showLeases(etcd: LabEtcd, prefix: string): Promise<void> {
  shell(`ETCDCTL_API=3 etcdctl --endpoints ${etcd.endpoint} get --prefix ${prefix}/subnets`);
  output(await etcd.etcdctl(['get', '--prefix', `${prefix}/subnets`]));
}

interface Ping {
  ok: boolean;
  cell: string;
}

async function ping(from: DemoPod, to: DemoPod): Promise<Ping> {
  const r = await from.ns.exec(['ping', '-c', '3', '-i', '0.2', '-W', '1', '-q', to.ip], { allowFail: true, timeoutMs: 15_000 });
  const received = Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
  const avg = /= [\d.]+\/([\d.]+)\//.exec(r.stdout)?.[1];
  if (received === 3 && avg) return { ok: true, cell: green(Number(avg).toFixed(3)) };
  return { ok: false, cell: red(received ? `${received}/3` : '✗') };
}

/** Every pod pings every other pod; returns whether all answered every ping. */
export async function pingMatrix(pods: DemoPod[]): Promise<boolean> {
  const cells = await waiting(`${pods.length * (pods.length - 1)} pings from every pod to every other`, () =>
    Promise.all(pods.map((a) => Promise.all(pods.map((b) => (a === b ? Promise.resolve({ ok: true, cell: dim('—') }) : ping(a, b)))))),
    (m) => {
      const bad = m.flat().filter((c) => !c.ok).length;
      return bad ? `${bad} pairs lost pings` : 'every pod reached every other pod';
    },
  );
  const head = ['from \\ to', ...pods.map((p) => p.name)];
  const rows = pods.map((a, i) => [`${a.name} ${dim(a.ip)}`, ...cells[i].map((c) => c.cell)]);
  output(table(head, rows, pods.map((_, i) => i + 1)), '  ');
  return cells.flat().every((c) => c.ok);
}

/** iperf3 for 3 seconds from a to b, each second's rate printed as it arrives. */
export async function iperfAcross(a: DemoPod, b: DemoPod): Promise<void> {
  shell(`iperf3 -s -1                      ${dim(`# in ${b.name} (${b.ip})`)}`);
  shell(`iperf3 -c ${b.ip} -t 3 -i 1        ${dim(`# in ${a.name} (${a.ip})`)}`);
  const server = await b.ns.iperf3Server();
  const client = a.ns.spawn(['iperf3', '-c', b.ip, '-t', '3', '-i', '1', '-f', 'g', '--forceflush']);
  let buf = '';
  let summary = '';
  let retransmits = '';
  const line = (l: string): void => {
    // "[  5]   0.00-1.00   sec  1.09 GBytes  9.39 Gbits/sec    0    634 KBytes"
    const m = /\]\s+([\d.]+)-([\d.]+)\s+sec\s+([\d.]+ \w+)\s+([\d.]+) Gbits\/sec\s*(\d+)?.*?(sender|receiver)?$/.exec(l);
    if (!m) return;
    if (m[6] === 'receiver') summary = m[4];
    else if (m[6] === 'sender') retransmits = m[5] ?? '';
    else info(`${Number(m[1]).toFixed(0)}-${Number(m[2]).toFixed(0)} s  ${bold(`${m[4]} Gbit/s`)}  ${dim(`${m[3]}, ${m[5] ?? 0} retransmits`)}`);
  };
  client.stdout!.setEncoding('utf8').on('data', (d: string) => {
    const parts = (buf + d).split('\n');
    buf = parts.pop() ?? '';
    parts.forEach(line);
  });
  let err = '';
  client.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const timer = setTimeout(() => client.kill('SIGKILL'), 20_000);
  const code = await new Promise<number | null>((resolve) => client.on('exit', resolve));
  clearTimeout(timer);
  if (buf) line(buf);
  server.kill('SIGKILL');
  if (code === 0 && summary) info(`${green('✓')} ${bold(`${summary} Gbit/s`)} received over 3 s, ${a.host.hostName} to ${b.host.hostName}${retransmits ? `, ${retransmits} retransmits` : ''}`);
  else info(`${FAIL} iperf3 exited ${code}: ${err.trim().split('\n').at(-1) ?? ''}`);
}

/** `weft bpf peers` from the pinned maps, or for netlink mode the routes, neighbours and FDB entries it programmed. */
export async function showDataplane(h: LabHost, dataplane: string, cli: string): Promise<void> {
  if (dataplane !== 'netlink' && fs.existsSync(path.join(h.pinDir, 'weft_peers'))) {
    shell(`nsenter --net=/run/netns/${h.name} node ${cli} bpf peers --bpf-pin-dir ${h.pinDir}`);
    const r = await h.exec([process.execPath, cli, 'bpf', 'peers', '--bpf-pin-dir', h.pinDir], { allowFail: true });
    output(r.code === 0 ? r.stdout : `${red(`exit ${r.code}`)} ${r.stderr}`);
    return;
  }
  const show = async (label: string, cmd: string[], keep: (l: string) => boolean = () => true): Promise<void> => {
    shell(`${cmd.join(' ')}    ${dim(`# ${label}, in ${h.hostName}`)}`);
    const r = await h.exec(cmd, { allowFail: true });
    const lines = r.stdout.split('\n').filter((l) => l.trim() && keep(l));
    output(lines.length ? lines.join('\n') : dim('(none)'));
  };
  // 87 is RTPROT_WEFT: the routes either dataplane installs carry it.
  await show('weft\'s routes', ['ip', 'route', 'show', 'proto', '87']);
  await show('permanent ARP entries', ['ip', 'neigh', 'show', 'nud', 'permanent']);
  await show('FDB entries with a remote VTEP', ['bridge', 'fdb', 'show'], (l) => l.includes(' dst '));
}
