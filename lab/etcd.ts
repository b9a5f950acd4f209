// A real etcd (Debian's etcd-server) for tests, the demo and the benchmark,
// with its own data dir, stopped by PID. Inside a lab it runs in the router
// namespace on 192.0.2.1:2379, where the agents in host namespaces reach it
// over the underlay; the test process (root namespace) reaches it through the
// unix socket etcd also listens on, forwarded to a loopback port.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import { inNetns, run, startProcess, stopProcess, waitFor, WaitAbort } from './exec.js';
import { SEGMENTS, type Netns } from './netns.js';

export interface LabEtcdTls {
  /** The CA that signed the server's certificate (and the clients', with clientCertAuth). */
  ca: string;
  serverCert: string;
  serverKey: string;
  /** --client-cert-auth: clients must show a certificate signed by ca. */
  clientCertAuth?: boolean;
  /** What etcdctl shows etcd (needed with clientCertAuth). */
  clientCert?: string;
  clientKey?: string;
}

export interface LabEtcdOptions {
  /** Run inside this namespace (the lab router) and listen on its underlay address. */
  netns?: Netns;
  /** Extra etcd flags, e.g. ['--enable-v2']. */
  extraArgs?: string[];
  /** One member of a cluster (lab/etcd-cluster.ts): its name, its address in `netns`, and every member as name=peerURL. */
  member?: { name: string; address: string; initialCluster: string };
  /** Serve clients over TLS (https:// endpoint); the test process's own unix socket stays plain. */
  tls?: LabEtcdTls;
}

export class LabEtcd {
  private child: ChildProcess | undefined;
  private forwarder: net.Server | undefined;
  private clients: Etcd3[] = [];
  private log = '';
  /** root's password once enableAuth() ran: etcdctl and client() then log in as root. */
  private rootPassword: string | undefined;
  /** Endpoint for agents (inside the lab) or for anything in the root namespace (no lab). */
  endpoint: string;
  /** Endpoint for the test process itself. */
  clientEndpoint = '';

  private constructor(
    readonly dir: string,
    public opts: LabEtcdOptions,
    private readonly port: number,
  ) {
    this.endpoint = this.clientURL();
  }

  private clientURL(): string {
    const scheme = this.opts.tls ? 'https' : 'http';
    const host = this.opts.netns ? (this.opts.member?.address ?? SEGMENTS[0].gateway) : '127.0.0.1';
    return this.opts.netns ? `${scheme}://${host}:2379` : `${scheme}://${host}:${this.port}`;
  }

  static async start(opts: LabEtcdOptions = {}): Promise<LabEtcd> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-etcd-'));
    const port = opts.netns ? 2379 : await freePort();
    const etcd = new LabEtcd(dir, opts, port);
    await etcd.startProcess();
    if (opts.netns) {
      etcd.forwarder = await forwardLoopbackTo(etcd.socketPath);
      etcd.clientEndpoint = `http://127.0.0.1:${(etcd.forwarder.address() as net.AddressInfo).port}`;
    } else {
      etcd.clientEndpoint = etcd.endpoint;
    }
    return etcd;
  }

  get socketPath(): string {
    return path.join(this.dir, `localhost:${this.port}`);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  private async startProcess(): Promise<void> {
    const member = this.opts.member;
    const host = this.opts.netns ? (member?.address ?? SEGMENTS[0].gateway) : '127.0.0.1';
    const peerPort = this.opts.netns ? 2380 : await freePort();
    // A lone etcd keeps its peer port on loopback; a cluster member talks to the others over the underlay.
    const peerURL = `http://${member ? host : '127.0.0.1'}:${peerPort}`;
    const tls = this.opts.tls;
    this.endpoint = this.clientURL();
    const args = [
      'etcd',
      '--name', member?.name ?? 'lab',
      '--data-dir', path.join(this.dir, 'data'),
      '--listen-client-urls', `${this.endpoint},unix://localhost:${this.port}`,
      '--advertise-client-urls', this.endpoint,
      ...(tls ? ['--cert-file', tls.serverCert, '--key-file', tls.serverKey] : []),
      // etcd requires client certificates whenever it has a --trusted-ca-file, --client-cert-auth or not.
      ...(tls?.clientCertAuth ? ['--client-cert-auth', '--trusted-ca-file', tls.ca] : []),
      '--listen-peer-urls', peerURL,
      '--initial-advertise-peer-urls', peerURL,
      '--initial-cluster', member?.initialCluster ?? `lab=${peerURL}`,
      ...(this.opts.extraArgs ?? []),
    ];
    fs.rmSync(this.socketPath, { force: true });
    const child = this.opts.netns ? this.opts.netns.spawn(args, { cwd: this.dir }) : startProcess(args, { cwd: this.dir });
    this.child = child;
    child.stdout!.on('data', (d: Buffer) => (this.log += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.log = (this.log + d.toString()).slice(-20_000)));
    await waitFor(
      'etcd to serve',
      async () => {
        if (child.exitCode !== null) throw new WaitAbort(`etcd exited ${child.exitCode}: ${this.log.slice(-2000)}`);
        const r = await this.etcdctl(['endpoint', 'health'], true);
        return r.includes('is healthy');
      },
      15_000,
      100,
    );
  }

  /** etcdctl against this etcd (v3 API unless api is '2'), run where etcd runs; returns stdout (and stderr when allowFail). */
  async etcdctl(args: string[], allowFail = false, api: '2' | '3' = '3'): Promise<string> {
    const tls = this.opts.tls;
    const cmd = [
      'etcdctl',
      '--endpoints', this.endpoint,
      ...(tls ? (api === '2' ? ['--ca-file', tls.ca] : ['--cacert', tls.ca]) : []),
      ...(tls?.clientCert && tls.clientKey ? (api === '2' ? ['--cert-file', tls.clientCert, '--key-file', tls.clientKey] : ['--cert', tls.clientCert, '--key', tls.clientKey]) : []),
      ...(this.rootPassword ? ['--user', `root:${this.rootPassword}`] : []),
      ...args,
    ];
    const r = await run(inNetns(this.opts.netns?.name ?? null, cmd), {
      env: { ...process.env, ETCDCTL_API: api },
      allowFail,
      timeoutMs: 10_000,
    });
    return r.stdout + (allowFail ? r.stderr : '');
  }

  /**
   * Turns etcd's authentication on, with a root user (who may do anything):
   * etcdctl and client() log in as root from then on.
   */
  async enableAuth(rootPassword: string): Promise<void> {
    await this.etcdctl(['user', 'add', `root:${rootPassword}`]);
    await this.etcdctl(['auth', 'enable']);
    this.rootPassword = rootPassword;
  }

  /** An etcd3 client for the test process; closed on destroy. */
  client(): Etcd3 {
    const c = new Etcd3({ hosts: this.clientEndpoint, ...(this.rootPassword ? { auth: { username: 'root', password: this.rootPassword } } : {}) });
    this.clients.push(c);
    return c;
  }

  /** Stops etcd (SIGTERM by PID); the data dir stays for restart(). */
  async stop(): Promise<void> {
    if (this.child) await stopProcess(this.child, 5000);
    this.child = undefined;
  }

  /** Starts etcd again if a test stopped it (so one failed test does not fail the rest). */
  async ensureRunning(): Promise<void> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) await this.startProcess();
  }

  /** Restarts etcd, with changed options if given (its data, users and roles stay). */
  async restart(changes: Partial<LabEtcdOptions> = {}): Promise<void> {
    await this.stop();
    this.opts = { ...this.opts, ...changes };
    await this.startProcess();
  }

  async destroy(): Promise<void> {
    for (const c of this.clients) c.close();
    this.clients = [];
    await this.stop();
    await new Promise<void>((resolve) => (this.forwarder ? this.forwarder.close(() => resolve()) : resolve()));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  get output(): string {
    return this.log;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A loopback TCP listener that forwards every connection to a unix socket. */
function forwardLoopbackTo(socketPath: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((conn) => {
      const up = net.connect(socketPath);
      conn.pipe(up).pipe(conn);
      const close = (): void => {
        conn.destroy();
        up.destroy();
      };
      conn.on('error', close);
      up.on('error', close);
      conn.on('close', close);
      up.on('close', close);
    });
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}
