// CNI in the lab, done as a container runtime does it: plugins run with
// CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS=/run/netns/<pod>, CNI_IFNAME and
// CNI_PATH in their environment and their config on stdin, in the host's
// network namespace (the runtime's networking domain); a conflist is executed
// as libcni executes it (each plugin's config gets the list's name and
// cniVersion, the previous result, and runtimeConfig for the capabilities it
// declares; DEL in reverse order with the cached ADD result).
//
// weft's plugin is installed per lab host by `weft install-cni`, with the
// Debian plugins (/usr/lib/cni) behind it on CNI_PATH; flannel's dataDir and
// host-local's dataDir point into the host's scratch directory so that lab
// hosts never share state and nothing lands in /var/lib/cni.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { withNetns } from 'weft/native/addon.js';
import { CLI, subnetFile } from './agent.js';
import { run } from './exec.js';
import type { LabHost, Netns } from './netns.js';

/** Where Debian's containernetworking-plugins puts bridge, host-local, portmap, loopback ... */
export const SYSTEM_CNI_DIR = '/usr/lib/cni';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';

export interface Invocation {
  command: CniCommand;
  containerID?: string;
  /** The pod's namespace (CNI_NETNS=/run/netns/<name>), or a path. */
  netns?: Netns | string;
  ifname?: string;
  /** CNI_PATH directories. */
  path: string[];
  config: string | object;
  args?: string;
  timeoutMs?: number;
}

export interface Reply {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout as JSON, when it is. */
  json: Record<string, unknown> | null;
  /** Wall time from spawn to exit. */
  ms: number;
}

/** A CNI error printed on stdout, thrown by the CniNetwork methods. */
export class CniFailure extends Error {
  constructor(
    readonly plugin: string,
    readonly reply: Reply,
  ) {
    super(`${plugin}: exit ${reply.code}: ${reply.stdout.trim() || reply.stderr.trim()}`);
  }
}

/**
 * Runs one plugin binary as a runtime does, in `where`'s network namespace
 * (the child is forked there; no nsenter in between, so `ms` is the plugin's
 * own time).
 */
export function invokePlugin(where: Netns | null, binary: string, inv: Invocation): Promise<Reply> {
  const netns = typeof inv.netns === 'string' ? inv.netns : inv.netns ? `/run/netns/${inv.netns.name}` : '';
  const env: NodeJS.ProcessEnv = { ...process.env, CNI_COMMAND: inv.command, CNI_PATH: inv.path.join(':') };
  if (inv.containerID !== undefined) env.CNI_CONTAINERID = inv.containerID;
  if (netns) env.CNI_NETNS = netns;
  if (inv.command !== 'VERSION' && inv.command !== 'STATUS' && inv.command !== 'GC') env.CNI_IFNAME = inv.ifname ?? 'eth0';
  if (inv.args) env.CNI_ARGS = inv.args;
  const input = typeof inv.config === 'string' ? inv.config : JSON.stringify(inv.config);
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const start = () => spawn(binary, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const child = where ? withNetns(`/run/netns/${where.name}`, start) : start();
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), inv.timeoutMs ?? 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${binary}: ${err.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      let json: Record<string, unknown> | null = null;
      try {
        json = stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : null;
      } catch {
        /* not JSON: left to the caller */
      }
      resolve({ code, stdout, stderr, json, ms });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
}

interface PluginConf {
  type: string;
  capabilities?: Record<string, boolean>;
  [k: string]: unknown;
}

interface Conflist {
  name: string;
  cniVersion: string;
  plugins: PluginConf[];
}

export interface Attachment {
  containerID: string;
  netns: Netns;
  ifname: string;
  /** The chain's final ADD result (libcni caches it for DEL and CHECK). */
  result: Record<string, unknown>;
  /** The first IPv4 address of the result, without its prefix length. */
  ip: string;
  /** What the runtime passes to the plugins whose capabilities ask for it (libcni's runtimeConfig). */
  runtime: { portMappings?: PortMapping[]; bandwidth?: Bandwidth };
}

/** The bandwidth capability: rates in bit/s, bursts in bits. */
export interface Bandwidth {
  ingressRate: number;
  ingressBurst: number;
  egressRate: number;
  egressBurst: number;
}

/** One host's CNI setup: weft's plugin installed by `weft install-cni`, and the conflist it wrote. */
export class CniNetwork {
  private constructor(
    readonly host: LabHost,
    readonly binDir: string,
    readonly confFile: string,
    readonly dataDir: string,
    readonly ipamDir: string,
  ) {}

  /** `weft install-cni` into the host's scratch directory; the lab's own dataDirs written into the conflist it made. */
  static async install(host: LabHost, opts: { subnetFile?: string } = {}): Promise<CniNetwork> {
    const dir = path.join(host.dir, 'cni');
    const binDir = path.join(dir, 'bin');
    const confDir = path.join(dir, 'net.d');
    await run([process.execPath, CLI, 'install-cni', '--bin-dir', binDir, '--conf-dir', confDir, '--subnet-file', opts.subnetFile ?? subnetFile(host)]);
    const net = new CniNetwork(host, binDir, path.join(confDir, '10-flannel.conflist'), path.join(dir, 'flannel'), path.join(dir, 'networks'));
    const list = net.conflist();
    const flannel = list.plugins.find((p) => p.type === 'flannel')!;
    flannel.dataDir = net.dataDir;
    flannel.ipam = { dataDir: net.ipamDir };
    fs.writeFileSync(net.confFile, JSON.stringify(list, null, 2) + '\n');
    return net;
  }

  /** The same host's network with more plugins chained after the conflist's, in a conflist of its own. */
  chained(name: string, plugins: PluginConf[]): CniNetwork {
    const list = this.conflist();
    const file = path.join(path.dirname(this.confFile), `${name}.conflist`);
    fs.writeFileSync(file, JSON.stringify({ ...list, plugins: [...list.plugins, ...plugins] }, null, 2) + '\n');
    return new CniNetwork(this.host, this.binDir, file, this.dataDir, this.ipamDir);
  }

  conflist(): Conflist {
    return JSON.parse(fs.readFileSync(this.confFile, 'utf8')) as Conflist;
  }

  /** CNI_PATH: weft's plugin first, then Debian's. */
  get path(): string[] {
    return [this.binDir, SYSTEM_CNI_DIR];
  }

  /** The config one plugin of the list receives (libcni's buildOneConfig and injectRuntimeConfig). */
  pluginConfig(list: Conflist, p: PluginConf, prevResult: Record<string, unknown> | null, runtime: Attachment['runtime']): Record<string, unknown> {
    const conf: Record<string, unknown> = { ...p, cniVersion: list.cniVersion, name: list.name };
    if (prevResult) conf.prevResult = prevResult;
    const rc: Record<string, unknown> = {};
    for (const [cap, on] of Object.entries(p.capabilities ?? {})) {
      const v = runtime[cap as keyof Attachment['runtime']];
      if (on && v !== undefined) rc[cap] = v;
    }
    if (Object.keys(rc).length) conf.runtimeConfig = rc;
    return conf;
  }

  /** The binary for a plugin type: found in CNI_PATH as a runtime finds it. */
  binary(type: string): string {
    for (const dir of this.path) {
      const f = path.join(dir, type);
      if (fs.existsSync(f)) return f;
    }
    throw new Error(`no CNI plugin ${type} in ${this.path.join(':')}`);
  }

  /** Runs one plugin of the list (or a config of your own) for a container, in the host's namespace. */
  invoke(command: CniCommand, config: Record<string, unknown> | string, containerID: string, netns?: Netns | string, ifname = 'eth0', args?: string): Promise<Reply> {
    const type = typeof config === 'string' ? 'flannel' : String(config.type);
    return invokePlugin(this.host, this.binary(type), { command, containerID, netns, ifname, path: this.path, config, args });
  }

  /** ADD through the whole conflist; throws CniFailure with the failing plugin's reply. */
  async add(containerID: string, netns: Netns, runtime: Attachment['runtime'] = {}, opts: { ifname?: string; args?: string } = {}): Promise<Attachment> {
    const list = this.conflist();
    const ifname = opts.ifname ?? 'eth0';
    let prev: Record<string, unknown> | null = null;
    for (const p of list.plugins) {
      const r = await this.invoke('ADD', this.pluginConfig(list, p, prev, runtime), containerID, netns, ifname, opts.args);
      if (r.code !== 0 || !r.json) throw new CniFailure(p.type, r);
      prev = r.json;
    }
    const ips = (prev!.ips as Array<{ address: string }> | undefined) ?? [];
    const v4 = ips.find((x) => !x.address.includes(':'));
    return { containerID, netns, ifname, result: prev!, ip: v4 ? v4.address.split('/')[0] : '', runtime };
  }

  /** DEL through the conflist in reverse order, each plugin with the cached ADD result. */
  async del(a: Pick<Attachment, 'containerID' | 'netns' | 'ifname' | 'runtime'> & { result?: Record<string, unknown> | null }): Promise<void> {
    const list = this.conflist();
    for (const p of [...list.plugins].reverse()) {
      const r = await this.invoke('DEL', this.pluginConfig(list, p, a.result ?? null, a.runtime), a.containerID, a.netns, a.ifname);
      if (r.code !== 0) throw new CniFailure(p.type, r);
    }
  }

  /** CHECK through the conflist with the cached ADD result; resolves with the first failing reply, or null. */
  async check(a: Attachment): Promise<{ plugin: string; reply: Reply } | null> {
    const list = this.conflist();
    for (const p of list.plugins) {
      const r = await this.invoke('CHECK', this.pluginConfig(list, p, a.result, a.runtime), a.containerID, a.netns, a.ifname);
      if (r.code !== 0) return { plugin: p.type, reply: r };
    }
    return null;
  }

  /** The flannel entry of the conflist as the plugin receives it (for invoking it alone). */
  flannelConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
    const list = this.conflist();
    return { ...this.pluginConfig(list, list.plugins.find((p) => p.type === 'flannel')!, null, {}), ...extra };
  }
}
