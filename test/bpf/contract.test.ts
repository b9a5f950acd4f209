// src/dataplane/ebpf/contract.ts is generated from bpf/include by
// bpf/gen-contract.mjs: the committed file must be what the headers say
// today, and the generator must refuse headers it would misread rather than
// write something plausible. (schema.test.ts checks the values against the
// compiled objects' BTF.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { C_ENUMS, DROP, DROP_REASONS } from 'weft/dataplane/ebpf/contract.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const GEN = path.join(root, 'bpf/gen-contract.mjs');
const INCLUDE = path.join(root, 'bpf/include');

function generate(include = INCLUDE): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [GEN, '--stdout', '--include', include], { encoding: 'utf8' });
}

/** bpf/include with weft_maps.h rewritten by edit, in a scratch directory. */
function editedHeaders(t: { after: (fn: () => void) => void }, edit: (text: string) => string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-contract-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const f of fs.readdirSync(INCLUDE)) fs.copyFileSync(path.join(INCLUDE, f), path.join(dir, f));
  const file = path.join(dir, 'weft_maps.h');
  const before = fs.readFileSync(file, 'utf8');
  const after = edit(before);
  assert.notEqual(after, before, 'the edit applies to weft_maps.h');
  fs.writeFileSync(file, after);
  return dir;
}

test('contract: the committed contract.ts is what bpf/gen-contract.mjs makes of bpf/include', () => {
  const r = generate();
  assert.equal(r.status, 0, r.stderr);
  assert.equal(fs.readFileSync(path.join(root, 'src/dataplane/ebpf/contract.ts'), 'utf8'), r.stdout, 'contract.ts differs from the headers: run make (or node bpf/gen-contract.mjs)');
});

test('contract: a changed header changes the generated file', (t) => {
  const r = generate(editedHeaders(t, (h) => h.replace('WEFT_DROP_UNKNOWN_PEER = 9', 'WEFT_DROP_UNKNOWN_PEER = 9, /* x */\n\tWEFT_DROP_SPOOFED      = 10').replace('WEFT_DROP_MAX          = 10', 'WEFT_DROP_MAX          = 11')));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^export const DROP_REASONS = \[.*'unknown_peer', 'spoofed'\] as const;$/m);
});

test('contract: the generator refuses headers it would misread', (t) => {
  const cases: Array<[string, (h: string) => string, RegExp]> = [
    ['an enum not in struct weft_contract', (h) => h.replace('\tenum weft_port_flag    port_flag;\n', ''), /struct weft_contract lacks enum weft_port_flag/],
    ['a gap in an indexed enum', (h) => h.replace('WEFT_DROP_WRONG_VNI    = 8', 'WEFT_DROP_WRONG_VNI    = 12'), /WEFT_DROP_WRONG_VNI is 12, expected 8/],
    ['a value it cannot read', (h) => h.replace('WEFT_PORTS_MAX     = 4096', 'WEFT_PORTS_MAX     = sizeof(struct weft_port)'), /weft_maps\.h:\d+: cannot read the value "sizeof\(struct weft_port\)"/],
    ['a member it cannot parse', (h) => h.replace('WEFT_DIR_INGRESS = 1,', 'WEFT_DIR_INGRESS,'), /weft_maps\.h:\d+: enum weft_dir: expected "NAME = value/],
  ];
  for (const [what, edit, want] of cases) {
    const r = generate(editedHeaders(t, edit));
    assert.equal(r.status, 1, `${what}: exit status`);
    assert.match(r.stderr, want, what);
    assert.equal(r.stdout, '', `${what}: nothing written`);
  }
});

test('contract: the drop reasons\' names are in the order of their values', () => {
  assert.deepEqual(
    DROP_REASONS.map((r) => DROP[r]),
    DROP_REASONS.map((_, i) => i),
  );
  assert.equal(DROP_REASONS.length, C_ENUMS.weft_drop_reason.WEFT_DROP_MAX);
});
