// The lease list as etcd sent it, decoded only as far as each use needs.
// Choosing our subnet needs every key but only the values that could be
// ours; the watch's first view needs everything, once the lease is taken.
//
// Nothing is decoded while the list is read. Decoding 65,536 values is half
// a second of the main thread and of the collector, and run between pages
// (as it was until 2026-12-02) it held up reading them and competed with
// etcd for the cores: "interface to lease" was 1.0 to 1.1 s, 0.7 s without
// it. The watcher decodes the list a slice at a time as it applies it
// (LeaseWatcher.apply, take()), after the lease, while the kernel verifies
// the dataplane's programs on another thread.
import { keyBounds, valueBounds, type RawRangePage } from './range-decode.js';
import { parseSubnetKey, subnetKey4PackedIn, type Lease } from './lease.js';
import { addSubnet4, subnets4, type Subnets4 } from './allocator.js';
import type { IPNet } from '../core/ipnet.js';
import type { LeaseList, MalformedLease } from './registry.js';

const BACKSLASH = 0x5c;

export class RawLeaseList {
  /** The store revision the list was read at; a watch resumes after it. */
  revision = '0';
  private readonly pages: RawRangePage[] = [];
  /** The next key to decode: its page, and its index in the page. */
  private page = 0;
  private index = 0;

  constructor(
    /** Bytes of the subnets prefix in front of every key. */
    private readonly prefixBytes: number,
    /** Decodes key i of a page (EtcdRegistry.decodeAt). */
    private readonly decodeOne: (page: RawRangePage, i: number) => Lease | MalformedLease,
  ) {}

  /** A page as it arrives, in key order. */
  add(page: RawRangePage): void {
    this.pages.push(page);
  }

  /** The next `max` keys decoded (fewer at the end, none once all are), in key order. */
  take(max: number): Array<Lease | MalformedLease> {
    const out: Array<Lease | MalformedLease> = [];
    while (this.page < this.pages.length && out.length < max) {
      const p = this.pages[this.page];
      const end = Math.min(p.count, this.index + max - out.length);
      for (let i = this.index; i < end; i++) out.push(this.decodeOne(p, i));
      this.index = end;
      if (this.index >= p.count) {
        this.page++;
        this.index = 0;
      }
    }
    return out;
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
        const plain = subnetKey4PackedIn(p.buf, s + this.prefixBytes, e);
        if (plain >= 0) {
          addSubnet4(v4, Math.floor(plain / 64), plain % 64);
          continue;
        }
        const key = parseSubnetKey(p.buf.toString('latin1', s + this.prefixBytes, e));
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

  /** Every key not yet taken, decoded, as EtcdRegistry.listLeases gives it. */
  decode(): LeaseList {
    const leases: Lease[] = [];
    const malformed: MalformedLease[] = [];
    for (const d of this.take(Infinity)) {
      if ('reason' in d) malformed.push(d);
      else leases.push(d);
    }
    return { leases, malformed, revision: this.revision };
  }
}
