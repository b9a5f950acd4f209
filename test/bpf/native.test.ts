// The libbpf half of the native addon against the real kernel: object
// loading with pinning, map access on each map kind we use, BPF_PROG_TEST_RUN,
// TC attachment in a lab namespace, and the errors a user would see.
// Fixtures: test/fixtures/bpf/*.c, built by `make bpf` into build/test-bpf/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import v8 from 'node:v8';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BpfMap,
  BpfObject,
  decodeSkbContext,
  encodeSkbContext,
  isErrnoError,
  libbpfVersion,
  mapInfo,
  numPossibleCpus,
  progInfo,
  tcAttach,
  tcDetach,
  tcFilters,
  tcHookCreate,
  tcHookDestroy,
  tcQuery,
} from 'weft/native/bpf.js';
import { lowMemoryNotification, withNetns } from 'weft/native/addon.js';
import { Lab } from '../../lab/netns.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const MAPS_O = path.join(root, 'build/test-bpf/maps.o');
const BAD_O = path.join(root, 'build/test-bpf/bad.o');
const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;

// Named like a lab's pin directory (wt<pid>-<n>) so that preflight's
// reapStaleLabs removes it if this process dies before t.after runs.
let pinDirs = 0;
function freshPinRoot(t: { after: (fn: () => void) => void }): string {
  const dir = `/sys/fs/bpf/wt${process.pid}-${9000 + pinDirs++}`;
  fs.mkdirSync(dir);
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function u64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
}

/** struct weft_lpm_key: prefixlen (host order), addr (network order). */
function lpmKey(cidr: string): Buffer {
  const [addr, len] = cidr.split('/');
  const b = Buffer.alloc(8);
  b.writeUInt32LE(Number(len), 0);
  Buffer.from(addr.split('.').map(Number)).copy(b, 4);
  return b;
}

/** struct weft_peer */
function peer(vni: number, mac: number[]): Buffer {
  const b = Buffer.alloc(16);
  Buffer.from([192, 0, 2, 21]).copy(b, 0);
  b.writeUInt32LE(vni, 4);
  Buffer.from(mac).copy(b, 8);
  b[14] = 1; // WEFT_ENCAP_VXLAN
  return b;
}

/** Ethernet + IPv4 (+ 8 payload bytes) from 10.244.0.2 to dst. */
function ipv4Frame(dst: string, ethertype = 0x0800): Buffer {
  const f = Buffer.alloc(14 + 20 + 8);
  Buffer.from([2, 0, 0, 0, 0, 0xd]).copy(f, 0);
  Buffer.from([2, 0, 0, 0, 0, 0x5]).copy(f, 6);
  f.writeUInt16BE(ethertype, 12);
  f[14] = 0x45;
  f.writeUInt16BE(28, 16);
  f[22] = 64;
  f[23] = 17;
  Buffer.from([10, 244, 0, 2]).copy(f, 26);
  Buffer.from(dst.split('.').map(Number)).copy(f, 30);
  f.fill(0xab, 34);
  return f;
}

function assertErrno(fn: () => unknown, call: RegExp, code: string): Error {
  try {
    fn();
  } catch (err) {
    assert.ok(isErrnoError(err, code), `expected ${code}, got ${String(err)}`);
    assert.match(err.message, call);
    assert.match(err.message, new RegExp(`: ${code} \\(`));
    return err;
  }
  assert.fail(`expected ${call} to fail with ${code}`);
}

test('libbpf and CPU facts', () => {
  assert.match(libbpfVersion(), /^v1\.1/);
  const [lo, hi] = fs.readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim().split('-').map(Number);
  assert.equal(numPossibleCpus(), (hi ?? lo) + 1);
});

test('pinned maps are created once and adopted by the next load', (t) => {
  const pinRoot = freshPinRoot(t);
  const first = BpfObject.load(MAPS_O, { pinRoot });
  assert.deepEqual(first.programNames().sort(), ['fx_classify', 'fx_pass']);
  assert.deepEqual(first.mapNames().sort(), ['fx_devhash', 'fx_devmap', 'fx_hash', 'fx_lpm', 'fx_percpu']);
  assert.deepEqual(first.pinPaths(), { fx_hash: `${pinRoot}/fx_hash`, fx_lpm: `${pinRoot}/fx_lpm` });
  const hash1 = first.map('fx_hash');
  const lpm1 = first.map('fx_lpm');
  const percpuId1 = first.map('fx_percpu').id;
  hash1.update(u32(7), u64(0x1122334455667788n));
  lpm1.update(lpmKey('10.244.1.0/24'), peer(1, [0xaa, 0, 0, 0, 0, 1]));
  const ids = { hash: hash1.id, lpm: lpm1.id };
  for (const m of first.maps()) m.close();
  first.close();

  const second = BpfObject.load(MAPS_O, { pinRoot });
  t.after(() => second.close());
  assert.equal(second.map('fx_hash').id, ids.hash, 'fx_hash adopted from its pin');
  assert.equal(second.map('fx_lpm').id, ids.lpm, 'fx_lpm adopted from its pin');
  assert.notEqual(second.map('fx_percpu').id, percpuId1, 'the unpinned map is new');
  assert.deepEqual(second.map('fx_hash').lookup(u32(7)), u64(0x1122334455667788n));
  assert.deepEqual(second.map('fx_lpm').lookup(lpmKey('10.244.1.0/24')), peer(1, [0xaa, 0, 0, 0, 0, 1]));

  const pinned = BpfMap.fromPin(`${pinRoot}/fx_hash`);
  t.after(() => pinned.close());
  assert.equal(pinned.id, ids.hash);
  assert.deepEqual(
    { name: pinned.name, type: pinned.type, keySize: pinned.keySize, valueSize: pinned.valueSize, maxEntries: pinned.maxEntries },
    { name: 'fx_hash', type: 'hash', keySize: 4, valueSize: 8, maxEntries: 64 },
  );
  assert.equal(mapInfo(`${pinRoot}/fx_lpm`).type, 'lpm_trie');
});

test('a pin of the wrong shape makes the load fail and says why', (t) => {
  const pinRoot = freshPinRoot(t);
  const other = BpfObject.load(MAPS_O);
  t.after(() => other.close());
  other.map('fx_percpu').pin(`${pinRoot}/fx_hash`);
  const err = assertErrno(() => BpfObject.load(MAPS_O, { pinRoot }), /^bpf_object__load\(.*build\/test-bpf\/maps\.o\)/, 'EINVAL');
  assert.match(err.message, /couldn't reuse pinned map/);
});

test('map CRUD: hash, LPM trie, per-CPU array', (t) => {
  const obj = BpfObject.load(MAPS_O);
  t.after(() => obj.close());

  const hash = obj.map('fx_hash');
  hash.update(u32(1), u64(10n));
  hash.update(u32(2), u64(20n), 'noexist');
  hash.update(u32(1), u64(11n), 'exist');
  assert.deepEqual(hash.lookup(u32(1)), u64(11n));
  assert.equal(hash.lookup(u32(3)), null);
  assert.deepEqual(hash.keys().map((k) => k.readUInt32LE()).sort(), [1, 2]);
  assert.deepEqual(new Map(hash.entries().map(([k, v]) => [k.readUInt32LE(), v.readBigUInt64LE()])), new Map([[1, 11n], [2, 20n]]));
  assertErrno(() => hash.update(u32(2), u64(0n), 'noexist'), /^bpf_map_update_elem\(map fx_hash id \d+\)/, 'EEXIST');
  assertErrno(() => hash.update(u32(9), u64(0n), 'exist'), /^bpf_map_update_elem\(map fx_hash id \d+\)/, 'ENOENT');
  assert.equal(hash.delete(u32(1)), true);
  assert.equal(hash.delete(u32(1)), false);
  assert.deepEqual(hash.keys(), [u32(2)]);

  const lpm = obj.map('fx_lpm');
  assert.equal(lpm.type, 'lpm_trie');
  lpm.update(lpmKey('10.244.0.0/16'), peer(1, [0, 0, 0, 0, 0, 1]));
  lpm.update(lpmKey('10.244.3.0/24'), peer(3, [0, 0, 0, 0, 0, 3]));
  assert.deepEqual(lpm.lookup(lpmKey('10.244.3.7/32')), peer(3, [0, 0, 0, 0, 0, 3]), 'longest prefix wins');
  assert.deepEqual(lpm.lookup(lpmKey('10.244.9.7/32')), peer(1, [0, 0, 0, 0, 0, 1]));
  assert.equal(lpm.lookup(lpmKey('10.245.0.1/32')), null);
  assert.equal(lpm.keys().length, 2);
  assert.equal(lpm.delete(lpmKey('10.244.3.0/24')), true);
  assert.deepEqual(lpm.lookup(lpmKey('10.244.3.7/32')), peer(1, [0, 0, 0, 0, 0, 1]));

  const percpu = obj.map('fx_percpu');
  assert.equal(percpu.perCpu, true);
  assert.equal(percpu.valueSize, 12);
  assert.equal(percpu.valueLength, numPossibleCpus() * 16, 'each CPU slot rounded up to 8 bytes');
  const v = Buffer.alloc(percpu.valueLength);
  for (let cpu = 0; cpu < numPossibleCpus(); cpu++) v.writeUInt32LE(100 + cpu, cpu * 16);
  percpu.update(u32(1), v);
  const back = percpu.lookup(u32(1));
  assert.ok(back);
  for (let cpu = 0; cpu < numPossibleCpus(); cpu++) assert.equal(back.readUInt32LE(cpu * 16), 100 + cpu);
  assert.deepEqual(percpu.keys().map((k) => k.readUInt32LE()), [0, 1, 2, 3], 'array keys are every index');
  assert.throws(() => percpu.update(u32(1), Buffer.alloc(12)), { name: 'TypeError', message: /value is 12 bytes, expected/ });
});

test('updateBatch: one syscall where the kernel has it, per-key where it says ENOTSUPP', (t) => {
  const obj = BpfObject.load(MAPS_O);
  t.after(() => obj.close());
  const hash = obj.map('fx_hash');
  assert.equal(hash.updateBatch([1, 2, 3].map(u32), [10n, 20n, 30n].map(u64)), 'batch');
  assert.deepEqual(hash.keys().map((k) => k.readUInt32LE()).sort(), [1, 2, 3]);

  // LPM tries have batch update on 6.18; older kernels answer ENOTSUPP and get the fallback.
  const lpm = obj.map('fx_lpm');
  const cidrs = ['10.244.1.0/24', '10.244.2.0/24', '10.244.0.0/16'];
  const mode = lpm.updateBatch(cidrs.map(lpmKey), cidrs.map((_, i) => peer(i, [0, 0, 0, 0, 0, i])));
  t.diagnostic(`LPM trie batch update on this kernel: ${mode}`);
  assert.deepEqual(new Set(lpm.keys().map((k) => k.toString('hex'))), new Set(cidrs.map((c) => lpmKey(c).toString('hex'))));
  assert.deepEqual(lpm.lookup(lpmKey('10.244.2.9/32')), peer(1, [0, 0, 0, 0, 0, 1]));

  const devmap = obj.map('fx_devmap');
  assert.equal(devmap.updateBatch([u32(0), u32(2)], [u32(1), u32(1)]), 'per-key');
  assert.deepEqual(devmap.lookup(u32(2)), u32(1));
  assert.equal(devmap.updateBatch([u32(3)], [u32(1)]), 'per-key', 'remembered per map type');
  assert.deepEqual(devmap.lookup(u32(3)), u32(1));

  assert.throws(() => hash.updateBatch([u32(1)], []), { name: 'TypeError', message: /1 keys but 0 values/ });
  assert.throws(() => hash.updateBatch([u32(1), Buffer.alloc(2)], [u64(1n), u64(2n)]), { name: 'TypeError', message: /key is 2 bytes/ });
});

test('updatePackedAsync: the batch written on a libuv thread, per key where the kernel has no batch; errors as rejections', async (t) => {
  const obj = BpfObject.load(MAPS_O);
  t.after(() => obj.close());
  const lpm = obj.map('fx_lpm');
  const cidrs = ['10.244.1.0/24', '10.244.2.0/24', '10.244.0.0/16'];
  assert.equal(await lpm.updatePackedAsync(Buffer.concat(cidrs.map(lpmKey)), Buffer.concat(cidrs.map((_, i) => peer(i, [0, 0, 0, 0, 0, i]))), 3), 'batch');
  assert.deepEqual(lpm.lookup(lpmKey('10.244.2.9/32')), peer(1, [0, 0, 0, 0, 0, 1]));
  assert.deepEqual(lpm.lookup(lpmKey('10.244.7.1/32')), peer(2, [0, 0, 0, 0, 0, 2]));

  const devhash = obj.map('fx_devhash');
  assert.equal(await devhash.updatePackedAsync(Buffer.concat([u32(5), u32(9)]), Buffer.concat([u32(1), u32(1)]), 2), 'per-key');
  assert.deepEqual(devhash.lookup(u32(9)), u32(1));

  // The kernel's refusal: 64 entries fit in fx_hash, 65 do not (E2BIG), and the call is named.
  const hash = obj.map('fx_hash');
  const ids = Array.from({ length: 65 }, (_, i) => 100 + i);
  await assert.rejects(hash.updatePackedAsync(Buffer.concat(ids.map(u32)), Buffer.concat(ids.map((i) => u64(BigInt(i)))), ids.length), /^Error: bpf_map_update_batch\(map fx_hash id \d+, 65 entries\): E2BIG/);
  await assert.rejects(hash.updatePackedAsync(u32(1), Buffer.alloc(0), 1), { name: 'TypeError', message: /1 entries need 4 key and 8 value bytes/ });
  assert.equal(await hash.updatePackedAsync(Buffer.alloc(0), Buffer.alloc(0), 0), 'batch');

  // The worker holds a descriptor of its own: closing the map's right after the call does not fail the write.
  const other = BpfObject.load(MAPS_O);
  const pending = other.map('fx_hash').updatePackedAsync(u32(7), u64(70n), 1);
  other.close();
  assert.equal(await pending, 'batch');
});

test('entriesPacked (and entries, count): every entry in two buffers, in batches where the kernel has them, walked where not', (t) => {
  const obj = BpfObject.load(MAPS_O);
  t.after(() => obj.close());
  /** Entry i of a packed read as [key hex, value hex]. */
  const pairs = (m: BpfMap, chunk?: number): { pairs: Array<[string, string]>; batched: boolean } => {
    const e = m.entriesPacked(chunk);
    assert.equal(e.keys.length, e.count * m.keySize);
    assert.equal(e.values.length, e.count * m.valueLength);
    const out: Array<[string, string]> = [];
    for (let i = 0; i < e.count; i++)
      out.push([e.keys.subarray(i * m.keySize, (i + 1) * m.keySize).toString('hex'), e.values.subarray(i * m.valueLength, (i + 1) * m.valueLength).toString('hex')]);
    return { pairs: out.sort(), batched: e.batched };
  };
  /** The same map walked from JavaScript, a get_next_key and a lookup per entry; entries() (built on entriesPacked) and count() must agree. */
  const entries = (m: BpfMap): Array<[string, string]> => {
    // (A device map's keys are all its slots; an empty slot has no value, and is no entry.)
    const walked = m.keys().flatMap((k): Array<[string, string]> => {
      const v = m.lookup(k);
      return v ? [[k.toString('hex'), v.toString('hex')]] : [];
    }).sort();
    assert.deepEqual(m.entries().map(([k, v]): [string, string] => [k.toString('hex'), v.toString('hex')]).sort(), walked);
    assert.equal(m.count(), walked.length);
    return walked;
  };

  const lpm = obj.map('fx_lpm');
  assert.deepEqual(pairs(lpm).pairs, [], 'an empty map');
  const cidrs = Array.from({ length: 10 }, (_, i) => `10.244.${i}.0/24`).concat('10.244.0.0/16');
  lpm.updateBatch(cidrs.map(lpmKey), cidrs.map((_, i) => peer(i, [0, 0, 0, 0, 0, i])));
  // Three entries a call: four calls, the last one short, each resuming after the previous one's last key.
  const small = pairs(lpm, 3);
  t.diagnostic(`LPM trie lookup batch on this kernel: ${small.batched}`);
  assert.equal(small.pairs.length, 11);
  assert.deepEqual(small.pairs, entries(lpm));
  assert.deepEqual(pairs(lpm).pairs, entries(lpm), 'in one call');
  assert.deepEqual(pairs(lpm, 11).pairs, entries(lpm), 'a chunk the size of the map');

  const hash = obj.map('fx_hash');
  hash.updateBatch([1, 2, 3, 4, 5].map(u32), [10n, 20n, 30n, 40n, 50n].map(u64));
  assert.deepEqual(pairs(hash, 2).pairs, entries(hash));

  const percpu = obj.map('fx_percpu');
  const v = Buffer.alloc(percpu.valueLength);
  for (let cpu = 0; cpu < numPossibleCpus(); cpu++) v.writeUInt32LE(7 + cpu, cpu * 16);
  percpu.update(u32(2), v);
  assert.deepEqual(pairs(percpu).pairs, entries(percpu), 'per-CPU values, every CPU\'s slot');

  // A device map has no batch lookup: walked key by key, the same entries.
  const devmap = obj.map('fx_devmap');
  devmap.update(u32(1), u32(1));
  const walked = pairs(devmap);
  assert.equal(walked.batched, false);
  assert.deepEqual(walked.pairs, entries(devmap));
  assert.throws(() => lpm.entriesPacked(0), /chunk 0/);
});

test('testRun: sched_cls verdicts, packet rewrite, ctx and per-CPU counters', (t) => {
  const obj = BpfObject.load(MAPS_O);
  t.after(() => obj.close());
  const prog = obj.program('fx_classify');
  assert.equal(prog.type, 'sched_cls');
  assert.match(prog.tag, /^[0-9a-f]{16}$/);
  const info = progInfo(prog.id);
  assert.deepEqual({ ...info, mapIds: [] }, { id: prog.id, name: 'fx_classify', tag: prog.tag, type: 'sched_cls', runTimeNs: 0, runCnt: 0, mapIds: [] });
  // The maps it uses are the object's (the ones `weft bpf programs` compares with the pins).
  assert.ok(info.mapIds.includes(obj.map('fx_lpm').id), `map ids ${info.mapIds} include fx_lpm's`);
  obj.map('fx_lpm').update(lpmKey('10.244.1.0/24'), peer(42, [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x01]));

  const hit = ipv4Frame('10.244.1.2');
  const r = prog.testRun({ data: hit, ctx: encodeSkbContext({ mark: 7 }) });
  assert.equal(r.retval, TC_ACT_OK);
  assert.equal(r.data.length, hit.length);
  assert.deepEqual([...r.data.subarray(0, 6)], [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x01], 'destination MAC rewritten');
  assert.deepEqual(r.data.subarray(6), hit.subarray(6), 'the rest untouched');
  assert.ok(r.ctx);
  assert.equal(decodeSkbContext(r.ctx).mark, 42, 'skb->mark set from the peer');

  const miss = ipv4Frame('10.244.9.9');
  const m = prog.testRun({ data: miss });
  assert.equal(m.retval, TC_ACT_SHOT);
  assert.deepEqual(m.data, miss);
  assert.equal(prog.testRun({ data: ipv4Frame('10.244.1.2', 0x0806), repeat: 5 }).retval, TC_ACT_SHOT);

  const counters = obj.map('fx_percpu').lookup(u32(0));
  assert.ok(counters);
  let packets = 0;
  for (let cpu = 0; cpu < numPossibleCpus(); cpu++) packets += counters.readUInt32LE(cpu * 16);
  assert.equal(packets, 1 + 1 + 5);

  assertErrno(() => prog.testRun({ data: hit, dataSizeOut: 10 }), /^bpf_prog_test_run_opts\(prog fx_classify id \d+\)/, 'ENOSPC');
});

test('TC on a veth in a lab namespace: attach, replace in place, query, list, detach', async (t) => {
  const lab = await Lab.create();
  t.after(() => lab.destroy());
  const h1 = await lab.addHost('h1', { octet: 11 });
  await h1.ip('link', 'add', 'wv0', 'type', 'veth', 'peer', 'name', 'wv1');
  await h1.ip('link', 'set', 'wv0', 'up');
  const ifindex = (JSON.parse(await h1.ip('-j', 'link', 'show', 'wv0')) as Array<{ ifindex: number }>)[0].ifindex;
  const netns = `/run/netns/${h1.name}`;

  const obj = BpfObject.load(MAPS_O);
  const classify = obj.program('fx_classify');
  const pass = obj.program('fx_pass');
  const slot = { ifindex, hook: 'ingress', handle: 1, priority: 1 } as const;
  withNetns(netns, () => {
    assert.equal(tcHookCreate(ifindex), true);
    assert.equal(tcHookCreate(ifindex), false, 'EEXIST is fine');
    assert.equal(tcQuery(slot), null);
    assert.deepEqual(tcAttach({ ...slot, progFd: classify.fd }), { progId: classify.id });
    assert.deepEqual(tcAttach({ ...slot, progFd: pass.fd }), { progId: pass.id });
    assertErrno(() => tcAttach({ ...slot, progFd: classify.fd, replace: false }), new RegExp(`^bpf_tc_attach\\(ifindex ${ifindex}, ingress\\)`), 'EEXIST');
  });
  const filters = withNetns(netns, () => tcFilters(ifindex, 'ingress'));
  assert.equal(filters.length, 1, JSON.stringify(filters));
  assert.equal(filters[0].progId, pass.id);
  assert.equal(filters[0].tag, pass.tag);
  assert.match(filters[0].name ?? '', /^fx_pass/);
  assert.deepEqual(
    { kind: filters[0].kind, handle: filters[0].handle, priority: filters[0].priority, directAction: filters[0].directAction },
    { kind: 'bpf', handle: 1, priority: 1, directAction: true },
  );
  assert.deepEqual(withNetns(netns, () => tcQuery(slot)), { progId: pass.id });
  assert.deepEqual(withNetns(netns, () => tcFilters(ifindex, 'egress')), []);
  // iproute2 sees the same single filter.
  const shown = await h1.exec(['tc', 'filter', 'show', 'dev', 'wv0', 'ingress']);
  assert.match(shown.stdout, new RegExp(`fx_pass.*id ${pass.id}`));
  assert.doesNotMatch(shown.stdout, /fx_classify/);

  // The filter holds the program: it outlives every handle and the object.
  const passId = pass.id;
  for (const p of obj.programs()) p.close();
  obj.close();
  assert.equal(progInfo(passId).name, 'fx_pass');

  withNetns(netns, () => {
    tcDetach(slot);
    assert.equal(tcQuery(slot), null);
    assert.deepEqual(tcFilters(ifindex, 'ingress'), []);
    assertErrno(() => tcDetach(slot), /^bpf_tc_detach\(/, 'ENOENT');
    tcHookDestroy(ifindex);
    assert.deepEqual(tcFilters(ifindex, 'ingress'), []);
  });
  assert.doesNotMatch(await h1.ip('link', 'show', 'wv0'), /clsact/);
  assert.doesNotMatch((await h1.exec(['tc', 'qdisc', 'show', 'dev', 'wv0'])).stdout, /clsact/);
});

test('errors name the call, the object and the errno', async (t) => {
  const lab = await Lab.create();
  t.after(() => lab.destroy());
  const h1 = await lab.addHost('h1', { octet: 11 });
  const obj = BpfObject.load(MAPS_O);
  t.after(() => obj.close());
  const prog = obj.program('fx_pass');
  withNetns(`/run/netns/${h1.name}`, () => {
    const slot = { ifindex: 9999, hook: 'ingress', handle: 1, priority: 1 } as const;
    const err = assertErrno(() => tcAttach({ ...slot, progFd: prog.fd }), /^bpf_tc_attach\(ifindex 9999, ingress\): ENODEV \(No such device\)/, 'ENODEV');
    assert.equal((err as Error & { syscall: string }).syscall, 'bpf_tc_attach');
    assertErrno(() => tcFilters(9999, 'egress'), /^RTM_GETTFILTER\(ifindex 9999, egress\)/, 'ENODEV');
    assertErrno(() => tcHookCreate(9999), /^bpf_tc_hook_create\(ifindex 9999\)/, 'ENODEV');
  });

  const missing = `/sys/fs/bpf/wt${process.pid}-nonexistent/fx_hash`;
  assertErrno(() => BpfMap.fromPin(missing), new RegExp(`^bpf_obj_get\\(${missing}\\): ENOENT`), 'ENOENT');
  assert.throws(() => obj.map('fx_hash').update(Buffer.alloc(3), u64(1n)), {
    name: 'TypeError',
    message: /^bpf_map_update_elem\(map fx_hash id \d+\): key is 3 bytes, key_size is 4$/,
  });
  assert.throws(() => obj.map('fx_hash').lookup(Buffer.alloc(8)), { name: 'TypeError', message: /^bpf_map_lookup_elem\(map fx_hash id \d+\): key is 8 bytes/ });
  assert.throws(() => obj.program('fx_nope'), /no program named 'fx_nope'; it has fx_classify, fx_pass/);
  assert.throws(() => obj.map('fx_nope'), /no map named 'fx_nope'; it has .*fx_hash/);

  const closed = obj.map('fx_hash');
  closed.close();
  assertErrno(() => closed.lookup(u32(1)), /^map fx_hash id \d+: EBADF/, 'EBADF');

  assertErrno(() => BpfObject.load(path.join(root, 'build/test-bpf/nonexistent.o')), /^bpf_object__open_file\(.*nonexistent\.o\)/, 'ENOENT');
  const bad = assertErrno(() => BpfObject.load(BAD_O), new RegExp(`^bpf_object__load\\(${BAD_O}\\): EACCES`), 'EACCES');
  assert.match(bad.message, /invalid access to packet/, 'carries the verifier log');
  assert.ok(bad.message.split('\n').length <= 31, 'only its tail');
});

test('checkLoad: the verifier asked on a libuv thread answers as load() does, with its own log while this thread loads too', async () => {
  await BpfObject.checkLoad(MAPS_O);
  let sync: Error | undefined;
  const pending = BpfObject.checkLoad(BAD_O);
  // This thread's own capture, meanwhile, must not take the other's verifier log or lose its own.
  try {
    BpfObject.load(path.join(root, 'build/test-bpf/nonexistent.o'));
  } catch (err) {
    sync = err as Error;
  }
  assert.doesNotMatch(String(sync?.message), /invalid access to packet/);
  await assert.rejects(pending, (err: Error & { code?: string }) => {
    assert.equal(err.code, 'EACCES');
    assert.match(err.message, new RegExp(`^bpf_object__load\\(${BAD_O}\\): EACCES`));
    assert.match(err.message, /invalid access to packet/, 'carries the verifier log');
    return true;
  });
  await assert.rejects(BpfObject.checkLoad(path.join(root, 'build/test-bpf/nonexistent.o')), /^Error: bpf_object__open_file|bpf_object__open_file\(.*nonexistent\.o\)/);
});

test('loadAsync: loaded on a libuv thread, the same object as load() gives, pins adopted; failures as load() throws them', async (t) => {
  const pinRoot = freshPinRoot(t);
  const first = await BpfObject.loadAsync(MAPS_O, { pinRoot });
  t.after(() => first.close());
  assert.deepEqual(first.programNames().sort(), ['fx_classify', 'fx_pass']);
  assert.deepEqual(first.pinPaths(), { fx_hash: `${pinRoot}/fx_hash`, fx_lpm: `${pinRoot}/fx_lpm` });
  first.map('fx_hash').update(u32(7), u64(42n));
  const second = BpfObject.load(MAPS_O, { pinRoot });
  t.after(() => second.close());
  assert.equal(second.map('fx_hash').id, first.map('fx_hash').id, 'a sync load adopts the async load\'s pin');
  assert.deepEqual(second.map('fx_hash').lookup(u32(7)), u64(42n));
  const priv = await BpfObject.loadAsync(MAPS_O);
  t.after(() => priv.close());
  assert.deepEqual(priv.pinPaths(), {}, 'no pin root: private maps');
  await assert.rejects(BpfObject.loadAsync(BAD_O), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'EACCES');
    assert.match(err.message, /invalid access to packet/, 'carries the verifier log');
    return true;
  });
  await assert.rejects(BpfObject.loadAsync(path.join(root, 'build/test-bpf/nonexistent.o')), /bpf_object__open_file\(.*nonexistent\.o\): ENOENT/);
});

test('presentUntil: the first of a run of keys the map does not hold', (t) => {
  const obj = BpfObject.load(MAPS_O);
  t.after(() => obj.close());
  const lpm = obj.map('fx_lpm');
  const keys = Buffer.concat(['10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24', '10.244.4.0/24'].map(lpmKey));
  assert.equal(lpm.presentUntil(keys), 0, 'an empty map holds none');
  lpm.update(lpmKey('10.244.1.0/24'), peer(1, [0, 0, 0, 0, 0, 1]));
  lpm.update(lpmKey('10.244.2.0/24'), peer(2, [0, 0, 0, 0, 0, 2]));
  lpm.update(lpmKey('10.244.4.0/24'), peer(4, [0, 0, 0, 0, 0, 4]));
  assert.equal(lpm.presentUntil(keys), 2);
  assert.equal(lpm.presentUntil(keys, 3), 4, 'from an index on; all held gives the count');
  assert.throws(() => lpm.presentUntil(keys.subarray(1)), { name: 'TypeError', message: /not a multiple of key_size/ });
});

test('lowMemoryNotification: the young generation a burst grew goes back to its first size', () => {
  const youngMB = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_size / 2 ** 20;
  // Kept objects survive scavenges: V8 grows the young generation (to 32 MB here) under such a burst.
  let kept: Array<{ n: number; s: string }> = [];
  for (let i = 0; i < 400_000; i++) kept.push({ n: i, s: `lease ${i}` });
  const grown = youngMB();
  assert.ok(grown >= 8, `the burst grew the young generation to ${grown} MB`);
  kept = [];
  lowMemoryNotification();
  const after = youngMB();
  assert.ok(after <= 2 && after < grown, `young generation ${grown} MB before, ${after} MB after`);
  assert.equal(kept.length, 0);
});
