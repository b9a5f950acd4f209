#!/usr/bin/env node
// Writes src/dataplane/ebpf/contract.ts from bpf/include/weft_maps.h (every
// enum: encapsulations, directions, drop reasons, flags, map sizes) and
// bpf/include/maps.h (the map instances), as bpf2go writes Go from C. The
// TypeScript side never spells one of these values itself.
//
//   node bpf/gen-contract.mjs            write the file (make does, before tsc)
//   node bpf/gen-contract.mjs --stdout   print what it would write
//   --include DIR                        read the headers from DIR instead
//
// It reads the two headers' own narrow style (one member or map field per
// line, values built from integers, <<, |, *, + and earlier members) and
// stops with the header's name and line on anything else, rather than guess.
// test/bpf/contract.test.ts compares the committed file with a fresh run;
// test/bpf/schema.test.ts compares its values with the compiled objects' BTF.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(root, 'src/dataplane/ebpf/contract.ts');

// Enums indexed by their members (counters, drop reasons): a record of lower-case names besides the C table.
// `list` and `descriptions` add the names in value order and the members' comments.
const INDEXED = {
  weft_encap: { record: 'ENCAP' },
  weft_dir: { record: 'DIR' },
  weft_drop_reason: { record: 'DROP', list: 'DROP_REASONS', descriptions: 'DROP_DESCRIPTIONS' },
  weft_event_kind: { record: 'EVENT', list: 'EVENT_KINDS' },
  weft_trace_action: { record: 'TRACE', list: 'TRACE_ACTIONS', descriptions: 'TRACE_DESCRIPTIONS' },
  weft_prog: { record: 'PROG', list: 'PROG_NAMES' },
  weft_monitor_slot: { record: 'MON' },
};

class HeaderError extends Error {}

function fail(file, line, msg) {
  throw new HeaderError(`${file}:${line}: ${msg}`);
}

/** The text of a C comment, on one line. */
function commentText(c) {
  return c
    .replace(/^\/\*+|\*+\/$/g, '')
    .split('\n')
    .map((l) => l.replace(/^\s*\*?\s?/, '').trim())
    .filter(Boolean)
    .join(' ');
}

function lineOf(text, index) {
  return text.slice(0, index).split('\n').length;
}

/** Evaluates a member's value: integers and earlier members joined by the few operators the header uses. */
function evaluate(expr, known, file, line) {
  const js = expr.replace(/\b[A-Z_][A-Z0-9_]*\b/g, (name) => {
    if (!(name in known)) fail(file, line, `${name} is not an earlier enum member`);
    return `(${known[name]})`;
  });
  if (!/^(?:\s+|0x[0-9a-fA-F]+|\d+|<<|[|*+()])+$/.test(js)) fail(file, line, `cannot read the value "${expr}"`);
  const v = Function(`"use strict"; return (${js});`)();
  if (!Number.isSafeInteger(v) || v < 0 || v > 0xffffffff) fail(file, line, `"${expr}" is not a 32-bit unsigned value`);
  return v;
}

/** Every `enum weft_* { ... };` of weft_maps.h, its members with their values and comments. */
export function parseEnums(text, file = 'weft_maps.h') {
  const enums = [];
  const known = {};
  const re = /(?:\/\*((?:(?!\*\/)[\s\S])*)\*\/\s*\n)?enum (\w+) \{\n([\s\S]*?)\n\};/g;
  for (const m of text.matchAll(re)) {
    const [, doc, name, body] = m;
    if (!name.startsWith('weft_')) fail(file, lineOf(text, m.index), `enum ${name}: the contract's enums are named weft_*`);
    const members = [];
    let pending = null;
    const first = lineOf(text, m.index + m[0].indexOf('{')) + 1;
    body.split('\n').forEach((raw, i) => {
      const line = first + i;
      const l = raw.trim();
      if (!l) return;
      const alone = /^\/\*(.*)\*\/$/.exec(l);
      if (alone) {
        pending = commentText(l);
        return;
      }
      const mm = /^([A-Z][A-Z0-9_]*)\s*=\s*([^,]+?)\s*,\s*(\/\*.*\*\/)?$/.exec(l);
      if (!mm) fail(file, line, `enum ${name}: expected "NAME = value, /* comment */", got "${l}"`);
      const [, member, expr, trailing] = mm;
      if (member in known) fail(file, line, `${member} is defined twice`);
      const value = evaluate(expr, known, file, line);
      known[member] = value;
      members.push({ name: member, value, comment: trailing ? commentText(trailing) : pending });
      pending = null;
    });
    if (members.length === 0) fail(file, lineOf(text, m.index), `enum ${name} has no members`);
    enums.push({ name, doc: doc ? commentText(`/*${doc}*/`) : null, members });
  }
  const contract = /struct weft_contract \{\n([\s\S]*?)\n\};/.exec(text);
  if (!contract) fail(file, 1, 'no struct weft_contract: the enums would not reach the objects\' BTF');
  const anchored = [...contract[1].matchAll(/enum (\w+)/g)].map((x) => x[1]);
  for (const e of enums) {
    if (!anchored.includes(e.name)) fail(file, lineOf(text, contract.index), `struct weft_contract lacks enum ${e.name}: without it the enum is not in the objects' BTF`);
  }
  return enums;
}

/** The map instances of maps.h: `struct { __uint(...); __type(...); } name SEC(".maps");`. */
export function parseMaps(text, enums, file = 'maps.h') {
  const members = Object.fromEntries(enums.flatMap((e) => e.members.map((m) => [m.name, e.name])));
  const maps = [];
  const re = /(?:\/\*((?:(?!\*\/)[\s\S])*)\*\/\s*\n)?struct \{\n([\s\S]*?)\n\} (\w+) SEC\("\.maps"\);/g;
  for (const m of text.matchAll(re)) {
    const [, doc, body, name] = m;
    const line = lineOf(text, m.index);
    const fields = {};
    for (const f of body.matchAll(/__(uint|type)\((\w+), ([^)]+)\);/g)) fields[f[2]] = f[3].trim();
    const type = /^BPF_MAP_TYPE_(\w+)$/.exec(fields.type ?? '');
    if (!type) fail(file, line, `map ${name}: no __uint(type, BPF_MAP_TYPE_*)`);
    const max = fields.max_entries ?? '';
    let maxEntries;
    if (/^\d+$/.test(max)) maxEntries = { literal: Number(max) };
    else if (members[max]) maxEntries = { enumName: members[max], member: max };
    else fail(file, line, `map ${name}: max_entries "${max}" is neither a number nor a member of an enum in weft_maps.h`);
    // A ring buffer has neither key nor value: its records are the programs' business (struct weft_event).
    const keyless = type[1] === 'RINGBUF';
    const typeName = (t, what) => {
      if (keyless) {
        if (t !== undefined) fail(file, line, `map ${name}: a ring buffer takes no __type(${what}, ...)`);
        return null;
      }
      const s = /^(?:struct )?(\w+)$/.exec(t ?? '');
      if (!s) fail(file, line, `map ${name}: no __type(${what}, ...)`);
      return s[1];
    };
    maps.push({
      name,
      doc: doc ? commentText(`/*${doc}*/`) : null,
      type: type[1].toLowerCase(),
      maxEntries,
      key: typeName(fields.key, 'key'),
      value: typeName(fields.value, 'value'),
    });
  }
  if (maps.length === 0) fail(file, 1, 'no map definitions found');
  return maps;
}

const q = (s) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
const doc = (s, indent = '') => (s ? `${indent}/** ${s.replace(/\*\//g, '*\\/')} */\n` : '');
const tsName = (cName) => cName.replace(/^WEFT_/, '');

export function render(enums, maps) {
  let out = `// Generated by bpf/gen-contract.mjs from bpf/include/weft_maps.h and bpf/include/maps.h. Do not edit:
// change the headers, and \`make\` writes this file again before the TypeScript build.
// test/bpf/contract.test.ts fails when it differs from what the headers say, and
// test/bpf/schema.test.ts compares C_ENUMS with the compiled objects' BTF by name.

/** Every enum of weft_maps.h, member by member, as in C. */
export const C_ENUMS = {
`;
  for (const e of enums) {
    out += `  ${e.name}: {\n`;
    for (const m of e.members) out += `    ${m.name}: ${m.value},\n`;
    out += '  },\n';
  }
  out += '} as const;\n';

  for (const e of enums) {
    const ref = (m) => `C_ENUMS.${e.name}.${m.name}`;
    const idx = INDEXED[e.name];
    out += `\n// enum ${e.name}${!idx && e.doc ? `: ${e.doc}` : ''}\n`;
    if (idx) {
      const prefix = `WEFT_${idx.record}_`;
      const maxName = `${prefix}MAX`;
      const items = e.members.filter((m) => m.name !== maxName);
      const max = e.members.find((m) => m.name === maxName);
      if (!max) fail('weft_maps.h', 1, `enum ${e.name}: no ${maxName}`);
      items.forEach((m, i) => {
        if (!m.name.startsWith(prefix)) fail('weft_maps.h', 1, `enum ${e.name}: ${m.name} does not start with ${prefix}`);
        if (m.value !== i) fail('weft_maps.h', 1, `enum ${e.name}: ${m.name} is ${m.value}, expected ${i} (the members index maps: 0, 1, 2, ... in order)`);
      });
      if (max.value !== items.length) fail('weft_maps.h', 1, `enum ${e.name}: ${maxName} is ${max.value}, but there are ${items.length} members before it`);
      const lower = (m) => m.name.slice(prefix.length).toLowerCase();
      out += doc(e.doc);
      out += `export const ${idx.record} = {\n`;
      for (const m of items) out += `${doc(m.comment, '  ')}  ${lower(m)}: ${ref(m)},\n`;
      out += '} as const;\n';
      out += `export const ${tsName(maxName)} = ${ref(max)};\n`;
      if (idx.list) out += `/** enum ${e.name}'s names, by value. */\nexport const ${idx.list} = [${items.map((m) => q(lower(m))).join(', ')}] as const;\n`;
      if (idx.descriptions) {
        out += `/** What each member's comment in weft_maps.h says. */\nexport const ${idx.descriptions} = {\n`;
        for (const m of items) {
          if (!m.comment) fail('weft_maps.h', 1, `enum ${e.name}: ${m.name} has no comment to describe it`);
          out += `  ${lower(m)}: ${q(m.comment)},\n`;
        }
        out += '} as const;\n';
      }
    } else {
      for (const m of e.members) out += `${doc(m.comment)}export const ${tsName(m.name)} = ${ref(m)};\n`;
    }
  }

  out += '\n/** The map instances of maps.h: libbpf\'s map type, max_entries, and the key and value types by name. */\nexport const MAP_DEFS = {\n';
  for (const m of maps) {
    const max = m.maxEntries.literal !== undefined ? String(m.maxEntries.literal) : `C_ENUMS.${m.maxEntries.enumName}.${m.maxEntries.member}`;
    const t = (x) => (x === null ? 'null' : q(x));
    out += `${doc(m.doc, '  ')}  ${m.name}: { type: ${q(m.type)}, maxEntries: ${max}, key: ${t(m.key)}, value: ${t(m.value)} },\n`;
  }
  out += '} as const;\n';
  for (const m of maps) out += `export const MAP_${m.name.replace(/^weft_/, '').toUpperCase()} = ${q(m.name)};\n`;
  return out;
}

export function generate(includeDir) {
  const read = (f) => fs.readFileSync(path.join(includeDir, f), 'utf8');
  const enums = parseEnums(read('weft_maps.h'));
  return render(enums, parseMaps(read('maps.h'), enums));
}

const args = process.argv.slice(2);
const at = args.indexOf('--include');
const includeDir = at >= 0 ? args[at + 1] : path.join(root, 'bpf/include');
try {
  const text = generate(includeDir);
  if (args.includes('--stdout')) process.stdout.write(text);
  else fs.writeFileSync(OUT, text);
} catch (err) {
  if (!(err instanceof HeaderError) && !(err?.code === 'ENOENT')) throw err;
  process.stderr.write(`gen-contract: ${err.message}\n`);
  process.exit(1);
}
