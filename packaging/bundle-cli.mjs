// Bundles weft's CLI entry for a fast start; `make ts` runs it after tsc.
//
// Most of a `weft --help` was Node resolving, reading and compiling yargs' ~60
// small ES modules, and string-width building an Intl.Segmenter and compiling
// Unicode property regexes. dist/cli.js becomes one file: tsc's dist/cli.js,
// the command definitions (dist/cli/*.js but the *-run.js runners) and yargs
// with what it imports. Everything else stays where tsc put it and loads from
// the bundle by a relative path, as before: the runners (on demand, with
// etcd3, gRPC, protobufjs, pino and the addon), our modules outside dist/cli/
// (a class such as WeftError must exist once for `instanceof`, and modules find
// files beside them by import.meta.url), and every package but yargs.
// tsc's entry is kept as dist/cli-unbundled.js: it runs the same, only slower
// (test/unit/cli-bundle.test.ts compares the two). What went into the bundle
// is listed in build/cli-bundle.json (esbuild's metafile), which
// test/unit/cli-startup.test.ts reads.
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const outfile = path.join(dist, 'cli.js');
const entry = path.join(dist, 'cli-unbundled.js');
const definitions = path.join(dist, 'cli') + path.sep;
const MARK = "// weft's CLI bundle (packaging/bundle-cli.mjs)";
const inNodeModules = (file) => file.includes(`${path.sep}node_modules${path.sep}`);

// tsc has just written dist/cli.js and its map, unless this runs again without tsc.
if (!fs.readFileSync(outfile, 'utf8').includes(MARK)) {
  fs.writeFileSync(entry, fs.readFileSync(outfile, 'utf8').replace(/sourceMappingURL=cli\.js\.map\s*$/, 'sourceMappingURL=cli-unbundled.js.map\n'));
  fs.renameSync(`${outfile}.map`, `${entry}.map`);
}

/** What of ours is not a command's definition, and every package but yargs, stays a file of its own. */
const bundleOnlyDefinitionsAndYargs = {
  name: 'definitions-and-yargs',
  setup(build) {
    build.onResolve({ filter: /.*/ }, (a) => {
      if (a.kind === 'entry-point' || inNodeModules(a.importer)) return undefined;
      if (a.path.startsWith('node:') || builtinModules.includes(a.path)) return undefined;
      if (!a.path.startsWith('.')) return a.path === 'yargs' ? undefined : { path: a.path, external: true };
      const file = path.resolve(a.resolveDir, a.path);
      if (file.startsWith(definitions) && !file.endsWith('-run.js')) return undefined;
      return { path: `./${path.relative(dist, file)}`, external: true };
    });
  },
};

/**
 * Each bundled module keeps its own import.meta.url: yargs finds its locales
 * (y18n's translations, chosen by LC_ALL/LANG) and its main file by it.
 */
const ownMetaUrl = {
  name: 'own-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.m?js$/ }, (a) => {
      const text = fs.readFileSync(a.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const rel = JSON.stringify(path.relative(dist, a.path));
      return { contents: text.replaceAll('import.meta.url', `new URL(${rel}, import.meta.url).href`), loader: 'js' };
    });
  },
};

/**
 * string-width (three versions, under yargs, cliui and wrap-ansi) builds an
 * Intl.Segmenter and compiles Unicode property regexes as it loads, and runs
 * them on every string: about 50 ms of a --help. The width of printable ASCII
 * is its length in each version; any other string goes to the importer's own
 * version, which loads then (esbuild initialises a require()d module on first use).
 */
const asciiWidth = {
  name: 'ascii-width',
  setup(build) {
    build.onResolve({ filter: /^string-width$/ }, async (a) => {
      if (a.pluginData === 'real') return undefined;
      const real = await build.resolve(a.path, { kind: a.kind, importer: a.importer, resolveDir: a.resolveDir, pluginData: 'real' });
      if (real.errors.length) return { errors: real.errors };
      return { path: real.path, namespace: 'ascii-width' };
    });
    build.onLoad({ filter: /.*/, namespace: 'ascii-width' }, (a) => ({
      resolveDir: path.dirname(a.path),
      loader: 'js',
      contents: `
        const printableAscii = /^[\\x20-\\x7e]*$/;
        export default function stringWidth(s, options) {
          if (typeof s === 'string' && printableAscii.test(s)) return s.length;
          return require(${JSON.stringify(a.path)}).default(s, options);
        }`,
    }));
  },
};

/**
 * yargs checks its own invariants with node:assert, whose loading costs a few
 * milliseconds; the checks pass in every run, so node:assert loads only to
 * report one that fails (its strictEqual and notStrictEqual compare by Object.is).
 */
const lazyAssert = {
  name: 'lazy-assert',
  setup(build) {
    build.onResolve({ filter: /^(node:)?assert$/ }, (a) => (a.importer.includes(`${path.sep}node_modules${path.sep}yargs${path.sep}`) ? { path: 'assert', namespace: 'lazy-assert' } : undefined));
    build.onLoad({ filter: /.*/, namespace: 'lazy-assert' }, () => ({
      loader: 'js',
      contents: `
        const assert = () => process.getBuiltinModule('node:assert');
        export function strictEqual(actual, expected, message) {
          if (!Object.is(actual, expected)) assert().strictEqual(actual, expected, message);
        }
        export function notStrictEqual(actual, expected, message) {
          if (Object.is(actual, expected)) assert().notStrictEqual(actual, expected, message);
        }`,
    }));
  },
};

const result = await esbuild.build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  banner: { js: MARK },
  metafile: true,
  plugins: [bundleOnlyDefinitionsAndYargs, asciiWidth, lazyAssert, ownMetaUrl],
  logLevel: 'warning',
});
fs.chmodSync(outfile, 0o755);
fs.mkdirSync(path.join(root, 'build'), { recursive: true });
fs.writeFileSync(path.join(root, 'build', 'cli-bundle.json'), JSON.stringify(result.metafile, null, 1) + '\n');
