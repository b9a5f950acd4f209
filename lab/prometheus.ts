// A real Prometheus (Debian's prometheus package) in a lab namespace,
// scraping weft agents every second, and its HTTP API asked from inside the
// namespace (the test process lives in the root namespace, which has no
// route to the lab's addresses).
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { stopProcess, waitFor } from './exec.js';
import type { LabHost, Netns } from './netns.js';

export interface PromSample {
  metric: Record<string, string>;
  value: number;
}

/** GET url from inside ns; the status and body. */
export async function httpGet(ns: Netns, url: string): Promise<{ status: number; body: string }> {
  const js = `fetch(${JSON.stringify(url)}).then(async (r) => process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })), (e) => { process.stderr.write(String(e.cause ?? e)); process.exit(1); })`;
  const r = await ns.exec([process.execPath, '-e', js], { allowFail: true, timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`GET ${url} in ${ns.name}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as { status: number; body: string };
}

export class LabPrometheus {
  private child: ChildProcess | undefined;
  private log = '';
  readonly url: string;

  private constructor(
    readonly host: LabHost,
    readonly dir: string,
  ) {
    this.url = `http://${host.address}:9090`;
  }

  /** Starts Prometheus in host, scraping targets (host:port) every second as job "weft"; resolves once it serves its API. */
  static async start(host: LabHost, targets: string[]): Promise<LabPrometheus> {
    const dir = path.join(host.dir, 'prometheus');
    fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
    const config = [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      'scrape_configs:',
      '  - job_name: weft',
      '    static_configs:',
      `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
      '',
    ].join('\n');
    fs.writeFileSync(path.join(dir, 'prometheus.yml'), config);
    const p = new LabPrometheus(host, dir);
    p.child = host.spawn(
      ['prometheus', `--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=${host.address}:9090`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    p.child.stdout!.setEncoding('utf8').on('data', (d: string) => (p.log += d));
    p.child.stderr!.setEncoding('utf8').on('data', (d: string) => (p.log += d));
    await waitFor('prometheus to serve its API', () => {
      if (p.child!.exitCode !== null) throw new Error(`prometheus exited ${p.child!.exitCode}: ${p.log.slice(-2000)}`);
      return p.log.includes('Server is ready to receive web requests');
    }, 30_000, 100);
    return p;
  }

  /** An instant query; every sample with its labels. */
  async query(expr: string): Promise<PromSample[]> {
    const r = await httpGet(this.host, `${this.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const j = JSON.parse(r.body) as { status: string; error?: string; data?: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
    if (j.status !== 'success') throw new Error(`query ${expr}: ${j.error ?? r.body}`);
    return j.data!.result.map((x) => ({ metric: x.metric, value: Number(x.value[1]) }));
  }

  /** The single value of expr, or null when it has no sample. */
  async value(expr: string): Promise<number | null> {
    const s = await this.query(expr);
    if (s.length > 1) throw new Error(`query ${expr}: ${s.length} samples, expected one`);
    return s[0]?.value ?? null;
  }

  get output(): string {
    return this.log;
  }

  async stop(): Promise<void> {
    if (this.child) await stopProcess(this.child, 5000);
    this.child = undefined;
  }
}
