// A command's runner from its bundle beside this file, dist/cli/<name>.cjs
// (packaging/bundle-cli.mjs: the runner with every package it imports, half a
// second less of every start), else tsc's module (a tree built without that
// step). Loaded as CommonJS, not with import(): an import() of CommonJS first
// scans the whole bundle for its exports.
//
// With V8's code for the bundle beside it (<name>.cjs.v8cache, which `make
// build` writes after running the bundle's module setup once), V8 takes the
// compiled functions from there instead of compiling 1.8 MB of source: 25 to
// 30 ms of every agent start. A cache from another Node (or V8 flags) is
// refused by V8, which then compiles the source as require() would.
import fs from 'node:fs';
import Module, { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

/** V8's code cache of a bundle, beside it. */
export function codeCacheOf(bundle: string): string {
  return `${bundle}.v8cache`;
}

/** What became of the code cache when this process loaded a bundle (for the tests). */
export let codeCache: 'none' | 'accepted' | 'rejected' = 'none';

/** The bundle as CommonJS, wrapped as require() wraps a module: the same text when the cache is made and used. */
function compile(file: string, cachedData?: Buffer): vm.Script {
  // Read as bytes and decoded: here readFileSync(file, 'utf8') takes half as long again.
  const source = fs.readFileSync(file).toString('utf8');
  return new vm.Script(Module.wrap(source), { filename: file, cachedData, importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER });
}

/** Runs the compiled bundle as require() runs a module, and enters it in require's cache. */
function execute(file: string, script: vm.Script): unknown {
  const require = createRequire(import.meta.url);
  const mod = new Module(file);
  mod.filename = file;
  mod.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(path.dirname(file));
  require.cache[file] = mod;
  const wrapper = script.runInThisContext() as (exports: unknown, require: NodeJS.Require, module: Module, filename: string, dirname: string) => void;
  try {
    wrapper.call(mod.exports, mod.exports, createRequire(file), mod, file, path.dirname(file));
  } catch (err) {
    delete require.cache[file];
    throw err;
  }
  mod.loaded = true;
  return mod.exports;
}

/** require() of a bundle, with its code cache when one is beside it. */
export function requireBundle(file: string): unknown {
  const cached = createRequire(import.meta.url).cache[file];
  if (cached) return cached.exports;
  let cachedData: Buffer;
  try {
    cachedData = fs.readFileSync(codeCacheOf(file));
  } catch {
    return createRequire(import.meta.url)(file);
  }
  const script = compile(file, cachedData);
  codeCache = script.cachedDataRejected ? 'rejected' : 'accepted';
  return execute(file, script);
}

/** `make build`: runs the bundle's module setup once, then writes what V8 compiled by then beside it. */
export function writeCodeCache(file: string): void {
  const script = compile(file);
  execute(file, script);
  fs.writeFileSync(codeCacheOf(file), script.createCachedData());
}

/** `unbundled` imports tsc's module: a literal import() in the caller, so that the CLI's bundle leaves it a file loaded on demand. */
export function loadRunner<T>(name: 'agent-run' | 'leases-run', unbundled: () => Promise<T>): Promise<T> {
  const bundle = fileURLToPath(new URL(`./${name}.cjs`, import.meta.url));
  if (fs.existsSync(bundle)) return Promise.resolve(requireBundle(bundle) as T);
  return unbundled();
}
