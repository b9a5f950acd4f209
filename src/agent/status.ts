// The agent's side of the status socket: a unix socket (mode 0600) where
// `weft status` asks what the agent holds. One length-delimited Request in,
// one Response out (src/status/status.proto). It only serves: the agent builds
// the answer (Agent.snapshot). It is an inspection aid: if it cannot listen,
// the agent logs why and forwards packets all the same.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { FrameReader, decodeRequest, encodeErrorReply, encodeStatusReply, type AgentStatus } from '../status/codec.js';

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
    // Nothing there (or nothing we can see): listen() will say if the path is unusable.
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
