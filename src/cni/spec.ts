// The CNI protocol as libcni's skel implements it for a plugin: the spec
// versions weft's plugin speaks, the error codes, the environment checks, and
// the conversion of a result between the 0.3.x/0.4.0 and 1.x formats.
// Node built-ins only: this module is on the pod start path.

/** Oldest first. 0.1.0/0.2.0 results (ip4/ip6 objects) are not spoken; 1.1.0 adds STATUS and GC. */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const CURRENT_VERSION = '1.1.0';

/** The spec's reserved error codes (Section 5, "Error"); 999 is libcni's internal error. */
export const CODE = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnvironment: 4,
  ioFailure: 5,
  decodingFailure: 6,
  invalidNetworkConfig: 7,
  tryAgainLater: 11,
  pluginNotAvailable: 50,
  limitedConnectivity: 51,
  internal: 999,
} as const;

/** An error result: printed as JSON on stdout, exit 1 (libcni's skel). */
export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
  ) {
    super(message);
  }

  json(cniVersion: string): string {
    return JSON.stringify({ cniVersion, code: this.code, msg: this.message, ...(this.details ? { details: this.details } : {}) }, null, 4);
  }
}

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';

export interface CmdArgs {
  command: Command;
  containerID: string;
  netns: string;
  ifname: string;
  args: string;
  path: string;
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Which variables each command requires (skel's table; CNI_COMMAND always). */
const REQUIRED: Record<string, Command[]> = {
  CNI_CONTAINERID: ['ADD', 'CHECK', 'DEL'],
  CNI_NETNS: ['ADD', 'CHECK'],
  CNI_IFNAME: ['ADD', 'CHECK', 'DEL'],
  CNI_PATH: ['ADD', 'CHECK', 'DEL', 'GC', 'STATUS'],
};

function validateIfname(name: string): void {
  if (name.length > 15) throw new CniError(CODE.invalidEnvironment, 'interface name is too long', 'interface name should be less than 16 characters');
  if (name === '.' || name === '..') throw new CniError(CODE.invalidEnvironment, 'interface name is . or ..');
  if (/[/:\s]/.test(name)) throw new CniError(CODE.invalidEnvironment, 'interface name contains / or : or whitespace characters');
}

/** The invocation's parameters, checked as skel checks them (code 4 naming the variables). */
export function cmdArgsFromEnv(env: NodeJS.ProcessEnv): CmdArgs {
  const command = env.CNI_COMMAND ?? '';
  const missing = command ? [] : ['CNI_COMMAND'];
  for (const [name, cmds] of Object.entries(REQUIRED)) if (!env[name] && cmds.includes(command as Command)) missing.push(name);
  if (missing.length) throw new CniError(CODE.invalidEnvironment, `required env variables [${missing.join(',')}] missing`);
  if (!['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION'].includes(command)) throw new CniError(CODE.invalidEnvironment, `unknown CNI_COMMAND: ${command}`);
  const cmd = command as Command;
  const containerID = env.CNI_CONTAINERID ?? '';
  if (containerID && REQUIRED.CNI_CONTAINERID.includes(cmd) && !NAME.test(containerID)) {
    throw new CniError(CODE.invalidEnvironment, 'invalid characters in containerID', containerID);
  }
  const ifname = env.CNI_IFNAME ?? '';
  if (ifname && REQUIRED.CNI_IFNAME.includes(cmd)) validateIfname(ifname);
  return { command: cmd, containerID, netns: env.CNI_NETNS ?? '', ifname, args: env.CNI_ARGS ?? '', path: env.CNI_PATH ?? '' };
}

/** "1.0.0" >= "0.4.0" and the like; both must be x.y.z. */
export function versionAtLeast(v: string, min: string): boolean {
  const a = v.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] > b[i];
  return true;
}

/** The config's cniVersion (an absent one is 0.1.0, as libcni reads it), refused with code 1 unless we speak it. */
export function checkVersion(cniVersion: string | undefined): string {
  const v = cniVersion || '0.1.0';
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(v)) {
    throw new CniError(CODE.incompatibleVersion, 'incompatible CNI versions', `config is "${v}", plugin supports [${SUPPORTED_VERSIONS.map((x) => `"${x}"`).join(' ')}]`);
  }
  return v;
}

/** What a command needs of the config's version beyond being supported (CHECK since 0.4.0, STATUS and GC since 1.1.0). */
export function checkCommandVersion(cmd: Command, v: string): void {
  const since = cmd === 'CHECK' ? '0.4.0' : cmd === 'STATUS' || cmd === 'GC' ? '1.1.0' : null;
  if (since && !versionAtLeast(v, since)) throw new CniError(CODE.incompatibleVersion, `config version does not allow ${cmd}`, `${cmd} needs cniVersion ${since} or later; this config says ${v}`);
}

export type Result = Record<string, unknown> & { cniVersion?: string; ips?: Array<Record<string, unknown>> };

/**
 * A result in another spec version: 0.3.0 to 0.4.0 carry `version` ("4" or
 * "6") on each IP, 1.x does not; the rest is the same format. A 0.1.0/0.2.0
 * result (ip4/ip6 objects) is refused: no delegate is asked for one.
 */
export function convertResult(r: Result, to: string): Result {
  const from = r.cniVersion ?? to;
  if (!versionAtLeast(from, '0.3.0')) throw new CniError(CODE.incompatibleVersion, `cannot convert a ${from} result to ${to}`);
  const ips = (r.ips ?? []).map((ip) => {
    const { version: _v, ...rest } = ip;
    if (versionAtLeast(to, '1.0.0')) return rest;
    return { version: String(ip.address ?? '').includes(':') ? '6' : '4', ...rest };
  });
  return { ...r, cniVersion: to, ...(r.ips ? { ips } : {}) };
}
