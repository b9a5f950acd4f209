// flanneld's command line, read as Go's flag package reads it, and turned into
// the one form yargs reads without surprises (`--name=value`). An operator's
// options file (`FLANNEL_OPTIONS="-etcd-endpoints=... -etcd-prefix=..."`) and
// unit (`flanneld --ip-masq $FLANNEL_OPTIONS`) then work unchanged, and so
// does `flanneld` as the name weft is invoked under (a symlink).
//
// Go's rules: `-name` and `--name` are the same flag; a value is `-name=value`
// or `-name value`, except for booleans, which take `-name` or `-name=false`
// only (`-ip-masq false` makes "false" an argument); parsing stops at the first
// argument that is not a flag, or after `--`; a flag given twice keeps the
// last value, except the repeatable ones (-iface, -iface-regex), which collect.
// flanneld silently ignores everything after a stray argument; weft refuses it.
import path from 'node:path';
import type { Options } from 'yargs';
import { usageError } from '../core/errors.js';
import { agentFlags } from './agent.js';
import { getoptsArgs } from './mk-docker-opts.js';

export type GoFlagKind = 'bool' | 'int' | 'string' | 'list';

/** Flag name (and each alias) to its kind, from yargs option records. */
export function goKinds(options: Record<string, Options>): Map<string, GoFlagKind> {
  const kinds = new Map<string, GoFlagKind>();
  for (const [name, o] of Object.entries(options)) {
    const kind: GoFlagKind = o.array ? 'list' : o.type === 'boolean' ? 'bool' : o.type === 'number' ? 'int' : 'string';
    for (const n of [name, ...[o.alias ?? []].flat()]) kinds.set(n, kind);
  }
  return kinds;
}

/** strconv.ParseBool */
function parseBool(v: string): boolean | null {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return null;
}

/** strconv.ParseInt(v, 0, 64): decimal, 0x hex, 0o or leading-0 octal, 0b binary ('_' between digits after a prefix). */
function parseInt0(v: string): number | null {
  const negative = v.startsWith('-');
  let s = v.replace(/^[+-]/, '');
  let base = 10;
  const prefix = /^0([xXbBoO]?)(?=.)/.exec(s);
  if (prefix) {
    base = { x: 16, b: 2, o: 8, '': 8 }[prefix[1].toLowerCase()] ?? 10;
    s = s.slice(prefix[0].length).replace(/(?<=[0-9a-fA-F])_(?=[0-9a-fA-F])/g, '');
  }
  const digits: Record<number, RegExp> = { 2: /^[01]+$/, 8: /^[0-7]+$/, 10: /^[0-9]+$/, 16: /^[0-9a-fA-F]+$/ };
  if (!digits[base].test(s)) return null;
  const n = parseInt(s, base);
  if (!Number.isSafeInteger(n)) return null;
  return negative ? -n : n;
}

/**
 * Parses args as Go's flag package would, for a command whose flags are
 * `kinds`. Returns them as `--name=value` (scalars once, with their last
 * value), or ['--help'] / ['--version'] when those were asked for.
 */
export function parseGoFlags(args: string[], kinds: Map<string, GoFlagKind>, command: string): string[] {
  const scalars = new Map<string, string>();
  const lists: string[] = [];
  let help = false;
  let i = 0;
  for (; i < args.length; i++) {
    const s = args[i];
    if (s.length < 2 || s[0] !== '-') break;
    if (s === '--') {
      i++;
      break;
    }
    const body = s.slice(s[1] === '-' ? 2 : 1);
    if (!body || body[0] === '-' || body[0] === '=') throw usageError(`bad flag syntax: ${s}`);
    const eq = body.indexOf('=');
    let name = eq < 0 ? body : body.slice(0, eq);
    let value: string | undefined = eq < 0 ? undefined : body.slice(eq + 1);
    let kind = kinds.get(name);
    // yargs' negation, which weft accepted before it read flags as Go does.
    if (!kind && name.startsWith('no-') && kinds.get(name.slice(3)) === 'bool' && value === undefined) {
      name = name.slice(3);
      kind = 'bool';
      value = 'false';
    }
    if (!kind) {
      if (name === 'help' || name === 'h') {
        help = true;
        continue;
      }
      throw usageError(`flag provided but not defined: -${name} (see weft ${command} --help)`);
    }
    if (kind === 'bool') {
      const b = value === undefined ? true : parseBool(value);
      if (b === null) throw usageError(`invalid boolean value ${JSON.stringify(value)} for -${name}: write -${name} or -${name}=false`);
      scalars.set(name, String(b));
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= args.length) throw usageError(`flag needs an argument: -${name}`);
      value = args[++i];
    }
    if (kind === 'int') {
      const n = parseInt0(value);
      if (n === null) throw usageError(`invalid value ${JSON.stringify(value)} for flag -${name}: not a whole number`);
      value = String(n);
    }
    if (kind === 'list') lists.push(`--${name}=${value}`);
    else scalars.set(name, value);
  }
  if (i < args.length) {
    const prev = args[i - 1];
    const after = prev && kinds.get(prev.replace(/^--?/, '').split('=')[0]) === 'bool' && !prev.includes('=') ? `; ${prev} is a boolean flag and takes its value as ${prev}=${args[i]}` : '';
    throw usageError(`unexpected argument ${JSON.stringify(args[i])}: weft ${command} takes only flags${after}`);
  }
  if (help) return ['--help'];
  if (scalars.get('version') === 'true') return ['--version'];
  scalars.delete('version');
  return [...[...scalars].map(([n, v]) => `--${n}=${v}`), ...lists];
}

/** flanneld's names for weft: invoked under one of these, weft is `weft agent`. */
const FLANNELD_NAMES = new Set(['flanneld']);

/** Commands whose flags are read as Go reads them. */
const GO_COMMANDS: Record<string, Map<string, GoFlagKind>> = { agent: new Map([...goKinds(agentFlags), ['version', 'bool']]) };

/**
 * The arguments yargs gets, from process.argv (and process.argv0, which a
 * launcher sets with `exec -a`): `flanneld ARGS` is `weft agent ARGS`; the
 * agent's flags are read as Go reads them, mk-docker-opts's as bash's getopts
 * reads the script's; for other commands a single-dash
 * long flag (`-etcd-prefix=/x`) is the double-dash one, as in Go.
 */
export function commandLine(argv: string[], argv0 = process.argv0): string[] {
  const args = argv.slice(2);
  const invokedAs = [argv0, argv[1] ?? ''].map((p) => path.basename(p));
  if (invokedAs.some((n) => FLANNELD_NAMES.has(n))) {
    const parsed = parseGoFlags(args, GO_COMMANDS.agent, 'agent');
    return parsed[0] === '--version' ? parsed : ['agent', ...parsed];
  }
  const at = args.findIndex((a) => !a.startsWith('-'));
  const command = at < 0 ? '' : args[at];
  // flannel's shell script, whose flags are getopts' (-ic, -kKEY), not Go's.
  if (command === 'mk-docker-opts' && at === 0) return [command, ...getoptsArgs(args.slice(1))];
  const kinds = GO_COMMANDS[command];
  if (kinds && at === 0) {
    const parsed = parseGoFlags(args.slice(1), kinds, command);
    return parsed[0] === '--version' ? parsed : [command, ...parsed];
  }
  return args.map((a) => (/^-[a-zA-Z][-\w]+(=|$)/.test(a) ? `-${a}` : a));
}
