// `weft status` when it runs: one request over the agent's unix socket.
import { WeftError, usageError } from '../core/errors.js';
import net from 'node:net';
import { FrameReader, decodeReply, encodeStatusRequest, type AgentStatus } from '../status/codec.js';
import { DEFAULT_UDP_PORT, DEFAULT_VXLAN_PORT } from '../config/network.js';
import { duration, keyValues, print, toJson } from './table.js';
import type { StatusArgs } from './status.js';

function noAgent(socket: string, why: string): WeftError {
  return new WeftError(
    `no weft agent is running (nothing listens on ${socket}${why}); start one with weft agent --etcd-endpoints URL ..., ` +
      `or, if it runs with another socket, name it with --status-socket`, 'unavailable');
}

/** One status request over the socket. Throws an 'unavailable' WeftError (exit 3) when no agent listens. */
export function queryStatus(socket: string, timeoutMs = 5000): Promise<AgentStatus> {
  return new Promise((resolve, reject) => {
    const c = net.connect(socket);
    const reader = new FrameReader();
    let settled = false;
    const finish = (err: Error | null, s?: AgentStatus): void => {
      if (settled) return;
      settled = true;
      c.destroy();
      if (err) reject(err);
      else resolve(s!);
    };
    c.setTimeout(timeoutMs, () => finish(new WeftError(`the agent on ${socket} did not answer within ${timeoutMs} ms; is it stuck? (its log says more)`)));
    c.once('connect', () => c.write(encodeStatusRequest()));
    c.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') finish(noAgent(socket, ''));
      else if (err.code === 'ECONNREFUSED') finish(noAgent(socket, '; the socket file was left by an agent that stopped'));
      else if (err.code === 'EACCES' || err.code === 'EPERM') finish(new WeftError(`connect(${socket}): ${err.code}: the status socket is root's (mode 0600); run weft status as root`));
      else if (err.code === 'ENOTSOCK' || err.code === 'ENOTDIR') finish(new WeftError(`connect(${socket}): ${err.code}: that is not a socket; check --status-socket`, 'usage'));
      else finish(new WeftError(`connect(${socket}): ${err.code ?? err.message}`));
    });
    c.on('data', (chunk: Buffer) => {
      try {
        const [frame] = reader.push(chunk);
        if (!frame) return;
        const reply = decodeReply(frame);
        if ('error' in reply) finish(new WeftError(`the agent on ${socket} answered with an error: ${reply.error}`));
        else finish(null, reply.status);
      } catch (err) {
        finish(new WeftError(`reading the answer on ${socket}: ${(err as Error).message}`));
      }
    });
    c.on('end', () => finish(new WeftError(`the agent on ${socket} closed the connection without an answer`)));
  });
}

function leaseLine(s: AgentStatus): string {
  const l = s.lease;
  if (!l) return 'none yet';
  const subnets = l.subnetV6 ? `${l.subnet} and ${l.subnetV6}` : l.subnet;
  if (l.reservation) return `${subnets}, a reservation (no TTL, never expires)`;
  return `${subnets}, expires in ${duration(l.expiresAtMs - s.nowMs)} (${new Date(l.expiresAtMs).toISOString()}), etcd lease ${l.leaseId}`;
}

function backendLine(s: AgentStatus): string {
  const b = s.backend;
  if (!b.type) return 'not known yet (no network config)';
  const parts = [b.type];
  if (b.type === 'vxlan') parts.push(`VNI ${b.vni}`, `port ${b.port || `${DEFAULT_VXLAN_PORT} (default)`}`, `VtepMAC ${b.vtepMAC || '-'}`);
  if (b.type === 'udp') parts.push(`port ${b.port || `${DEFAULT_UDP_PORT} (default)`}`);
  if (b.type === 'vxlan' || b.type === 'ipip') parts.push(`DirectRouting ${b.directRouting ? 'on' : 'off'}`);
  return parts.join(', ');
}

function peersLine(s: AgentStatus): string {
  const p = s.peers;
  const view = `${p.inView} in the agent's view (${p.routed} routed, ${p.skipped} skipped)`;
  const maps = p.inMaps === null ? `in the dataplane: unknown (${p.inMapsNote})` : `${p.inMaps} in the dataplane${p.inMaps !== p.routed ? ' (differs from the routed peers: the dataplane is catching up, or see errors)' : ''}`;
  return `${view}; ${maps}`;
}

export function formatStatus(s: AgentStatus, socket: string): string {
  const e = s.etcd;
  const pairs: Array<[string, string]> = [
    ['agent', `pid ${s.pid} on ${s.hostname}, weft ${s.version || '?'}, up ${duration(s.nowMs - s.startedAtMs)}, ${s.phase}`],
    ['socket', socket],
    ['lease', leaseLine(s)],
    ['public IP', `${s.lease?.publicIP || '-'} on ${s.iface.name} (index ${s.iface.index}, address ${s.iface.address}, MTU ${s.iface.mtu})`],
    ['network', s.network ? `${s.network}, pods' MTU ${s.mtu}, subnet.env at ${s.subnetFile}` : 'not known yet'],
    ['backend', backendLine(s)],
    ['dataplane', `${s.dataplane.kind} (asked for: ${s.dataplane.requested})${s.dataplane.reason ? `: ${s.dataplane.reason}` : ''}${s.dataplane.kind === 'ebpf' ? `; pins in ${s.dataplane.pinDir}` : ''}`],
    ['etcd', `${e.endpoints.join(', ')}, prefix ${e.prefix}, watch ${e.connected ? 'connected' : 'NOT connected'}, revision ${e.revision || '-'}`],
    ['peers', peersLine(s)],
    ['errors', s.errors.length ? s.errors.map((x) => `${new Date(x.atMs).toISOString()} ${x.message}`).join('\n') : 'none'],
  ];
  return keyValues(pairs);
}

export async function runStatus(a: StatusArgs): Promise<void> {
  if (!Number.isFinite(a.timeout) || a.timeout <= 0) throw usageError(`--timeout ${a.timeout}: give a number of milliseconds above 0`);
  const socket = a['status-socket'];
  const s = await queryStatus(socket, a.timeout);
  if (a.output === 'json') print(toJson({ socket, uptimeMs: s.nowMs - s.startedAtMs, ...s }));
  else print(formatStatus(s, socket));
}
