// The agent's side of the status socket: a unix socket (mode 0600) where
// `weft status` asks what the agent holds. One length-delimited Request in,
// one Response out (src/status/status.proto). It is an inspection aid: if it
// cannot listen, the agent logs why and forwards packets all the same.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FrameReader, decodeRequest, encodeErrorReply, encodeStatusReply, type AgentStatus } from '../status/codec.js';
import { BpfMap } from '../native/bpf.js';
import { MAP_PEERS, decodePeer } from '../dataplane/ebpf/maps.js';
import type { Agent } from './agent.js';

export type StatusSource = () => Promise<AgentStatus>;

/** A client that sends nothing, or half a frame, is cut off after this long. */
const CLIENT_TIMEOUT_MS = 5000;

export class StatusServer {
  private server: net.Server | undefined;
  private readonly clients = new Set<net.Socket>();
  socketPath: string | undefined;

  constructor(private readonly source: StatusSource) {}

  /** Listens on socketPath; throws with a sentence saying why it cannot. */
  async listen(socketPath: string): Promise<void> {
    fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o755 });
    await removeStaleSocket(socketPath);
    const server = net.createServer((c) => this.serve(c));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(`cannot listen on ${socketPath}: ${err.code ?? err.message}`)));
      // bind() happens inside listen(), synchronously: the umask makes the socket 0600 from its first moment,
      // so no other user can connect in the gap before the chmod below.
      const old = process.umask(0o177);
      try {
        server.listen(socketPath, () => resolve());
      } finally {
        process.umask(old);
      }
    });
    fs.chmodSync(socketPath, 0o600);
    this.server = server;
    this.socketPath = socketPath;
  }

  private serve(c: net.Socket): void {
    this.clients.add(c);
    c.on('close', () => this.clients.delete(c));
    c.on('error', () => c.destroy());
    c.setTimeout(CLIENT_TIMEOUT_MS, () => c.destroy());
    const reader = new FrameReader();
    let answered = false;
    c.on('data', (chunk: Buffer) => {
      if (answered) return;
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch (err) {
        answered = true;
        c.end(encodeErrorReply((err as Error).message));
        return;
      }
      if (frames.length === 0) return;
      answered = true;
      void this.answer(frames[0]).then((reply) => c.end(reply));
    });
  }

  private async answer(frame: Buffer): Promise<Buffer> {
    try {
      const req = decodeRequest(frame);
      if (req.what !== 'status') return encodeErrorReply(`this agent does not know that request (protocol version ${req.version}); upgrade the agent`);
      return encodeStatusReply(await this.source());
    } catch (err) {
      return encodeErrorReply(`the agent could not answer: ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    for (const c of this.clients) c.destroy();
    // libuv unlinks the socket file when the listening handle closes.
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

/**
 * A socket file left by an agent that was killed is removed; one that a live
 * agent answers on is not ours to take; anything that is not a socket is not
 * ours to delete.
 */
async function removeStaleSocket(socketPath: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`${socketPath} exists and is not a socket; remove it or choose another --status-socket`);
  const live = await new Promise<boolean>((resolve) => {
    const c = net.connect(socketPath);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (live) throw new Error(`another weft agent already answers on ${socketPath} (two agents on one host?); give this one its own --status-socket`);
  fs.rmSync(socketPath, { force: true });
}

let weftVersion: string | undefined;
function version(): string {
  if (weftVersion === undefined) {
    try {
      const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../package.json');
      weftVersion = String((JSON.parse(fs.readFileSync(pkg, 'utf8')) as { version?: string }).version ?? '');
    } catch {
      weftVersion = '';
    }
  }
  return weftVersion;
}

function phase(a: Agent): string {
  if (a.ready) return 'ready';
  if (!a.config) return 'waiting for the network config in etcd';
  if (!a.own) return 'acquiring a subnet lease';
  return 'programming the dataplane and listing peers';
}

/** Peer entries the dataplane holds, or why that is not known. */
async function peersInMaps(a: Agent): Promise<{ inMaps: number | null; inMapsNote: string }> {
  const dp = a.dataplane;
  if (!dp) return { inMaps: null, inMapsNote: a.dataplaneReason ? `no dataplane: ${a.dataplaneReason}` : 'the dataplane is not started yet' };
  try {
    if (dp.status) return { inMaps: (await dp.status()).peersInMaps, inMapsNote: '' };
    if (dp.kind === 'ebpf') return { inMaps: countPinnedPeers(a.opts.bpfPinDir), inMapsNote: '' };
    return { inMaps: null, inMapsNote: `the ${dp.kind} dataplane does not report its peers` };
  } catch (err) {
    return { inMaps: null, inMapsNote: `cannot count the dataplane's peers: ${(err as Error).message}` };
  }
}

/** Remote subnets in the pinned weft_peers map (our own subnet's entry excluded). */
function countPinnedPeers(pinDir: string): number {
  const map = BpfMap.fromPin(path.join(pinDir, MAP_PEERS));
  try {
    return map.entries().filter(([k, v]) => !decodePeer(k, v).local).length;
  } finally {
    map.close();
  }
}

/** A snapshot of what the agent holds, for the status socket. */
export async function agentStatus(a: Agent): Promise<AgentStatus> {
  const peers = [...a.peers.values()];
  const routed = peers.filter((p) => p.route).length;
  const own = a.own;
  const cfg = a.config?.backend;
  const vtepMAC = (a.backend as { vtepMAC?: string } | undefined)?.vtepMAC ?? '';
  return {
    pid: process.pid,
    hostname: os.hostname(),
    startedAtMs: a.startedAt,
    nowMs: Date.now(),
    phase: phase(a),
    ready: a.ready,
    lease: own
      ? {
          subnet: own.subnet.toString(),
          subnetV6: own.subnetV6?.toString() ?? '',
          reservation: own.reservation,
          expiresAtMs: own.expiresAt ?? 0,
          leaseId: own.leaseId,
          publicIP: a.selected.publicIP,
        }
      : null,
    backend: { type: a.backend?.type ?? cfg?.type ?? '', vni: cfg?.type === 'vxlan' ? cfg.vni : 0, port: cfg?.port ?? 0, vtepMAC, directRouting: cfg?.directRouting ?? false },
    dataplane: { requested: a.opts.dataplane, kind: a.dataplane?.kind ?? 'none', reason: a.dataplaneReason, pinDir: a.opts.bpfPinDir },
    etcd: { endpoints: a.opts.etcd.endpoints, prefix: a.registry.prefix, connected: a.watcherConnected, revision: Number(a.revision) },
    peers: { inView: peers.length, routed, skipped: peers.length - routed, ...(await peersInMaps(a)) },
    iface: { name: a.selected.iface.name, index: a.selected.iface.index, address: a.selected.iface.address, mtu: a.selected.iface.mtu },
    errors: a.errors.map((e) => ({ atMs: Date.parse(e.at), message: e.message })),
    network: a.config?.ipv4.network.toString() ?? '',
    mtu: a.backend ? a.backend.podMTU(a.selected.iface.mtu) : 0,
    subnetFile: a.opts.subnetFile,
    version: version(),
  };
}
