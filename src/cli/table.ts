// Output for the inspection commands (leases, status, bpf ...): aligned
// tables and key/value blocks for people, JSON for machines. Their exit codes
// are every command's (src/core/errors.ts).
export { outputOption } from './options.js';

export type OutputFormat = 'table' | 'json';

export interface OutputArgs {
  output: OutputFormat;
}

/** Columns separated by two spaces, each as wide as its widest cell. Cells are printed as given. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** "key   value" lines; a value with newlines continues under itself. */
export function keyValues(pairs: Array<[string, string]>): string {
  const w = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(w)}  ${v.split('\n').join(`\n${' '.repeat(w + 2)}`)}`).join('\n') + '\n';
}

/** JSON with bigints as numbers: counters stay exact up to 2^53 (9 PB), far past anything a host counts. */
export function toJson(v: unknown): string {
  try {
    // Without a replacer first: JSON.stringify's own path is several times faster (65,536 leases), and refuses bigints.
    return JSON.stringify(v, null, 2) + '\n';
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? Number(x) : x), 2) + '\n';
  }
}

export function print(text: string): void {
  process.stdout.write(text);
}

/** 90061000 -> "1d1h1m"; the two largest units, enough to read a TTL or an uptime at a glance. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  const neg = ms < 0;
  let s = Math.floor(Math.abs(ms) / 1000);
  const units: Array<[string, number]> = [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]];
  const parts: string[] = [];
  for (const [u, n] of units) {
    if (s >= n || (u === 's' && parts.length === 0)) {
      parts.push(`${Math.floor(s / n)}${u}`);
      s %= n;
    }
    if (parts.length === 2) break;
  }
  return (neg ? '-' : '') + parts.join('');
}

/** 1536 -> "1.5 KiB". */
export function byteSize(n: number | bigint): string {
  let v = Number(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** A rate per second, rounded to what a person reads: "0", "3.5", "1200". */
export function rate(n: number): string {
  if (n === 0) return '0';
  return n >= 100 ? n.toFixed(0) : n.toFixed(1);
}

export function dash(v: string | number | undefined | null): string {
  return v === undefined || v === null || v === '' ? '-' : String(v);
}
