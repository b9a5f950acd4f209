// The map schema (bpf/include/weft_maps.h) against its mirrors: the codecs in
// src/dataplane/ebpf/maps.ts and the generated src/dataplane/ebpf/contract.ts.
// Map types and sizes as the kernel sees them after loading each object,
// every struct field offset and every enum member, by name, from the objects'
// BTF, and each object's programs against the loader's manifest. Also: the
// objects share one set of maps through pinning by name, and a second load
// (a restarted agent) adopts them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { BpfObject } from 'weft/native/bpf.js';
import { LAYOUT, MAP_SCHEMA } from 'weft/dataplane/ebpf/maps.js';
import { C_ENUMS } from 'weft/dataplane/ebpf/contract.js';
import { PROGRAMS, objectPath, type ObjectFile } from 'weft/dataplane/ebpf/loader.js';
import { OVERLAY_O, UNDERLAY_O } from './fixture.js';

const OBJECTS = Object.keys(PROGRAMS) as ObjectFile[];

// Named like a lab's pin directory so that preflight reaps it if this process dies.
function pinRoot(t: { after: (fn: () => void) => void }): string {
  const dir = `/sys/fs/bpf/wt${process.pid}-${7000 + Math.floor(Math.random() * 1000)}`;
  fs.mkdirSync(dir);
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('schema: each object holds exactly the schema maps, typed and sized as the codecs say, and the programs the loader attaches', (t) => {
  const root = pinRoot(t);
  for (const file of OBJECTS) {
    const obj = BpfObject.load(objectPath(file), { pinRoot: root });
    t.after(() => obj.close());
    assert.deepEqual(obj.mapNames().sort(), Object.keys(MAP_SCHEMA).sort(), `${file}: map names`);
    for (const [name, want] of Object.entries(MAP_SCHEMA)) {
      const m = obj.map(name);
      assert.deepEqual(
        { type: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries },
        { type: want.type, keySize: want.keySize, valueSize: want.valueSize, maxEntries: want.maxEntries },
        `${file}: ${name}`,
      );
    }
    const progs = obj.programs();
    assert.deepEqual(progs.map((p) => p.name).sort(), Object.keys(PROGRAMS[file]).sort(), `${file}: programs`);
    for (const p of progs) assert.equal(p.type, 'sched_cls', `${p.name} is a TC program`);
  }
});

test('schema: both objects share the maps pinned by name, and a second load adopts them', (t) => {
  const root = pinRoot(t);
  const a = BpfObject.load(OVERLAY_O, { pinRoot: root });
  const b = BpfObject.load(UNDERLAY_O, { pinRoot: root });
  t.after(() => (a.close(), b.close()));
  for (const name of Object.keys(MAP_SCHEMA)) {
    assert.equal(a.map(name).id, b.map(name).id, `${name}: one map for both objects`);
    assert.equal(a.pinPaths()[name], `${root}/${name}`);
  }
  const key = Buffer.alloc(4);
  const value = Buffer.alloc(MAP_SCHEMA.weft_config.valueSize, 0x5a);
  a.map('weft_config').update(key, value);
  const again = BpfObject.load(OVERLAY_O, { pinRoot: root });
  t.after(() => again.close());
  assert.equal(again.map('weft_config').id, a.map('weft_config').id);
  assert.deepEqual(again.map('weft_config').lookup(key), value, 'the adopted map keeps its contents');
});

interface BtfType {
  kind: string;
  name: string;
  size?: number;
  members?: Array<{ name: string; bits_offset: number }>;
  values?: Array<{ name: string; val: number }>;
}

const btfOf = (file: string): BtfType[] => (JSON.parse(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', file], { encoding: 'utf8' })) as { types: BtfType[] }).types;

test('schema: every struct field offset in the BTF matches the codecs', () => {
  for (const file of OBJECTS.map(objectPath)) {
    const btf = btfOf(file);
    for (const [struct, layout] of Object.entries(LAYOUT)) {
      const t = btf.find((x) => x.kind === 'STRUCT' && x.name === struct);
      assert.ok(t, `${file}: struct ${struct} in BTF`);
      assert.equal(t.size, layout.size, `${file}: sizeof(struct ${struct})`);
      const offsets = Object.fromEntries(t.members!.map((m) => [m.name, m.bits_offset / 8]));
      assert.deepEqual(offsets, layout.fields, `${file}: struct ${struct} field offsets`);
    }
  }
});

test('schema: every enum of the contract, member by member, is in each object\'s BTF as contract.ts says', () => {
  for (const file of OBJECTS.map(objectPath)) {
    const enums = btfOf(file).filter((x) => x.kind === 'ENUM' && x.name.startsWith('weft_'));
    assert.deepEqual(enums.map((e) => e.name).sort(), Object.keys(C_ENUMS).sort(), `${file}: the weft_* enums`);
    for (const e of enums) {
      const members = Object.fromEntries(e.values!.map((v) => [v.name, v.val]));
      assert.deepEqual(members, C_ENUMS[e.name as keyof typeof C_ENUMS], `${file}: enum ${e.name}`);
    }
  }
});
