// etcd's RangeResponse read straight from the wire, for the paged lease list.
// etcd3's own path decodes each page with protobufjs into message objects,
// turns every int64 into a Long and then a string (four per key), and copies
// each key and value into a Buffer of its own: at 65,536 leases that was
// about a third of listing them, most of it garbage for the collector. Only
// the fields a lease needs are read; the rest of the message is skipped by
// wire type, so fields etcd adds later cost nothing.
//
// api/etcdserverpb/rpc.proto: RangeResponse { ResponseHeader header = 1;
// repeated mvccpb.KeyValue kvs = 2; bool more = 3; int64 count = 4; }
// ResponseHeader { ... int64 revision = 3; ... }
// api/mvccpb/kv.proto: KeyValue { bytes key = 1; int64 create_revision = 2;
// int64 mod_revision = 3; int64 version = 4; bytes value = 5; int64 lease = 6; }

/** One key of a range page. key and value are views of the page's buffer: copy what outlives the page. */
export interface RawKeyValue {
  key: Buffer;
  value: Buffer;
  /** Revisions fit a double exactly (etcd would need 2^53 writes to pass it). */
  create_revision: number;
  mod_revision: number;
  /** The etcd lease's ID in decimal, signed as etcd3 gives it; '0' for none. */
  lease: string;
}

export interface RawRangePage {
  revision: number;
  kvs: RawKeyValue[];
  more: boolean;
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

class Reader {
  pos: number;

  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  /** A varint as a double: exact below 2^53, which every revision is. */
  varint(): number {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (this.pos >= this.end) throw new Error('etcd range response: truncated varint');
      const b = this.buf[this.pos++];
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 128;
      if (scale > 2 ** 63) throw new Error('etcd range response: varint too long');
    }
  }

  /** A varint int64 in decimal, as a signed 64-bit value (lease IDs use all 64 bits). */
  int64String(): string {
    const start = this.pos;
    const v = this.varint();
    if (v < Number.MAX_SAFE_INTEGER) return String(v);
    let big = 0n;
    for (let i = this.pos - 1; i >= start; i--) big = (big << 7n) | BigInt(this.buf[i] & 0x7f);
    return BigInt.asIntN(64, big).toString();
  }

  /** The bounds of a length-delimited field's payload, moving past it. */
  bytes(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    this.pos += len;
    if (this.pos > this.end) throw new Error('etcd range response: truncated field');
    return [start, this.pos];
  }

  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_I64) this.pos += 8;
    else if (wire === WIRE_LEN) this.bytes();
    else if (wire === WIRE_I32) this.pos += 4;
    else throw new Error(`etcd range response: wire type ${wire} not understood`);
    if (this.pos > this.end) throw new Error('etcd range response: truncated field');
  }
}

const EMPTY = Buffer.alloc(0);

function keyValue(buf: Buffer, start: number, end: number, lastLease: { raw: Buffer; text: string }): RawKeyValue {
  const r = new Reader(buf, start, end);
  const kv: RawKeyValue = { key: EMPTY, value: EMPTY, create_revision: 0, mod_revision: 0, lease: '0' };
  while (r.pos < end) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field === 1 && wire === WIRE_LEN) {
      const [s, e] = r.bytes();
      kv.key = buf.subarray(s, e);
    } else if (field === 5 && wire === WIRE_LEN) {
      const [s, e] = r.bytes();
      kv.value = buf.subarray(s, e);
    } else if (field === 2 && wire === WIRE_VARINT) kv.create_revision = r.varint();
    else if (field === 3 && wire === WIRE_VARINT) kv.mod_revision = r.varint();
    else if (field === 6 && wire === WIRE_VARINT) {
      // One host's keys share its lease; flanneld writes one lease per key, but a page of a reservation-heavy or
      // test keyspace repeats one: its decimal is made once.
      const s = r.pos;
      const raw = buf.subarray(s, s + 10);
      r.varint();
      const len = r.pos - s;
      if (lastLease.raw.length === len && lastLease.raw.equals(raw.subarray(0, len))) kv.lease = lastLease.text;
      else {
        r.pos = s;
        kv.lease = r.int64String();
        lastLease.raw = Buffer.from(raw.subarray(0, len));
        lastLease.text = kv.lease;
      }
    } else r.skip(wire);
  }
  return kv;
}

/** Decodes one RangeResponse message. */
export function decodeRangeResponse(buf: Buffer): RawRangePage {
  const r = new Reader(buf, 0, buf.length);
  const page: RawRangePage = { revision: 0, kvs: [], more: false };
  const lastLease = { raw: EMPTY, text: '0' };
  while (r.pos < buf.length) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field === 1 && wire === WIRE_LEN) {
      const [s, e] = r.bytes();
      const h = new Reader(buf, s, e);
      while (h.pos < e) {
        const t = h.varint();
        if (Math.floor(t / 8) === 3 && (t & 7) === WIRE_VARINT) page.revision = h.varint();
        else h.skip(t & 7);
      }
    } else if (field === 2 && wire === WIRE_LEN) {
      const [s, e] = r.bytes();
      page.kvs.push(keyValue(buf, s, e, lastLease));
    } else if (field === 3 && wire === WIRE_VARINT) page.more = r.varint() !== 0;
    else r.skip(wire);
  }
  return page;
}
