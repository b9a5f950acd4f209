// The pinned maps under --bpf-pin-dir, opened read-only in spirit (the
// commands never write) and checked against the codecs' schema, so that a
// map pinned by another weft version is refused rather than misread.
import { WeftError } from '../../core/errors.js';
import fs from 'node:fs';
import path from 'node:path';
import { BpfMap, isErrnoError } from '../../native/bpf.js';
import { readCounters, readDrops, type CounterRow, type DropRow } from '../../dataplane/ebpf/counters.js';
import {
  CONFIG_KEY,
  MAP_CONFIG,
  MAP_DROPS,
  MAP_PEERS,
  MAP_SCHEMA,
  MAP_STATS,
  PINNED_MAPS,
  decodeConfig,
  decodeLpmKey,
  decodePeer,
  hostOrderCheck,
  type DecodedConfig,
} from '../../dataplane/ebpf/maps.js';
import type { PeerRoute } from '../../core/model.js';

export type MapName = keyof typeof MAP_SCHEMA;
export const MAP_NAMES: MapName[] = [...PINNED_MAPS];

export interface PeerEntry {
  subnet: string;
  route: PeerRoute;
  local: boolean;
}

/** An entry the codec cannot read (e.g. an encap this weft does not know). */
export interface BadPeerEntry {
  subnet: string;
  error: string;
  value: string;
}

export type { CounterRow, DropRow };

/** Directories under bpffs that hold a pinned weft_peers, for the "did you mean" hint. */
function findPinDirs(root = '/sys/fs/bpf', depth = 3): string[] {
  const found: string[] = [];
  const walk = (dir: string, d: number): void => {
    if (found.length >= 100 || d < 0) return;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      // Only a hint's search: a directory we cannot read holds no pins we could suggest.
      return;
    }
    if (entries.some((e) => e.name === MAP_PEERS && !e.isDirectory())) found.push(dir);
    for (const e of entries) if (e.isDirectory()) walk(path.join(dir, e.name), d - 1);
  };
  walk(root, depth);
  return found;
}

export function noPinsError(dir: string): WeftError {
  const want = path.resolve(dir);
  const shared = (d: string): number => {
    let i = 0;
    while (i < d.length && d[i] === want[i]) i++;
    return i;
  };
  // The closest few by path: a typo'd or neighbouring directory first.
  const elsewhere = findPinDirs()
    .filter((d) => path.resolve(d) !== want)
    .sort((a, b) => shared(b) - shared(a))
    .slice(0, 3);
  const hint = elsewhere.length ? elsewhere.map((d) => `--bpf-pin-dir ${d}`).join(' or ') : '--bpf-pin-dir DIR (the agent\'s own)';
  return new WeftError(`no pinned weft maps in ${dir}: is the agent running with the eBPF dataplane, or did you mean ${hint}?`, 'unavailable');
}

export class PinnedMaps {
  private readonly open = new Map<MapName, BpfMap>();

  private constructor(readonly dir: string) {}

  /** Opens and checks the named maps; a WeftError with what to do when they are not there. */
  static open(dir: string, names: MapName[] = MAP_NAMES): PinnedMaps {
    hostOrderCheck();
    const present = MAP_NAMES.filter((n) => fs.existsSync(path.join(dir, n)));
    if (present.length === 0) throw noPinsError(dir);
    const missing = names.filter((n) => !present.includes(n));
    if (missing.length) {
      throw new WeftError(
        `${dir} holds ${present.join(', ')} but not ${missing.join(', ')}: a partial or older install; restart the agent (it re-creates them) or remove the pins with weft uninstall`, 'unavailable');
    }
    const pm = new PinnedMaps(dir);
    try {
      for (const n of names) pm.open.set(n, openChecked(path.join(dir, n), n));
    } catch (err) {
      pm.close();
      throw err;
    }
    return pm;
  }

  map(name: MapName): BpfMap {
    const m = this.open.get(name);
    if (!m) throw new Error(`internal: ${name} was not opened`);
    return m;
  }

  /** null while the agent has not written it (the array slot exists from the start, zero-filled). */
  config(): DecodedConfig | null {
    const v = this.map(MAP_CONFIG).lookup(CONFIG_KEY);
    if (!v || v.every((b) => b === 0)) return null;
    return decodeConfig(v);
  }

  peers(): { entries: PeerEntry[]; bad: BadPeerEntry[] } {
    const entries: PeerEntry[] = [];
    const bad: BadPeerEntry[] = [];
    for (const [k, v] of this.map(MAP_PEERS).entries()) {
      try {
        const d = decodePeer(k, v);
        entries.push({ subnet: d.route.subnet.toString(), route: d.route, local: d.local });
      } catch (err) {
        bad.push({ subnet: safeKey(k), error: (err as Error).message, value: v.toString('hex') });
      }
    }
    const order = (e: PeerEntry): bigint => e.route.subnet.network * 64n + BigInt(e.route.subnet.prefixLen);
    entries.sort((x, y) => (order(x) < order(y) ? -1 : order(x) > order(y) ? 1 : 0));
    return { entries, bad };
  }

  counters(): CounterRow[] {
    return readCounters(this.map(MAP_STATS));
  }

  drops(): DropRow[] {
    return readDrops(this.map(MAP_DROPS));
  }

  close(): void {
    for (const m of this.open.values()) m.close();
    this.open.clear();
  }
}

function safeKey(k: Buffer): string {
  try {
    return decodeLpmKey(k).toString();
  } catch {
    // A key this weft cannot decode is still shown, as its bytes.
    return k.toString('hex');
  }
}

function openChecked(file: string, name: MapName): BpfMap {
  let m: BpfMap;
  try {
    m = BpfMap.fromPin(file);
  } catch (err) {
    if (isErrnoError(err) && (err.code === 'EPERM' || err.code === 'EACCES')) {
      throw new WeftError(`${err.message}: reading pinned BPF maps needs root (CAP_BPF); run this as root`);
    }
    throw new WeftError(`opening ${file}: ${(err as Error).message}`);
  }
  const want = MAP_SCHEMA[name];
  const got = { type: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries };
  if (got.type !== want.type || got.keySize !== want.keySize || got.valueSize !== want.valueSize) {
    m.close();
    throw new WeftError(
      `${file} is a ${got.type} map with ${got.keySize}-byte keys and ${got.valueSize}-byte values, but this weft reads ${name} as a ${want.type} ` +
        `with ${want.keySize}-byte keys and ${want.valueSize}-byte values: it was pinned by another weft version; restart the agent of this version to replace it`);
  }
  return m;
}
