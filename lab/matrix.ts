// The full cross-host pod matrix for many pods, in bounded time and CPU:
// every pod pings every pod on the other hosts and sends it a TCP transfer.
// The TCP ends live in this process: a sink listening inside each pod's
// namespace and each transfer's client socket made inside the source's (a
// socket keeps the namespace it was made in), so 60 pods need no server or
// client processes. The pings of one source are one fping in its namespace,
// and a few sources run at a time.
import net from 'node:net';
import { withNetns } from 'weft/native/addon.js';
import type { Netns } from './netns.js';
import type { Pod } from './cluster.js';

export const SINK_PORT = 7799;

export interface Sinks {
  /** Connections served, by pod address. */
  served: Map<string, number>;
  close(): Promise<void>;
}

/** A TCP sink in each pod: reads "N\n" and N bytes, answers "ok <bytes counted> <peer address>". */
export function startSinks(pods: Array<Pick<Pod, 'ns' | 'ip'>>, port = SINK_PORT): Sinks {
  const served = new Map<string, number>();
  const servers = pods.map((pod) => {
    const server = net.createServer((c) => {
      let header = '';
      let count = -1;
      let want = 0;
      c.on('data', (d: Buffer) => {
        if (count < 0) {
          header += d.toString('latin1');
          const nl = header.indexOf('\n');
          if (nl < 0) return;
          want = Number(header.slice(0, nl));
          count = Buffer.byteLength(header.slice(nl + 1), 'latin1');
        } else count += d.length;
        if (count >= want) {
          served.set(pod.ip, (served.get(pod.ip) ?? 0) + 1);
          c.end(`ok ${count} ${(c.remoteAddress ?? '').replace(/^::ffff:/, '')}\n`);
        }
      });
      c.on('error', () => undefined);
    });
    // listen() without a host binds synchronously, so the socket is made inside the pod's namespace.
    withNetns(`/run/netns/${pod.ns.name}`, () => server.listen(port));
    return server;
  });
  return {
    served,
    close: () => Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => undefined),
  };
}

export type Transfer = { bytes: number; seenFrom: string } | { error: string };

/**
 * `bytes` over TCP from namespace `from` to a sink at ip:port; resolves with
 * what the sink counted and saw, within 8 s. The lookup hook makes connect()
 * create its socket synchronously, while the thread is inside `from`.
 */
export function transfer(from: Netns, ip: string, port: number, bytes: number): Promise<Transfer> {
  return new Promise((resolve) => {
    let answer = '';
    const c = withNetns(`/run/netns/${from.name}`, () =>
      net.connect({ host: 'sink', port, autoSelectFamily: false, lookup: (_h, _o, cb) => cb(null, ip, 4) }),
    );
    c.on('connect', () => {
      c.write(`${bytes}\n`);
      c.end(Buffer.alloc(bytes));
    });
    const timer = setTimeout(() => c.destroy(new Error('no answer in 8 s')), 8000);
    c.setEncoding('utf8').on('data', (d: string) => (answer += d));
    c.on('error', (e) => {
      clearTimeout(timer);
      resolve({ error: e.message });
    });
    c.on('close', () => {
      clearTimeout(timer);
      const m = /^ok (\d+) (\S+)/.exec(answer);
      resolve(m ? { bytes: Number(m[1]), seenFrom: m[2] } : { error: `sink answered ${JSON.stringify(answer)}` });
    });
  });
}

/** Echo requests to every address from one fping in `from` (a lost one retried once, 2 s each): the addresses that answered. */
async function pingAll(from: Netns, ips: string[]): Promise<Set<string>> {
  const r = await from.exec(['fping', '--alive', '--retry=1', '--timeout=2000', '--interval=2', ...ips], { timeoutMs: 20_000, allowFail: true });
  return new Set(r.stdout.split('\n').filter(Boolean));
}

export interface PairResult {
  from: Pod;
  to: Pod;
  ping: boolean;
  tcp: Transfer;
}

export const MATRIX_BYTES = 64 * 1024;

/** Each pod to every pod on another host: one ping and `bytes` over TCP; `parallel` source pods at a time. */
export async function crossHostMatrix(pods: Pod[], opts: { bytes?: number; parallel?: number; port?: number } = {}): Promise<PairResult[]> {
  const bytes = opts.bytes ?? MATRIX_BYTES;
  const port = opts.port ?? SINK_PORT;
  const sinks = startSinks(pods, port);
  const out: PairResult[] = [];
  try {
    const queue = [...pods];
    const worker = async (): Promise<void> => {
      for (let from = queue.shift(); from; from = queue.shift()) {
        const source = from;
        const targets = pods.filter((p) => p.node !== source.node);
        const [answered, tcp] = await Promise.all([pingAll(source.ns, targets.map((t) => t.ip)), Promise.all(targets.map((t) => transfer(source.ns, t.ip, port, bytes)))]);
        targets.forEach((to, i) => out.push({ from: source, to, ping: answered.has(to.ip), tcp: tcp[i] }));
      }
    };
    await Promise.all(Array.from({ length: opts.parallel ?? 3 }, worker));
  } finally {
    await sinks.close();
  }
  return out;
}

/** The pairs that failed, one line each (empty when all passed): no ping, no transfer, a short count, or an address translated on the way. */
export function matrixFailures(results: PairResult[], bytes = MATRIX_BYTES, expectPodSource = true): string {
  return results.flatMap((r) => {
    const what = `${r.from.ns.name} ${r.from.ip} -> ${r.to.ns.name} ${r.to.ip}`;
    const bad: string[] = [];
    if (!r.ping) bad.push('no ping reply');
    if ('error' in r.tcp) bad.push(`tcp: ${r.tcp.error}`);
    else {
      if (r.tcp.bytes !== bytes) bad.push(`tcp: ${r.tcp.bytes} of ${bytes} bytes`);
      if (expectPodSource && r.tcp.seenFrom !== r.from.ip) bad.push(`tcp: the sink saw ${r.tcp.seenFrom}, not the pod's address`);
    }
    return bad.length ? [`${what}: ${bad.join('; ')}`] : [];
  }).join('\n');
}
