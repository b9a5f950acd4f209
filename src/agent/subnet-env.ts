// /run/flannel/subnet.env in flannel's format and order, written atomically
// (temp file + rename, mode 0644) so docker or a CNI plugin never reads half a file.
import fs from 'node:fs';
import path from 'node:path';
import { IPNet } from '../core/ipnet.js';
import { errnoOf, usageError } from '../core/errors.js';
import { DEFAULT_SUBNET_FILE } from '../core/paths.js';

export interface SubnetEnv {
  network: IPNet;
  subnet: IPNet;
  ipv6Network?: IPNet;
  ipv6Subnet?: IPNet;
  mtu: number;
  ipMasq: boolean;
}

/** The subnet written as its first host address, e.g. 10.244.3.1/24. */
function firstHost(n: IPNet): string {
  return `${n.hostAt(1n)}/${n.prefixLen}`;
}

export function formatSubnetEnv(e: SubnetEnv): string {
  const lines = [`FLANNEL_NETWORK=${e.network}`, `FLANNEL_SUBNET=${firstHost(e.subnet)}`];
  if (e.ipv6Network && e.ipv6Subnet) {
    lines.push(`FLANNEL_IPV6_NETWORK=${e.ipv6Network}`, `FLANNEL_IPV6_SUBNET=${firstHost(e.ipv6Subnet)}`);
  }
  lines.push(`FLANNEL_MTU=${e.mtu}`, `FLANNEL_IPMASQ=${e.ipMasq}`);
  return lines.join('\n') + '\n';
}

/**
 * Whether subnet.env can be written where --subnet-file says, checked before
 * anything is leased: not a directory, and its directory (or the nearest one
 * that exists, which writeSubnetEnv would create it under) writable, on a
 * filesystem mounted read-write.
 */
export function checkSubnetFile(file: string): void {
  const flag = '--subnet-file';
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(file);
  } catch {
    // Not there yet: written on the first start.
  }
  if (st?.isDirectory()) throw usageError(`${flag} ${file} is a directory; name the file, e.g. ${path.join(file, 'subnet.env')}`, flag);
  let dir = path.dirname(path.resolve(file));
  while (!fs.existsSync(dir) && dir !== path.dirname(dir)) dir = path.dirname(dir);
  if (!fs.statSync(dir).isDirectory()) throw usageError(`${flag} ${file}: ${dir} is not a directory`, flag);
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (err) {
    const why = errnoOf(err) === 'EROFS' ? 'is on a read-only filesystem' : `is not writable (${errnoOf(err) ?? (err as Error).message})`;
    throw usageError(`${flag} ${file}: ${dir} ${why}; choose a writable place (docker and CNI read ${DEFAULT_SUBNET_FILE} by default)`, flag);
  }
}

export function writeSubnetEnv(file: string, e: SubnetEnv): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, formatSubnetEnv(e), { mode: 0o644 });
  fs.chmodSync(tmp, 0o644);
  fs.renameSync(tmp, file);
}

/** Reads KEY=VALUE lines; missing file -> null. */
export function readEnvFile(file: string): Record<string, string> | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    // No previous subnet.env (a first start) is the common case; an unreadable one is treated the same.
    return null;
  }
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) out[m[1]] = m[2].trim().replace(/^"(.*)"$/, '$1');
  }
  return out;
}

/** The subnets of a previous run's subnet.env, to be tried before a random pick. */
export function previousSubnets(file: string): { subnet?: IPNet; subnetV6?: IPNet } {
  const env = readEnvFile(file);
  if (!env) return {};
  const parse = (v?: string): IPNet | undefined => {
    const n = v ? IPNet.parse(v) : null;
    return n ? n.canonical() : undefined;
  };
  return { subnet: parse(env.FLANNEL_SUBNET), subnetV6: parse(env.FLANNEL_IPV6_SUBNET) };
}
