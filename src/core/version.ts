// weft's version, from the package.json beside dist/ (read once, lazily).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function weftVersion(): string {
  if (cached === undefined) {
    try {
      const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../package.json');
      cached = String((JSON.parse(fs.readFileSync(pkg, 'utf8')) as { version?: string }).version ?? '');
    } catch {
      // A tree without its package.json (copied by hand) still runs; the status says '?'.
      cached = '';
    }
  }
  return cached;
}
