// dist/cli/agent-run.cjs is the agent's runner bundled with the packages it
// imports (packaging/bundle-cli.mjs), for a faster start; `weft agent` loads it
// (src/cli/runner.ts), so every test that starts an agent runs it; `weft
// leases` loads leases-run.cjs the same way. Here: that it
// loads nothing from node_modules, shares core/errors.js with the CLI (a
// user's mistake must stay a WeftError, printed in one line), and that etcd's
// services built from etcd's schema embedded in it (src/subnet/etcd-services.ts)
// are @grpc/proto-loader's from etcd3's rpc.proto.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import vm from 'node:vm';
import { CLI } from '../../lab/agent.js';
import { camelCase, etcdServices } from 'weft/subnet/etcd-services.js';

const BUNDLE = path.join(path.dirname(CLI), 'cli', 'agent-run.cjs');
const require = createRequire(import.meta.url);
const etcd3Dir = path.dirname(require.resolve('etcd3/package.json'));
const protoLoader = createRequire(path.join(etcd3Dir, 'lib', 'index.js'))('@grpc/proto-loader') as typeof import('@grpc/proto-loader');
/** etcd3's own options (node_modules/etcd3/lib/connection-pool.js). */
const OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

for (const [name, runner] of [['agent-run', 'runAgent'], ['leases-run', 'runLeases']] as const) {
  test(`the ${name} bundle loads its packages from itself and core/errors.js from beside it`, () => {
    const file = path.join(path.dirname(CLI), 'cli', `${name}.cjs`);
    const probe = `
      const m = require(${JSON.stringify(file)});
      const files = Object.keys(require.cache);
      console.log(JSON.stringify({ runner: typeof m.${runner}, fromModules: files.filter((f) => f.includes('/node_modules/')), errors: files.filter((f) => f.endsWith('/core/errors.js')) }));`;
    const r = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as { runner: string; fromModules: string[]; errors: string[] };
    assert.equal(got.runner, 'function');
    // core/ipnet.ts requires ipaddr.js at run time (createRequire); the heavy packages are inside.
    const heavy = got.fromModules.filter((f) => /\/node_modules\/(etcd3|@grpc|protobufjs|pino|prom-client|cockatiel)\//.test(f));
    assert.deepEqual(heavy, []);
    assert.ok(got.fromModules.length <= 1, got.fromModules.join(', '));
    assert.deepEqual(got.errors, [path.join(path.dirname(CLI), 'core', 'errors.js')]);
  });
}

test("the bundle's etcd services (its schema, built by etcd-services.ts) are proto-loader's from etcd3's rpc.proto", () => {
  const text = fs.readFileSync(BUNDLE, 'utf8');
  // One JSON string in the bundle; esbuild picks its quotes.
  const m = /\(0, proto_loader_1\.etcdServices\)\(JSON\.parse\(('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\)/.exec(text);
  assert.ok(m, "the bundle builds etcd's services from its schema as JSON (packaging/bundle-cli.mjs, etcdSchema)");
  const embedded = etcdServices(JSON.parse(vm.runInNewContext(m[1]) as string), OPTIONS);
  const parsed = protoLoader.loadSync(path.join(etcd3Dir, 'proto', 'rpc.proto'), OPTIONS);

  const services = (d: object): string[] => Object.keys(d).filter((k) => !('format' in (d as Record<string, object>)[k])).sort();
  assert.deepEqual(services(embedded), services(parsed));
  assert.ok(services(parsed).includes('etcdserverpb.KV'));
  assert.ok(services(parsed).includes('etcdserverpb.Auth'));

  type Method = { path: string; requestStream: boolean; responseStream: boolean; originalName: string; requestSerialize: (v: unknown) => Uint8Array; requestDeserialize: (b: Uint8Array) => unknown; responseSerialize: (v: unknown) => Uint8Array; responseDeserialize: (b: Uint8Array) => unknown };
  const serviceOf = (d: object, name: string): Record<string, Method> => (d as Record<string, Record<string, Method>>)[name];
  for (const name of services(parsed)) {
    const a = serviceOf(embedded, name);
    const b = serviceOf(parsed, name);
    assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort(), name);
    for (const method of Object.keys(b)) {
      // originalName: etcd3 calls a method by it (client.range, client.leaseGrant, client.hashKv).
      for (const f of ['path', 'requestStream', 'responseStream', 'originalName'] as const) assert.equal(a[method][f], b[method][f], `${name}.${method}.${f}`);
      // Every method's empty messages, both ways: each type resolves (lazily, here) to what proto-loader resolved.
      assert.deepEqual(a[method].requestDeserialize(a[method].requestSerialize({})), b[method].requestDeserialize(b[method].requestSerialize({})), `${name}.${method} request`);
      assert.deepEqual(a[method].responseDeserialize(new Uint8Array()), b[method].responseDeserialize(new Uint8Array()), `${name}.${method} response`);
    }
  }
  // The messages the agent sends and reads most, through both.
  const kv = (d: object): Record<string, Method> => serviceOf(d, 'etcdserverpb.KV');
  const range = { key: Buffer.from('/coreos.com/network/subnets/'), range_end: Buffer.from('/coreos.com/network/subnets0'), limit: '10000', revision: '42' };
  assert.deepEqual(kv(embedded).Range.requestSerialize(range), kv(parsed).Range.requestSerialize(range));
  const txn = { compare: [{ key: Buffer.from('k'), target: 'CREATE', result: 'EQUAL', create_revision: '0' }], success: [{ request_put: { key: Buffer.from('k'), value: Buffer.from('v'), lease: '7' } }] };
  assert.deepEqual(kv(embedded).Txn.requestSerialize(txn), kv(parsed).Txn.requestSerialize(txn));
  assert.throws(() => kv(embedded).Txn.requestSerialize([txn]), /expected object with TxnRequest structure, got array/);
  const reply = { header: { revision: '9' }, kvs: [{ key: Buffer.from('/k'), value: Buffer.from('{}'), create_revision: '3', mod_revision: '9', version: '2', lease: '7' }], more: true, count: '2' };
  const bytes = kv(parsed).Range.responseSerialize(reply);
  assert.deepEqual(kv(embedded).Range.responseSerialize(reply), bytes);
  assert.deepEqual(kv(embedded).Range.responseDeserialize(bytes), kv(parsed).Range.responseDeserialize(bytes));
  const watch = serviceOf(parsed, 'etcdserverpb.Watch').Watch;
  const event = { header: { revision: '10' }, watch_id: '1', events: [{ type: 'DELETE', kv: { key: Buffer.from('/k'), mod_revision: '10' } }] };
  const evBytes = watch.responseSerialize(event);
  assert.deepEqual(serviceOf(embedded, 'etcdserverpb.Watch').Watch.responseDeserialize(evBytes), watch.responseDeserialize(evBytes));
});

test("camelCase names methods as lodash's camelCase, which proto-loader uses, does (etcd3 calls them by it)", () => {
  const lodash = createRequire(require.resolve('@grpc/proto-loader', { paths: [etcd3Dir] }))('lodash.camelcase') as (s: string) => string;
  for (const name of ['Range', 'LeaseTimeToLive', 'HashKV', 'UserGrantRole', 'HTTPServer2Go', 'MoveLeader', 'A', 'ABC', 'x9Y']) {
    assert.equal(camelCase(name), lodash(name), name);
  }
  assert.equal(camelCase('HashKV'), 'hashKv');
});

// V8's code for each runner bundle lies beside it (packaging/bundle-cli.mjs), and src/cli/runner.ts loads the
// bundle with it: accepted by the Node that built it, refused (and the source compiled) under other V8 flags.
const RUNNER = path.join(path.dirname(CLI), 'cli', 'runner.js');
function loadWithCache(name: string, nodeFlags: string[] = []): { runner: string; codeCache: string; inRequireCache: boolean } {
  const probe = `
    import { createRequire } from 'node:module';
    const r = await import(${JSON.stringify(RUNNER)});
    const m = await r.loadRunner(${JSON.stringify(name)}, () => { throw new Error('no bundle'); });
    const file = ${JSON.stringify(path.join(path.dirname(CLI), 'cli', `${name}.cjs`))};
    console.log(JSON.stringify({ runner: Object.keys(m).filter((k) => k.startsWith('run')).map((k) => typeof m[k]).join(), codeCache: r.codeCache, inRequireCache: createRequire(import.meta.url).cache[file]?.exports === m }));`;
  const r = spawnSync(process.execPath, [...nodeFlags, '--input-type=module', '-e', probe], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { runner: string; codeCache: string; inRequireCache: boolean };
}

for (const name of ['agent-run', 'leases-run']) {
  test(`the ${name} bundle loads with its V8 code cache; under other V8 flags V8 refuses the cache and it loads all the same`, () => {
    const file = path.join(path.dirname(CLI), 'cli', `${name}.cjs`);
    assert.ok(fs.statSync(`${file}.v8cache`).size > 100_000, `${file}.v8cache`);
    assert.deepEqual(loadWithCache(name), { runner: 'function', codeCache: 'accepted', inRequireCache: true });
    assert.deepEqual(loadWithCache(name, ['--no-opt']), { runner: 'function', codeCache: 'rejected', inRequireCache: true });
  });
}
