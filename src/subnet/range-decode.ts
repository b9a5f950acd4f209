// etcd's RangeResponse read straight from the wire, for the paged lease list.
// etcd3's own path decodes each page with protobufjs into message objects,
// turns every int64 into a Long and then a string (four per key), and copies
// each key and value into a Buffer of its own: at 65,536 leases that was
// about a third of listing them, most of it garbage for the collector. Only
// the fields a lease needs are read; the rest of the message is skipped by
// wire type, so fields etcd adds later cost nothing.
//
// A page keeps the message whole and finds each key in it by offsets, in
// typed arrays: no object per key until one is decoded (EtcdRegistry.decodeAt). A
// list held from its read to its use (the lease is chosen in between) is
// then a few buffers outside V8's heap, not 65,536 objects that every
// scavenge of the start copies.
//
// api/etcdserverpb/rpc.proto: RangeResponse { ResponseHeader header = 1;
// repeated mvccpb.KeyValue kvs = 2; bool more = 3; int64 count = 4; }
// ResponseHeader { ... int64 revision = 3; ... }
// api/mvccpb/kv.proto: KeyValue { bytes key = 1; int64 create_revision = 2;
// int64 mod_revision = 3; int64 version = 4; bytes value = 5; int64 lease = 6; }

export interface RawRangePage {
  revision: number;
  more: boolean;
  /** How many keys the page holds. */
  count: number;
  /** The message as it came: every key and value is a range of it. */
  buf: Buffer;
  /** Per key, FIELDS numbers: the key's start and end, the value's, and the lease ID varint's (-1 and -1: none). */
  at: Int32Array;
  /** Per key: create_revision, mod_revision. */
  revs: Float64Array;
}

/** Numbers per key in RawRangePage.at. */
const FIELDS = 6;
const KEY = 0;
const VALUE = 2;
const LEASE = 4;

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

  /**
   * A varint int64 in decimal, as a signed 64-bit value (lease IDs use all 64
   * bits, and most are past 2^53). Those past 2^53 go through BigInt: in a
   * fresh process (each ID is read once, by code not yet optimised), 65,536
   * of them took 37 to 47 ms that way, against 80 to 127 ms for long division
   * by hand in doubles, whose digit strings of numbers past 2^31 are dear.
   */
  int64String(): string {
    const start = this.pos;
    const v = this.varint();
    if (v < Number.MAX_SAFE_INTEGER) return String(v);
    // The low 64 bits of the varint, as two 32-bit halves.
    let lo = 0;
    let hi = 0;
    for (let i = start, shift = 0; i < this.pos && shift < 64; i++, shift += 7) {
      const b = this.buf[i] & 0x7f;
      if (shift < 32) {
        lo |= b << shift;
        if (shift + 7 > 32) hi |= b >>> (32 - shift);
      } else hi |= b << (shift - 32);
    }
    return BigInt.asIntN(64, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)).toString();
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

/** Key i's etcd lease ID in decimal, signed as etcd3 gives it; '0' for none. */
export function leaseIdAt(page: RawRangePage, i: number): string {
  const start = page.at[i * FIELDS + LEASE];
  return start < 0 ? '0' : new Reader(page.buf, start, page.at[i * FIELDS + LEASE + 1]).int64String();
}

/** The bytes of every key and value in the page, together (what the paged read sizes its next page by). */
export function pageBytes(page: RawRangePage): number {
  let bytes = 0;
  const a = page.at;
  for (let o = 0; o < page.count * FIELDS; o += FIELDS) bytes += a[o + KEY + 1] - a[o + KEY] + a[o + VALUE + 1] - a[o + VALUE];
  return bytes;
}

/** The bounds of key i's key bytes in page.buf. */
export function keyBounds(page: RawRangePage, i: number): [number, number] {
  return [page.at[i * FIELDS + KEY], page.at[i * FIELDS + KEY + 1]];
}

/** The bounds of key i's value bytes in page.buf. */
export function valueBounds(page: RawRangePage, i: number): [number, number] {
  return [page.at[i * FIELDS + VALUE], page.at[i * FIELDS + VALUE + 1]];
}

/** Reads one KeyValue message's offsets and revisions into slot i of the page. */
function keyValue(page: RawRangePage, i: number, start: number, end: number): void {
  const r = new Reader(page.buf, start, end);
  const o = i * FIELDS;
  const a = page.at;
  a[o + KEY] = a[o + KEY + 1] = start;
  a[o + VALUE] = a[o + VALUE + 1] = start;
  a[o + LEASE] = a[o + LEASE + 1] = -1;
  while (r.pos < end) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field === 1 && wire === WIRE_LEN) [a[o + KEY], a[o + KEY + 1]] = r.bytes();
    else if (field === 5 && wire === WIRE_LEN) [a[o + VALUE], a[o + VALUE + 1]] = r.bytes();
    else if (field === 2 && wire === WIRE_VARINT) page.revs[i * 2] = r.varint();
    else if (field === 3 && wire === WIRE_VARINT) page.revs[i * 2 + 1] = r.varint();
    else if (field === 6 && wire === WIRE_VARINT) {
      a[o + LEASE] = r.pos;
      r.varint();
      a[o + LEASE + 1] = r.pos;
    } else r.skip(wire);
  }
}

/** Decodes one RangeResponse message: two passes, the first to count the keys, so the offsets are allocated once. */
export function decodeRangeResponse(buf: Buffer): RawRangePage {
  let count = 0;
  const first = new Reader(buf, 0, buf.length);
  while (first.pos < buf.length) {
    const tag = first.varint();
    if (tag === (2 << 3) + WIRE_LEN) count++;
    first.skip(tag & 7);
  }
  const page: RawRangePage = { revision: 0, more: false, count, buf, at: new Int32Array(count * FIELDS), revs: new Float64Array(count * 2) };
  const r = new Reader(buf, 0, buf.length);
  let i = 0;
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
      keyValue(page, i++, s, e);
    } else if (field === 3 && wire === WIRE_VARINT) page.more = r.varint() !== 0;
    else r.skip(wire);
  }
  return page;
}
