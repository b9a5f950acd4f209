// Bundles weft's CLI entry for a fast start; `make ts` runs it after tsc.
//
// Most of a `weft --help` was Node resolving, reading and compiling yargs' ~60
// small ES modules, and string-width building an Intl.Segmenter and compiling
// Unicode property regexes. dist/cli.cjs is one CommonJS file: tsc's
// dist/cli.js, every module of ours it imports statically (the command
// definitions, core/version, the options), the runners of the commands that
// must start fast with what they import (`config check`: config-run and the
// config parser; `weft bpf`: bpf-run, the map codecs and the addon's wrapper,
// not the addon), and yargs with what it imports.
// CommonJS because Node loads it through require: no ES module jobs, and no
// ES facade of node:fs (building one reads every export of fs, which loads
// the streams modules: ~10 ms of every start on Node 20).
// What stays where tsc put it and loads by a relative path on demand: whatever
// is imported with import() (the other runners with etcd3, gRPC, protobufjs,
// pino; `weft bpf programs`' TC inspection), the addon, every package but
// yargs, and core/errors.js, which the runners import too: WeftError
// must be one class for `instanceof` (it is an ES module without imports, which
// require() loads on Node 20.19+).
// tsc's entry is kept as dist/cli-unbundled.js: it runs the same, only slower
// (test/unit/cli-bundle.test.ts compares the two). What went into the bundle
// is listed in build/cli-bundle.json (esbuild's metafile), which
// test/unit/cli-startup.test.ts reads.
//
// The agent's runner and `weft leases`' get bundles of their own,
// dist/cli/agent-run.cjs and leases-run.cjs, with every package they import:
// an agent's start is time no peer is programmed (see the end of this file).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const outfile = path.join(dist, 'cli.cjs');
const entry = path.join(dist, 'cli-unbundled.js');
const MARK = "// weft's CLI bundle (packaging/bundle-cli.mjs)";
/** A fresh Node with only PATH in its environment and no flags, as a user runs weft: its stdout; `what` names it in an error. */
const node = (args, what) =>
  new Promise((resolve, reject) =>
    execFile(process.execPath, args, { env: { PATH: process.env.PATH } }, (err, stdout, stderr) => (err ? reject(new Error(`${what}: ${stderr || err.message}`)) : resolve(stdout))),
  );
/** Ours, loaded by path rather than bundled (see above). */
const shared = new Set([path.join(dist, 'core', 'errors.js')]);

const inNodeModules = (file) => file.includes(`${path.sep}node_modules${path.sep}`);

// tsc has just written dist/cli.js and its map, unless this runs again without tsc.
if (fs.existsSync(path.join(dist, 'cli.js'))) {
  fs.writeFileSync(entry, fs.readFileSync(path.join(dist, 'cli.js'), 'utf8').replace(/sourceMappingURL=cli\.js\.map\s*$/, 'sourceMappingURL=cli-unbundled.js.map\n'));
  fs.renameSync(path.join(dist, 'cli.js.map'), `${entry}.map`);
  fs.rmSync(path.join(dist, 'cli.js'));
}

/** The runners of the commands that must start fast: `config check`, and `weft bpf` reading pinned maps. */
const fastRunners = new Set(['config-run.js', 'bpf-run.js'].map((f) => path.join(dist, 'cli', f)));

/** Bundles what is listed above; everything else is imported from beside the bundle. */
const bundleTheStart = {
  name: 'bundle-the-start',
  setup(build) {
    build.onResolve({ filter: /.*/ }, (a) => {
      if (a.kind === 'entry-point' || inNodeModules(a.importer)) return undefined;
      if (a.path.startsWith('node:') || builtinModules.includes(a.path)) return undefined;
      if (!a.path.startsWith('.')) return a.path === 'yargs' ? undefined : { path: a.path, external: true };
      const file = path.resolve(a.resolveDir, a.path);
      // What a command loads on demand stays a file loaded on demand, but for the fast runners.
      const onDemand = a.kind === 'dynamic-import' && !fastRunners.has(file);
      if (!onDemand && !shared.has(file)) return undefined;
      return besideBundle(dist, file);
    });
  },
};

/**
 * Each bundled module keeps its own import.meta.url: yargs finds its locales
 * (y18n's translations, chosen by LC_ALL/LANG) and its main file by it, and
 * core/version.js its package.json, native/addon.js the addon. A CommonJS file
 * has no import.meta: the banner's __weftModuleUrl makes the URL from the
 * bundle's own directory.
 */
const ownMetaUrl = {
  name: 'own-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.m?js$/ }, (a) => {
      const text = fs.readFileSync(a.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const rel = JSON.stringify(path.relative(dist, a.path));
      return { contents: text.replaceAll('import.meta.url', `__weftModuleUrl(${rel})`), loader: 'js' };
    });
  },
};

/** What every bundle here is: one CommonJS file for Node 20 with its source map, and esbuild's account of its inputs. */
const CJS_BUNDLE = { bundle: true, platform: 'node', format: 'cjs', target: 'node20', sourcemap: true, metafile: true, logLevel: 'warning' };

/** `file`, left out of a bundle that will sit in `dir`, and loaded from there by its relative path. */
const besideBundle = (dir, file) => ({ path: `./${path.relative(dir, file)}`, external: true });

/** The banner that defines __weftModuleUrl for ownMetaUrl, dist/ being `distDir` (an expression) in the bundle. */
const metaUrlBanner = (first, distDir) =>
  `${first}\nconst __weftModuleUrl = ((dir) => (rel) => require('node:url').pathToFileURL(require('node:path').join(dir, rel)).href)(${distDir});`;

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

/**
 * Every `weft <path> --help` page as tsc's entry prints it when not on a
 * terminal, in English: the pages src/cli/help-pages.ts answers from. The
 * paths are found by following each page's "Commands:" list.
 */
async function renderHelp() {
  const { MAX_HELP_WIDTH } = await import(pathToFileURL(path.join(dist, 'cli', 'help-pages.js')).href);
  const page = (p) => node([entry, ...p, '--help'], `weft ${p.join(' ')} --help`);
  const subcommands = (text, p) => {
    const list = /^Commands:\n((?:  .*\n)+)/m.exec(text)?.[1] ?? '';
    return list
      .split('\n')
      .filter((l) => l.startsWith('  weft '))
      .map((l) => {
        // "  weft bpf lookup <ip>  which ...": the words before the first placeholder.
        const words = l.trim().split(/\s{2,}/)[0].split(' ').slice(1);
        const end = words.findIndex((w) => /^[<[]/.test(w));
        return end < 0 ? words : words.slice(0, end);
      })
      .filter((q) => q.length > p.length && p.every((w, i) => q[i] === w));
  };
  const pages = {};
  for (let level = [[]]; level.length; ) {
    const texts = await Promise.all(level.map(page));
    level = level.flatMap((p, i) => ((pages[p.join(' ')] = texts[i]), subcommands(texts[i], p)));
  }
  const yargsDir = path.dirname(createRequire(entry).resolve('yargs/package.json'));
  const locales = fs.readdirSync(path.join(yargsDir, 'locales')).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5));
  return { width: MAX_HELP_WIDTH, locales, pages };
}

const helpPages = path.join(dist, 'cli', 'help-pages.js');
const RENDERED_LINE = 'export const RENDERED_HELP = null;';
const rendered = await renderHelp();
/** The bundle's copy of src/cli/help-pages.ts holds the pages. */
const withPages = {
  name: 'with-help-pages',
  setup(build) {
    build.onLoad({ filter: /help-pages\.js$/ }, (a) => {
      if (a.path !== helpPages) return undefined;
      const text = fs.readFileSync(a.path, 'utf8');
      if (!text.includes(RENDERED_LINE)) throw new Error(`${a.path} has no line "${RENDERED_LINE}" to fill`);
      // As a JSON string: one line in the bundle, and V8 reads JSON faster than an object literal.
      const json = JSON.stringify(JSON.stringify(rendered));
      return { contents: text.replace(RENDERED_LINE, `export const RENDERED_HELP = JSON.parse(${json});`), loader: 'js' };
    });
  },
};

const result = await esbuild.build({
  entryPoints: [entry],
  outfile,
  ...CJS_BUNDLE,
  // __dirname is read before any bundled module runs: yargs' shim declares a top-level __dirname of its own.
  banner: { js: metaUrlBanner(MARK, '__dirname') },
  plugins: [bundleTheStart, asciiWidth, lazyAssert, withPages, ownMetaUrl],
});
fs.chmodSync(outfile, 0o755);
fs.mkdirSync(path.join(root, 'build'), { recursive: true });
fs.writeFileSync(path.join(root, 'build', 'cli-bundle.json'), JSON.stringify(result.metafile, null, 1) + '\n');

/**
 * The agent's runner and everything it imports, etcd3, gRPC, protobufjs and
 * pino included, as one CommonJS file: dist/cli/agent-run.cjs, which
 * src/cli/runner.ts loads with require(). Node 20 spent 0.5 to 0.9 s of every
 * agent start resolving, reading and compiling some 300 files of them, the
 * ES module loader's part alone about 200 ms. require(), not import(): an
 * import() of a CommonJS file first scans all of it for its exports (300 ms
 * of these 1.8 MB). tsc's dist/cli/agent-run.js stays, for a tree built
 * without this step. core/errors.js stays outside, as in the CLI's bundle.
 * `weft leases` (leases-run) is bundled the same way: with 65,536 leases it
 * has 3 s, and loading its modules one by one was 400 ms of them.
 */
const RUNNER_BUNDLES = ['agent-run', 'leases-run'];

const sharedOutside = {
  name: 'shared-outside',
  setup(build) {
    build.onResolve({ filter: /^\./ }, (a) => {
      const file = path.resolve(a.resolveDir, a.path);
      if (!shared.has(file)) return undefined;
      return besideBundle(path.join(dist, 'cli'), file);
    });
  },
};

/**
 * etcd3 parses etcd's rpc.proto (with kv.proto and auth.proto) as it loads,
 * and finds it by its own __dirname, which in a bundle is the bundle's. The
 * parsed schema goes into the bundle as protobufjs' JSON instead, and
 * src/subnet/etcd-services.ts builds the services from it in place of
 * @grpc/proto-loader, which also made every descriptor for gRPC reflection:
 * 100 ms of every start before 2026-12-02, the schema's parse included.
 * test/unit/agent-bundle.test.ts compares the services with proto-loader's.
 */
const ETCD_LOADER = 'const proto_loader_1 = require("@grpc/proto-loader");';
const ETCD_LOAD = '(0, proto_loader_1.loadSync)(`${__dirname}/../proto/rpc.proto`, {';
const etcdServices = path.join(dist, 'subnet', 'etcd-services.js');
const etcdSchema = {
  name: 'etcd-schema',
  setup(build) {
    build.onLoad({ filter: /[\/]etcd3[\/]lib[\/]connection-pool\.js$/ }, (a) => {
      const text = fs.readFileSync(a.path, 'utf8');
      for (const line of [ETCD_LOADER, ETCD_LOAD]) {
        if (!text.includes(line)) throw new Error(`${a.path} no longer holds "${line}": see etcdSchema in packaging/bundle-cli.mjs`);
      }
      const protobuf = createRequire(a.path)('protobufjs');
      const schema = new protobuf.Root().loadSync(path.join(path.dirname(a.path), '..', 'proto', 'rpc.proto'), { keepCase: true }).toJSON();
      const json = JSON.stringify(JSON.stringify(schema));
      const contents = text
        .replace(ETCD_LOADER, `const proto_loader_1 = require(${JSON.stringify(etcdServices)});`)
        .replace(ETCD_LOAD, `(0, proto_loader_1.etcdServices)(JSON.parse(${json}), {`);
      return { contents, loader: 'js' };
    });
  },
};

/**
 * gRPC's modules take node:net from src/subnet/grpc-net.ts, which answers
 * isIPv6 and isIP for an IPv4 address without compiling Node's IPv6
 * pattern: gRPC asks before it connects to etcd, 10 to 18 ms of every start.
 */
const grpcNet = path.join(dist, 'subnet', 'grpc-net.js');
const grpcNetShim = {
  name: 'grpc-net',
  setup(build) {
    const grpc = `${path.sep}node_modules${path.sep}@grpc${path.sep}grpc-js${path.sep}`;
    build.onResolve({ filter: /^(node:)?net$/ }, (a) => (a.importer.includes(grpc) ? { path: grpcNet } : undefined));
  },
};

for (const name of RUNNER_BUNDLES) {
  const bundled = await esbuild.build({
    entryPoints: [path.join(dist, 'cli', `${name}.js`)],
    outfile: path.join(dist, 'cli', `${name}.cjs`),
    ...CJS_BUNDLE,
    // import.meta.url of each module as the CLI's bundle makes it, from dist/ (this file's parent).
    banner: { js: metaUrlBanner(`// weft's ${name} bundle (packaging/bundle-cli.mjs)`, "require('node:path').dirname(__dirname)") },
    plugins: [sharedOutside, etcdSchema, grpcNetShim, ownMetaUrl],
  });
  fs.writeFileSync(path.join(root, 'build', `${name.replace('-run', '')}-bundle.json`), JSON.stringify(bundled.metafile, null, 1) + '\n');
}

/**
 * V8's code for each runner bundle, beside it (<name>.cjs.v8cache): what V8
 * compiled while the bundle's modules set up, written by a fresh Node with
 * no flags, as the CLI runs. src/cli/runner.ts loads the bundle with it.
 */
for (const name of RUNNER_BUNDLES) {
  const bundle = path.join(dist, 'cli', `${name}.cjs`);
  const runner = pathToFileURL(path.join(dist, 'cli', 'runner.js')).href;
  const script = `import { writeCodeCache } from ${JSON.stringify(runner)}; writeCodeCache(${JSON.stringify(bundle)});`;
  await node(['--input-type=module', '-e', script], `the code cache of ${bundle}`);
}

/**
 * The CNI plugin, src/cni/main.ts with the modules it imports statically
 * (src/cni, subnet-env, ipnet, errors, paths), as one CommonJS file:
 * dist/cni/main.cjs, which `weft install-cni`'s launcher runs when it is
 * there (src/cni/install.ts). A runtime starts the plugin for every pod it
 * starts and stops; loading its nine ES modules one by one was 15 to 25 ms of
 * each start, over Node's own ~95 ms. errors.js goes in too: nothing else in
 * the plugin's process has a WeftError to compare with. What stays outside is
 * what the plugin imports on demand (bigtcp.js and the addon behind it, for
 * a config asking for "bigTCP") and ipaddr.js, which ipnet.js requires by
 * its own URL. test/unit/cni.test.ts checks what went in (build/cni-bundle.json)
 * and what the bundle loads.
 */
const cniOnDemand = {
  name: 'cni-on-demand',
  setup(build) {
    build.onResolve({ filter: /^\./ }, (a) => {
      if (a.kind !== 'dynamic-import') return undefined;
      return besideBundle(path.join(dist, 'cni'), path.resolve(a.resolveDir, a.path));
    });
  },
};
const cniBundle = await esbuild.build({
  entryPoints: [path.join(dist, 'cni', 'main.js')],
  outfile: path.join(dist, 'cni', 'main.cjs'),
  ...CJS_BUNDLE,
  banner: { js: metaUrlBanner("// weft's CNI plugin bundle (packaging/bundle-cli.mjs)", "require('node:path').dirname(__dirname)") },
  plugins: [cniOnDemand, ownMetaUrl],
});
fs.writeFileSync(path.join(root, 'build', 'cni-bundle.json'), JSON.stringify(cniBundle.metafile, null, 1) + '\n');
