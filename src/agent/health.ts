// flannel's health endpoints: /healthz is 200 while the agent runs, /readyz
// is 200 once subnet.env is written and the dataplane is programmed. The body
// of /readyz is the agent's phase: what it waits for ("etcd unreachable: ...")
// or, once ready, whether etcd is reachable now. And /metrics, Prometheus's
// text, on the same address (or alone on its own port, --metrics-port).
import http from 'node:http';
import { WeftError } from '../core/errors.js';

/** A page rendered on request, e.g. /metrics. */
export type Page = () => Promise<{ contentType: string; body: string }>;

export class HealthServer {
  private server: http.Server | undefined;
  ready = false;

  /**
   * pages: served by path (/metrics); health: serve /healthz and /readyz (false: only the pages, as the
   * --metrics-port server); phase: /readyz's body.
   */
  constructor(
    private readonly pages: Record<string, Page> = {},
    private readonly health = true,
    private readonly phase: () => string = () => (this.ready ? 'ready' : 'not ready'),
  ) {}

  /** flags: how the user named the address and port, for the error when they cannot be listened on. */
  async listen(ip: string, port: number, flags = '--healthz-ip IP --healthz-port PORT'): Promise<void> {
    const server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const page = this.pages[path];
      if (this.health && path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (this.health && path === '/readyz') {
        const phase = this.phase();
        res.writeHead(this.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(`${this.ready ? '' : 'not ready: '}${phase}\n`);
      } else if (page) {
        page().then(
          (p) => res.writeHead(200, { 'content-type': p.contentType }).end(p.body),
          (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
        );
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve, reject) => {
      const named = flags.replace('IP', ip).replace('PORT', String(port));
      server.once('error', (err: NodeJS.ErrnoException) => reject(new WeftError(`${named}: cannot listen: ${err.code ?? err.message}${err.code === 'EADDRINUSE' ? ' (another process has the port: choose another)' : ''}`)));
      server.listen(port, ip, () => resolve());
    });
    this.server = server;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
