// flannel's health endpoints: /healthz is 200 while the agent runs, /readyz
// is 200 once subnet.env is written and the dataplane is programmed. The body
// of /readyz is the agent's phase: what it waits for ("etcd unreachable: ...")
// or, once ready, whether etcd is reachable now.
import http from 'node:http';

export class HealthServer {
  private server: http.Server | undefined;
  ready = false;

  constructor(private readonly phase: () => string = () => (this.ready ? 'ready' : 'not ready')) {}

  async listen(ip: string, port: number): Promise<void> {
    const server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        const phase = this.phase();
        res.writeHead(this.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(`${this.ready ? '' : 'not ready: '}${phase}\n`);
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(`--healthz-ip ${ip} --healthz-port ${port}: cannot listen: ${err.code ?? err.message}`)),
      );
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
