// weft's CNI plugin, type "flannel" (or "weft"): ADD builds the delegate from
// subnet.env as flannel's plugin does, saves it under dataDir/<containerID>
// and runs it; DEL runs the saved delegate config and forgets it; CHECK asks
// the saved delegate; STATUS and GC (spec 1.1.0) answer for the agent and
// forward to the delegate. Where flannel's plugin falls short of the spec,
// this one does what the spec asks: a failed ADD is undone (delegate DEL,
// saved config removed), CHECK is not a no-op.
import fs from 'node:fs';
import path from 'node:path';
import { execDelegate, findInPath } from './delegate.js';
import { buildDelegate, goJSON, loadSubnetEnv, parseNetConf, type NetConf } from './flannel.js';
import { checkCommandVersion, checkVersion, CniError, CODE, convertResult, CURRENT_VERSION, SUPPORTED_VERSIONS, type CmdArgs, type Result } from './spec.js';

export interface Outcome {
  stdout: string;
}

const nothing: Outcome = { stdout: '' };

/** dataDir/<containerID>: written whole or not at all (temp + rename), flushed, 0600 in a 0700 directory, as flannel keeps it. */
function saveScratch(dataDir: string, containerID: string, bytes: string): void {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, containerID);
  const tmp = path.join(dataDir, `.${containerID}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, bytes);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

function readScratch(dataDir: string, containerID: string): string | null {
  try {
    return fs.readFileSync(path.join(dataDir, containerID), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new CniError(CODE.ioFailure, `cannot read ${path.join(dataDir, containerID)}: ${(err as Error).message}`);
  }
}

function removeScratch(dataDir: string, containerID: string): void {
  fs.rmSync(path.join(dataDir, containerID), { force: true });
}

/** The delegate's ADD result in the config's version: passed through when it already is, converted otherwise (libcni's result.Print of a delegate result). */
function resultFor(out: { stdout: string; result: Result | null }, version: string): string {
  if (!out.result) throw new CniError(CODE.decodingFailure, 'the delegate printed no result');
  if ((out.result.cniVersion ?? version) === version) return out.stdout;
  return JSON.stringify(convertResult(out.result, version), null, 4);
}

/** A delegate too old for 1.1.0 answers code 1: it gets 1.0.0, whose formats are the same. */
function olderFor(version: string, err: unknown): string | null {
  return version === '1.1.0' && err instanceof CniError && err.code === CODE.incompatibleVersion ? '1.0.0' : null;
}

async function add(a: CmdArgs, n: NetConf, env: NodeJS.ProcessEnv): Promise<Outcome> {
  const fenv = loadSubnetEnv(n.subnetFile);
  const delegate = buildDelegate(n, fenv);
  const type = delegate.type as string;
  // Found before anything is saved or created: a missing delegate leaves nothing behind.
  findInPath(type, a.path);
  // A second ADD for an attached container (which the spec forbids) must fail without undoing the first.
  const earlier = readScratch(n.dataDir, a.containerID);
  for (;;) {
    const bytes = goJSON(delegate);
    saveScratch(n.dataDir, a.containerID, bytes);
    try {
      const out = execDelegate(type, 'ADD', bytes, env);
      // Imported only when asked for: it loads the addon, which the plugin's start otherwise does without.
      if (n.bigTCP && out.result) (await import('./bigtcp.js')).followUnderlay(out.result, a.netns, a.ifname);
      return { stdout: resultFor(out, n.cniVersion) };
    } catch (err) {
      if (earlier !== null) {
        saveScratch(n.dataDir, a.containerID, earlier);
        throw err;
      }
      const older = olderFor(String(delegate.cniVersion), err);
      // The spec: a delegate that failed ADD gets a DEL before we report the failure.
      try {
        execDelegate(type, 'DEL', bytes, env);
      } catch {
        /* best effort: the ADD's error is the one to report */
      }
      removeScratch(n.dataDir, a.containerID);
      if (!older) throw err;
      delegate.cniVersion = older;
    }
  }
}

/** flannel's doCmdDel: the saved config's delegate DEL; no saved config means nothing to undo. */
function del(a: CmdArgs, n: NetConf, env: NodeJS.ProcessEnv): Outcome {
  const bytes = readScratch(n.dataDir, a.containerID);
  if (bytes === null) return nothing;
  let type: unknown;
  try {
    type = (JSON.parse(bytes) as { type?: unknown }).type;
  } catch (err) {
    // As flannel: the interface stays on the bridge until the host reboots; DEL must not fail for it.
    process.stderr.write(`failed to parse ${path.join(n.dataDir, a.containerID)}: ${(err as Error).message}\n`);
    return nothing;
  }
  execDelegate(String(type), 'DEL', bytes, env);
  removeScratch(n.dataDir, a.containerID);
  return nothing;
}

function check(a: CmdArgs, n: NetConf, env: NodeJS.ProcessEnv): Outcome {
  const bytes = readScratch(n.dataDir, a.containerID);
  if (bytes === null) throw new CniError(CODE.unknownContainer, `container ${a.containerID} is not attached to network ${n.name}`, `no saved delegate config at ${path.join(n.dataDir, a.containerID)}`);
  // An agent that is not running, or that leased another subnet since, means the pod is unreachable.
  const fenv = loadSubnetEnv(n.subnetFile);
  const conf = JSON.parse(bytes) as Record<string, unknown> & { type?: string; cniVersion?: string; ipam?: { ranges?: Array<Array<{ subnet?: string }>> } };
  const subnets = (conf.ipam?.ranges ?? []).flat().map((r) => r.subnet);
  for (const s of [fenv.subnet, fenv.ipv6Subnet]) {
    if (s && !subnets.includes(s)) throw new CniError(CODE.invalidNetworkConfig, `this host's subnet is now ${s}, but container ${a.containerID} got its address from ${subnets.join(', ')}`, 'the agent leased another subnet since; the pod must be recreated');
  }
  const version = conf.cniVersion ?? n.cniVersion;
  if (n.prevResult) conf.prevResult = withGateways(convertResult(n.prevResult, version));
  execDelegate(String(conf.type), 'CHECK', goJSON(conf), env);
  return nothing;
}

/**
 * The result's routes with their next hop filled in where the delegate left
 * it out (host-local's routes to the Network carry none): the spec lets the
 * IP's gateway stand for a missing gw, the bridge installs them that way,
 * and its CHECK (plugins 1.1.1) looks for a route without a gateway, which it
 * never finds.
 */
function withGateways(r: Result): Result {
  const routes = r.routes as Array<Record<string, unknown>> | undefined;
  if (!routes) return r;
  const gateway = (v6: boolean): unknown => (r.ips ?? []).find((ip) => String(ip.address).includes(':') === v6 && ip.gateway)?.gateway;
  return { ...r, routes: routes.map((rt) => (rt.gw ? rt : { ...rt, ...(gateway(String(rt.dst).includes(':')) ? { gw: gateway(String(rt.dst).includes(':')) } : {}) })) };
}

/** Whether a delegate speaks `version`, by its own VERSION answer (STATUS and GC exist only from 1.1.0 on; older plugins reject them with whatever code comes first). */
function delegateSpeaks(type: string, version: string, env: NodeJS.ProcessEnv): boolean {
  const out = execDelegate(type, 'VERSION', JSON.stringify({ cniVersion: version }), env);
  const supported = (out.result as { supportedVersions?: unknown } | null)?.supportedVersions;
  return Array.isArray(supported) && supported.includes(version);
}

/** Readiness: the agent's subnet.env and the delegate in CNI_PATH, and the delegate's own STATUS (one older than 1.1.0 cannot be asked, and is taken as ready). */
function status(a: CmdArgs, n: NetConf, env: NodeJS.ProcessEnv): Outcome {
  let delegate;
  try {
    delegate = buildDelegate(n, loadSubnetEnv(n.subnetFile));
    findInPath(delegate.type as string, a.path);
  } catch (err) {
    if (err instanceof CniError) throw new CniError(CODE.pluginNotAvailable, err.message, err.details);
    throw err;
  }
  if (delegateSpeaks(delegate.type as string, n.cniVersion, env)) execDelegate(delegate.type as string, 'STATUS', goJSON(delegate), env);
  return nothing;
}

/** The attachments still valid, by container ID (dataDir is keyed by container ID only, as flannel's). */
function validContainers(n: NetConf): Set<string> {
  const list = n.raw['cni.dev/valid-attachments'];
  if (list === undefined || list === null) return new Set();
  if (!Array.isArray(list)) throw new CniError(CODE.decodingFailure, `failed to load netconf: cni.dev/valid-attachments: expected an array`);
  return new Set(list.map((x: unknown, i) => {
    const id = (x as { containerID?: unknown } | null)?.containerID;
    if (typeof id !== 'string') throw new CniError(CODE.decodingFailure, `failed to load netconf: cni.dev/valid-attachments[${i}].containerID: expected a string`);
    return id;
  }));
}

/**
 * GC: every saved delegate config whose container is not among the valid
 * attachments gets its delegate DEL (host-local releases the address) and is
 * forgotten; then the delegate gets the GC itself (a delegate older than
 * 1.1.0 cannot, and is skipped). Errors are collected, not stopped at.
 */
function gc(_a: CmdArgs, n: NetConf, env: NodeJS.ProcessEnv): Outcome {
  const valid = validContainers(n);
  const errors: string[] = [];
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(n.dataDir).filter((f) => !f.startsWith('.'));
  } catch {
    /* no dataDir: nothing was ever added */
  }
  for (const id of entries) {
    if (valid.has(id)) continue;
    const bytes = readScratch(n.dataDir, id);
    if (bytes === null) continue;
    try {
      const type = String((JSON.parse(bytes) as { type?: unknown }).type);
      // The runtime's interface name is not saved (flannel's format); runtimes that GC name it eth0.
      execDelegate(type, 'DEL', bytes, env, { CNI_CONTAINERID: id, CNI_IFNAME: 'eth0', CNI_NETNS: '' });
      removeScratch(n.dataDir, id);
    } catch (err) {
      errors.push(`${id}: ${(err as Error).message}`);
    }
  }
  try {
    const delegate = buildDelegate(n, loadSubnetEnv(n.subnetFile));
    delegate['cni.dev/valid-attachments'] = n.raw['cni.dev/valid-attachments'] ?? [];
    if (delegateSpeaks(delegate.type as string, n.cniVersion, env)) execDelegate(delegate.type as string, 'GC', goJSON(delegate), env);
  } catch (err) {
    errors.push(`delegate GC: ${(err as Error).message}`);
  }
  if (errors.length) throw new CniError(CODE.internal, `GC left ${errors.length} attachment(s) behind`, errors.join('; '));
  return nothing;
}

const COMMANDS = { ADD: add, DEL: del, CHECK: check, STATUS: status, GC: gc } as const;

/** One invocation: the parsed parameters and stdin in, what to print out. */
export function runCommand(a: CmdArgs, stdin: string, env: NodeJS.ProcessEnv): Outcome | Promise<Outcome> {
  if (a.command === 'VERSION') {
    let asked: unknown;
    try {
      asked = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    } catch {
      /* VERSION's input is optional */
    }
    const cniVersion = typeof asked === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(asked) ? asked : CURRENT_VERSION;
    return { stdout: JSON.stringify({ cniVersion, supportedVersions: SUPPORTED_VERSIONS }) };
  }
  const n = parseNetConf(stdin);
  const version = checkVersion(n.cniVersion);
  checkCommandVersion(a.command, version);
  return COMMANDS[a.command](a, n, env);
}
