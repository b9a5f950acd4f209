// A command's runner from its bundle beside this file, dist/cli/<name>.cjs
// (packaging/bundle-cli.mjs: the runner with every package it imports, half a
// second less of every start), else tsc's module (a tree built without that
// step). require(), not import(): an import() of CommonJS first scans the
// whole bundle for its exports.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** `unbundled` imports tsc's module: a literal import() in the caller, so that the CLI's bundle leaves it a file loaded on demand. */
export function loadRunner<T>(name: 'agent-run' | 'leases-run', unbundled: () => Promise<T>): Promise<T> {
  const bundle = new URL(`./${name}.cjs`, import.meta.url);
  if (fs.existsSync(bundle)) return Promise.resolve(createRequire(import.meta.url)(fileURLToPath(bundle)) as T);
  return unbundled();
}
