// Module-loading hooks (run on Node's loader thread, registered by
// record-imports.ts): every URL an ESM import or import() resolves to is
// appended, one a line, to the file record-imports.ts names.
import fs from 'node:fs';

let out = '';

export function initialize(data: { out: string }): void {
  out = data.out;
}

type Resolved = { url: string };
type NextResolve = (specifier: string, context: unknown) => Promise<Resolved>;

export async function resolve(specifier: string, context: unknown, next: NextResolve): Promise<Resolved> {
  const r = await next(specifier, context);
  // Synchronous, so the line is on disk before the import it records has even loaded.
  fs.appendFileSync(out, `${r.url}\n`);
  return r;
}
