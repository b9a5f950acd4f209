// The status socket's messages (status.proto) as plain TypeScript values, and
// the length-delimited framing both sides use. The agent (src/agent/status.ts)
// and `weft status` (src/cli/status.ts) go through this module only, so
// protobufjs's generated shapes never leak past it.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

export const PROTOCOL_VERSION = 1;
/** A status answer is a few KiB; anything near this is not one of ours. */
export const MAX_MESSAGE_BYTES = 1 << 20;

export interface LeaseStatus {
  subnet: string;
  subnetV6: string;
  reservation: boolean;
  /** ms since the epoch; 0 for a reservation. */
  expiresAtMs: number;
  leaseId: string;
  publicIP: string;
}

export interface AgentStatus {
  pid: number;
  hostname: string;
  startedAtMs: number;
  nowMs: number;
  phase: string;
  ready: boolean;
  /** null until the agent holds a lease. */
  lease: LeaseStatus | null;
  backend: { type: string; vni: number; port: number; vtepMAC: string; directRouting: boolean };
  dataplane: { requested: string; kind: string; reason: string; pinDir: string };
  etcd: { endpoints: string[]; prefix: string; connected: boolean; revision: number };
  peers: { inView: number; routed: number; skipped: number; inMaps: number | null; inMapsNote: string };
  iface: { name: string; index: number; address: string; mtu: number };
  errors: Array<{ atMs: number; message: string }>;
  network: string;
  mtu: number;
  subnetFile: string;
  version: string;
}

export type StatusReply = { status: AgentStatus; version: number } | { error: string; version: number };

// The .proto ships next to this module in dist/ (the Makefile copies it); a
// tree built by a bare `tsc` still finds it in src/.
const here = path.dirname(fileURLToPath(import.meta.url));
const PROTO_CANDIDATES = [path.join(here, 'status.proto'), path.resolve(here, '../../src/status/status.proto')];

let types: { Request: protobuf.Type; Response: protobuf.Type } | undefined;

function load(): NonNullable<typeof types> {
  if (types) return types;
  const file = PROTO_CANDIDATES.find((p) => fs.existsSync(p));
  if (!file) throw new Error(`status.proto not found (looked in ${PROTO_CANDIDATES.join(', ')}); run 'make build'`);
  const root = protobuf.loadSync(file);
  types = { Request: root.lookupType('weft.status.Request'), Response: root.lookupType('weft.status.Response') };
  return types;
}

/** Where the schema was loaded from (for tests and `weft status --debug`-style questions). */
export function protoPath(): string | undefined {
  return PROTO_CANDIDATES.find((p) => fs.existsSync(p));
}

const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, defaults: true, oneofs: true, arrays: true };

function encode(type: protobuf.Type, obj: Record<string, unknown>): Buffer {
  const err = type.verify(obj);
  if (err) throw new Error(`status protocol: cannot encode ${type.name}: ${err}`);
  return Buffer.from(type.encodeDelimited(type.fromObject(obj)).finish());
}

export function encodeStatusRequest(): Buffer {
  const { Request } = load();
  return encode(Request, { version: PROTOCOL_VERSION, status: {} });
}

/** What a request asks for; 'unknown' for a request from a newer client that this agent cannot answer. */
export function decodeRequest(body: Buffer): { version: number; what: 'status' | 'unknown' } {
  const { Request } = load();
  const o = Request.toObject(Request.decode(body), TO_OBJECT) as { version: number; what?: string };
  return { version: o.version, what: o.what === 'status' ? 'status' : 'unknown' };
}

export function encodeStatusReply(s: AgentStatus): Buffer {
  const { Response } = load();
  const lease = s.lease
    ? { subnet: s.lease.subnet, subnetV6: s.lease.subnetV6, reservation: s.lease.reservation, expiresAtMs: s.lease.expiresAtMs, leaseId: s.lease.leaseId, publicIp: s.lease.publicIP }
    : undefined;
  return encode(Response, {
    version: PROTOCOL_VERSION,
    status: {
      pid: s.pid,
      hostname: s.hostname,
      startedAtMs: s.startedAtMs,
      nowMs: s.nowMs,
      phase: s.phase,
      ready: s.ready,
      lease,
      backend: { type: s.backend.type, vni: s.backend.vni, port: s.backend.port, vtepMac: s.backend.vtepMAC, directRouting: s.backend.directRouting },
      dataplane: { ...s.dataplane },
      etcd: { ...s.etcd },
      peers: {
        inView: s.peers.inView,
        routed: s.peers.routed,
        skipped: s.peers.skipped,
        inMaps: s.peers.inMaps ?? 0,
        inMapsKnown: s.peers.inMaps !== null,
        inMapsNote: s.peers.inMapsNote,
      },
      interface: { ...s.iface },
      errors: s.errors.map((e) => ({ atMs: e.atMs, message: e.message })),
      network: s.network,
      mtu: s.mtu,
      subnetFile: s.subnetFile,
      version: s.version,
    },
  });
}

export function encodeErrorReply(message: string): Buffer {
  const { Response } = load();
  return encode(Response, { version: PROTOCOL_VERSION, error: message });
}

interface WireStatus {
  pid: number; hostname: string; startedAtMs: number; nowMs: number; phase: string; ready: boolean;
  lease?: { subnet: string; subnetV6: string; reservation: boolean; expiresAtMs: number; leaseId: string; publicIp: string } | null;
  backend?: { type: string; vni: number; port: number; vtepMac: string; directRouting: boolean } | null;
  dataplane?: AgentStatus['dataplane'] | null;
  etcd?: AgentStatus['etcd'] | null;
  peers?: { inView: number; routed: number; skipped: number; inMaps: number; inMapsKnown: boolean; inMapsNote: string } | null;
  interface?: AgentStatus['iface'] | null;
  errors: Array<{ atMs: number; message: string }>;
  network: string; mtu: number; subnetFile: string; version: string;
}

export function decodeReply(body: Buffer): StatusReply {
  const { Response } = load();
  const o = Response.toObject(Response.decode(body), TO_OBJECT) as { version: number; result?: string; status?: WireStatus; error?: string };
  if (o.result === 'error') return { version: o.version, error: o.error ?? '' };
  if (o.result !== 'status' || !o.status) return { version: o.version, error: 'the agent sent an answer this weft does not understand (a newer agent?)' };
  const w = o.status;
  const b = w.backend ?? { type: '', vni: 0, port: 0, vtepMac: '', directRouting: false };
  const p = w.peers ?? { inView: 0, routed: 0, skipped: 0, inMaps: 0, inMapsKnown: false, inMapsNote: '' };
  return {
    version: o.version,
    status: {
      pid: w.pid,
      hostname: w.hostname,
      startedAtMs: w.startedAtMs,
      nowMs: w.nowMs,
      phase: w.phase,
      ready: w.ready,
      lease: w.lease && w.lease.subnet
        ? { subnet: w.lease.subnet, subnetV6: w.lease.subnetV6, reservation: w.lease.reservation, expiresAtMs: w.lease.expiresAtMs, leaseId: w.lease.leaseId, publicIP: w.lease.publicIp }
        : null,
      backend: { type: b.type, vni: b.vni, port: b.port, vtepMAC: b.vtepMac, directRouting: b.directRouting },
      dataplane: w.dataplane ?? { requested: '', kind: '', reason: '', pinDir: '' },
      etcd: w.etcd ?? { endpoints: [], prefix: '', connected: false, revision: 0 },
      peers: { inView: p.inView, routed: p.routed, skipped: p.skipped, inMaps: p.inMapsKnown ? p.inMaps : null, inMapsNote: p.inMapsNote },
      iface: w.interface ?? { name: '', index: 0, address: '', mtu: 0 },
      errors: w.errors,
      network: w.network,
      mtu: w.mtu,
      subnetFile: w.subnetFile,
      version: w.version,
    },
  };
}

/**
 * Splits a byte stream into length-delimited messages: a varint byte count,
 * then that many bytes. Throws when a frame claims more than MAX_MESSAGE_BYTES.
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Buffer[] = [];
    for (;;) {
      let len = 0;
      let shift = 0;
      let i = 0;
      for (; i < this.buf.length && i < 5; i++) {
        len += (this.buf[i] & 0x7f) * 2 ** shift;
        shift += 7;
        if ((this.buf[i] & 0x80) === 0) break;
      }
      if (i === this.buf.length) return out; // the length itself is not complete yet
      if (i === 5 || len > MAX_MESSAGE_BYTES) throw new Error(`status protocol: a frame of ${len} bytes or more (limit ${MAX_MESSAGE_BYTES}): not a weft status message`);
      const start = i + 1;
      if (this.buf.length < start + len) return out;
      out.push(Buffer.from(this.buf.subarray(start, start + len)));
      this.buf = this.buf.subarray(start + len);
    }
  }

  get pending(): number {
    return this.buf.length;
  }
}
