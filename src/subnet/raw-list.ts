// The lease list as etcd sent it, decoded only as far as each use needs.
// Choosing our subnet needs every key but only the values that could be
// ours; the watch's first view needs everything, once the lease is taken.
// At 65,536 leases, decoding every value before choosing put half a second
// of decoding and collecting between the list's revision and our create
// transaction, and in front of "lease acquired".
//
// The full decode still starts as soon as pages arrive, a slice at a time
// between the event loop's other work: the agent waits on etcd for about
// half of a paged read, and decoding fills that wait without holding up
// the next page, the choice or the create transaction.
import { keyBounds, valueBounds, type RawRangePage } from './range-decode.js';
import { parseSubnetKey, subnetKey4Numbers, type Lease } from './lease.js';
import { addSubnet4, subnets4, type Subnets4 } from './allocator.js';
import type { IPNet } from '../core/ipnet.js';
import type { LeaseList, MalformedLease } from './registry.js';

const BACKSLASH = 0x5c;

/** Keys decoded per turn of the event loop in the background: about 10 ms, so a page that arrives waits no longer. */
const SLICE_KEYS = 2000;

export class RawLeaseList {
  /** The store revision the list was read at; a watch resumes after it. */
  revision = '0';
  private readonly pages: RawRangePage[] = [];
  private readonly leases: Lease[] = [];
  private readonly malformed: MalformedLease[] = [];
  /** The next key to decode: its page, and its index in the page. */
  private page = 0;
  private index = 0;
  private scheduled = false;
  private abandoned = false;

  constructor(
    /** Bytes of the subnets prefix in front of every key. */
    private readonly prefixBytes: number,
    /** Decodes key i of a page (EtcdRegistry.decodeAt). */
    private readonly decodeOne: (page: RawRangePage, i: number) => Lease | MalformedLease,
  ) {}

  /** A page as it arrives (in key order); the background decode takes it up. */
  add(page: RawRangePage): void {
    this.pages.push(page);
    this.schedule();
  }

  /** Stops the background decode of a list nobody will use (a failed read, a lost race). */
  abandon(): void {
    this.abandoned = true;
  }

  private schedule(): void {
    if (this.scheduled || this.abandoned) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.abandoned) return;
      this.decodeUpTo(SLICE_KEYS);
      if (this.page < this.pages.length) this.schedule();
    });
  }

  /** Decodes up to `max` more keys of the pages held so far. */
  private decodeUpTo(max: number): void {
    let n = 0;
    while (this.page < this.pages.length && n < max) {
      const p = this.pages[this.page];
      const end = Math.min(p.count, this.index + max - n);
      for (let i = this.index; i < end; i++) {
        const d = this.decodeOne(p, i);
        if ('reason' in d) this.malformed.push(d);
        else this.leases.push(d);
      }
      n += end - this.index;
      this.index = end;
      if (this.index >= p.count) {
        this.page++;
        this.index = 0;
      }
    }
  }

  /** How many keys the list holds. */
  get size(): number {
    let n = 0;
    for (const p of this.pages) n += p.count;
    return n;
  }

  /**
   * The subnets the keys name, whatever their values hold: a key whose value
   * is not a lease still takes its subnet (as in the decoded list), and so
   * does its IPv6 half. IPv4 as numbers (allocator.ts).
   */
  subnets(): { v4: Subnets4; v6: IPNet[] } {
    const v4 = subnets4(this.size);
    const v6: IPNet[] = [];
    for (const p of this.pages) {
      for (let i = 0; i < p.count; i++) {
        const [s, e] = keyBounds(p, i);
        const name = p.buf.toString('latin1', s + this.prefixBytes, e);
        const plain = subnetKey4Numbers(name);
        if (plain) {
          addSubnet4(v4, plain[0], plain[1]);
          continue;
        }
        const key = parseSubnetKey(name);
        if (key?.subnet) addSubnet4(v4, Number(key.subnet.network), key.subnet.prefixLen);
        if (key?.subnetV6) v6.push(key.subnetV6);
      }
    }
    return { v4, v6 };
  }

  /**
   * In key order, the leases whose value may name `ip` as its PublicIP,
   * decoded: every value that holds the quoted address, and every value with
   * a JSON escape in it (which could spell the address otherwise). The caller
   * checks PublicIP on what comes back: a value that holds the address
   * elsewhere comes back too.
   */
  mayHavePublicIP(ip: string): Lease[] {
    const needle = Buffer.from(JSON.stringify(ip));
    const out: Lease[] = [];
    for (const p of this.pages) {
      const hits = new Set<number>();
      // One pass over the page for each pattern (a search per value would rescan the page's rest each time).
      for (let at = p.buf.indexOf(needle); at >= 0; at = p.buf.indexOf(needle, at + 1)) this.addHit(p, at, at + needle.length, hits);
      for (let at = p.buf.indexOf(BACKSLASH); at >= 0; at = p.buf.indexOf(BACKSLASH, at + 1)) this.addHit(p, at, at + 1, hits);
      for (const i of [...hits].sort((a, b) => a - b)) {
        const d = this.decodeOne(p, i);
        if (!('reason' in d)) out.push(d);
      }
    }
    return out;
  }

  /** Adds the key whose value holds bytes [from, to) of the page, if one does. */
  private addHit(p: RawRangePage, from: number, to: number, hits: Set<number>): void {
    // Values lie in the page in key order: the last value starting at or before `from`.
    let lo = 0;
    let hi = p.count - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (valueBounds(p, mid)[0] <= from) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found >= 0 && to <= valueBounds(p, found)[1]) hits.add(found);
  }

  /** Every key decoded, as EtcdRegistry.listLeases gives it: what the background has not done yet is done now. */
  decode(): LeaseList {
    this.decodeUpTo(Infinity);
    this.abandoned = true;
    return { leases: this.leases, malformed: this.malformed, revision: this.revision };
  }
}
