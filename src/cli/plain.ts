// The command lines scripts, probes and operators run most, read without
// yargs (src/cli.ts): yargs builds its parser, validates and lays out usage
// for every command level, a third or more of these commands' start on Node 20.
//
// Only plain lines are read here: `config check FILE` (a file or -), and
// `bpf peers|programs|counters|drops` and `bpf lookup IP` with --bpf-pin-dir
// (--pin-dir) and --output (-o) as `--flag value` or `--flag=value`, each at
// most once. Anything else (--help, another flag, a value that looks like a
// flag, a flag given twice, a choice yargs would refuse) is left to yargs, which
// answers it as before. The handlers called are the definitions' own, with the
// arguments yargs would hand them: test/unit/cli.test.ts checks every line this
// accepts against yargs reading it.
import { bpfSubcommands, counterOptions } from './bpf.js';
import { checkCommand } from './config.js';
import { bpfPinDirOption, outputOption } from './options.js';

export interface PlainLine {
  /** The command path, e.g. "bpf lookup". */
  command: string;
  args: Record<string, unknown>;
  handler: (args: Record<string, unknown>) => void | Promise<void>;
}

/** A definition's handler, to be called with the arguments yargs would give it. */
const handlerOf = (c: { handler: unknown }): PlainLine['handler'] => c.handler as PlainLine['handler'];

/** Flag spellings (aliases included) to the option they set, for the bpf subcommands. */
const BPF_FLAGS = new Map<string, string>([
  ['--bpf-pin-dir', 'bpf-pin-dir'],
  [`--${bpfPinDirOption['bpf-pin-dir'].alias}`, 'bpf-pin-dir'],
  ['--output', 'output'],
  [`-${outputOption.output.alias}`, 'output'],
]);

/** A value as yargs takes it without question: not empty, not a flag, no option of its own. */
const plainValue = (v: string | undefined): v is string => v !== undefined && v !== '' && !v.startsWith('-');

export function plainLine(argv: readonly string[]): PlainLine | undefined {
  const [cmd, sub, ...rest] = argv;
  if (cmd === 'config' && sub === 'check' && rest.length === 1 && (rest[0] === '-' || plainValue(rest[0]))) {
    return { command: 'config check', args: { file: rest[0] }, handler: handlerOf(checkCommand) };
  }
  if (cmd !== 'bpf' || !Object.hasOwn(bpfSubcommands, sub)) return undefined;
  const name = sub as keyof typeof bpfSubcommands;
  const args: Record<string, unknown> = {};
  if (name === 'lookup') {
    if (!plainValue(rest[0])) return undefined;
    args.ip = rest.shift();
  }
  const given = new Map<string, string>();
  for (let i = 0; i < rest.length; i++) {
    const [flag, inline] = rest[i].startsWith('--') && rest[i].includes('=') ? [rest[i].slice(0, rest[i].indexOf('=')), rest[i].slice(rest[i].indexOf('=') + 1)] : [rest[i], undefined];
    const option = BPF_FLAGS.get(flag);
    const value = inline ?? rest[++i];
    if (!option || given.has(option) || !plainValue(value)) return undefined;
    given.set(option, value);
  }
  const output = given.get('output') ?? outputOption.output.default;
  if (!(outputOption.output.choices as readonly string[]).includes(output)) return undefined;
  Object.assign(args, { 'bpf-pin-dir': given.get('bpf-pin-dir') ?? bpfPinDirOption['bpf-pin-dir'].default, output });
  if (name === 'counters' || name === 'drops') for (const [k, o] of Object.entries(counterOptions)) args[k] = o.default;
  return { command: `bpf ${name}`, args, handler: handlerOf(bpfSubcommands[name]) };
}
