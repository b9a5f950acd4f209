// `node --import <this module>` with WEFT_RECORD_IMPORTS=<file>: records every
// module the process loads into <file>, one URL or path a line. ESM imports are
// seen as they resolve (import-hooks.ts); CommonJS modules (etcd3 and what it
// requires, protobufjs, a .node addon) are loaded by require() underneath, which
// those hooks do not see on Node 20, so require's cache is written out as the
// process exits (process.exit included).
import fs from 'node:fs';
import { createRequire, register } from 'node:module';

const out = process.env.WEFT_RECORD_IMPORTS;
if (out) {
  register(new URL('./import-hooks.js', import.meta.url), { data: { out } });
  const cache = createRequire(import.meta.url).cache;
  process.on('exit', () => {
    const files = Object.keys(cache);
    if (files.length) fs.appendFileSync(out, files.join('\n') + '\n');
  });
}
