// A listening $NOTIFY_SOCKET, as systemd holds one for a Type=notify unit:
// every datagram with the PID the kernel vouches for (SCM_CREDENTIALS, which
// is how systemd tells the main PID's READY=1 from anyone else's) and whether
// a file existed when it arrived. Python, because Node has no unix datagram
// sockets; abstract names (@...) live in a network namespace, so the listener
// runs in the agent's.
import type { ChildProcess } from 'node:child_process';
import { stopProcess, waitFor, WaitAbort } from './exec.js';
import type { Netns } from './netns.js';

const LISTENER = String.raw`
import json, os, socket, struct, sys, time
address, check = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\0' + address[1:] if address.startswith('@') else address)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({'listening': address}), flush=True)
while True:
    data, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(12))
    pid = None
    for level, kind, creds in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack('iII', creds[:12])[0]
    print(json.dumps({'pid': pid, 'lines': data.decode().split('\n'), 'fileExists': os.path.exists(check) if check else None, 'atMs': time.time() * 1000}), flush=True)
`;

export interface Notification {
  pid: number | null;
  lines: string[];
  /** Whether the file named at start existed when the datagram arrived. */
  fileExists: boolean | null;
  atMs: number;
}

export class NotifyListener {
  readonly messages: Notification[] = [];
  private rest = '';

  private constructor(
    readonly address: string,
    private readonly child: ChildProcess,
  ) {}

  /** Listens on `address` (a path, or @name) inside `ns`; `checkFile` is looked at on every datagram. */
  static async start(ns: Netns, address: string, checkFile = ''): Promise<NotifyListener> {
    const child = ns.spawn(['python3', '-c', LISTENER, address, checkFile]);
    const l = new NotifyListener(address, child);
    let listening = false;
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      const parts = (l.rest + d).split('\n');
      l.rest = parts.pop() ?? '';
      for (const p of parts) {
        const m = JSON.parse(p) as Notification & { listening?: string };
        if (m.listening) listening = true;
        else l.messages.push(m);
      }
    });
    await waitFor(`the notify listener on ${address}`, () => {
      if (child.exitCode !== null) throw new WaitAbort(`notify listener exited ${child.exitCode}: ${stderr}`);
      return listening;
    }, 5000);
    return l;
  }

  /** Every KEY=VALUE line received, in order. */
  get lines(): string[] {
    return this.messages.flatMap((m) => m.lines);
  }

  async waitFor(what: string, pred: (m: Notification) => boolean, timeoutMs = 10_000): Promise<Notification> {
    try {
      return await waitFor(`${what} on ${this.address}`, () => this.messages.find(pred), timeoutMs, 20);
    } catch (err) {
      (err as Error).message += `; received: ${JSON.stringify(this.lines)}`;
      throw err;
    }
  }

  async stop(): Promise<void> {
    await stopProcess(this.child, 2000);
  }
}
