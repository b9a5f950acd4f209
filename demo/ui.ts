// Terminal output for the demo: numbered step titles, a spinner with the
// elapsed time while something is awaited (plain lines when stdout is not a
// terminal), and compact tables.
const tty = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;

const paint = (code: string) => (s: string): string => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
export const bold = paint('1');
export const dim = paint('2');
export const green = paint('32');
export const red = paint('31');
export const yellow = paint('33');
export const cyan = paint('36');

export const OK = green('✓');
export const FAIL = red('✗');

let stepNo = 0;
let stepCount = 0;

export function setSteps(n: number): void {
  stepCount = n;
}

export function step(title: string): void {
  stepNo++;
  console.log(`\n${bold(cyan(`[${stepNo}/${stepCount}]`))} ${bold(title)}`);
}

export function info(line: string): void {
  console.log(`  ${line}`);
}

/** A command as the reader could type it. */
export function shell(cmd: string): void {
  console.log(`  ${dim('$')} ${cmd}`);
}

/** Indented block of a command's output. */
export function output(text: string, indent = '    '): void {
  for (const line of text.replace(/\s+$/, '').split('\n')) console.log(`${indent}${line}`);
}

/** Runs `fn` with a spinner and the elapsed time on `what`; prints ✓ or ✗ with the time taken. */
export async function waiting<T>(what: string, fn: () => Promise<T>, done?: (v: T) => string): Promise<T> {
  const start = Date.now();
  const frames = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏';
  let i = 0;
  const secs = (): string => `${((Date.now() - start) / 1000).toFixed(1)} s`;
  const timer = tty ? setInterval(() => process.stdout.write(`\r  ${cyan(frames[i++ % frames.length])} ${what} ${dim(secs())}\x1b[K`), 80) : undefined;
  try {
    const v = await fn();
    if (timer) clearInterval(timer);
    process.stdout.write(`${tty ? '\r' : ''}  ${OK} ${done ? done(v) : what} ${dim(`(${secs()})`)}${tty ? '\x1b[K' : ''}\n`);
    return v;
  } catch (err) {
    if (timer) clearInterval(timer);
    process.stdout.write(`${tty ? '\r' : ''}  ${FAIL} ${what} ${dim(`(${secs()})`)}${tty ? '\x1b[K' : ''}\n`);
    throw err;
  }
}

/** A table with a header row; the first column left-aligned, the rest too unless `right` names them. */
export function table(head: string[], rows: string[][], right: number[] = []): string {
  // eslint-disable-next-line no-control-regex
  const visible = (s: string): number => s.replace(/\x1b\[[0-9;]*m/g, '').length;
  const w = head.map((h, i) => Math.max(visible(h), ...rows.map((r) => visible(r[i] ?? ''))));
  const pad = (s: string, i: number): string => {
    const fill = ' '.repeat(w[i] - visible(s));
    return right.includes(i) ? fill + s : s + fill;
  };
  const line = (cells: string[]): string => cells.map((c, i) => pad(c ?? '', i)).join('  ').trimEnd();
  return [bold(line(head)), ...rows.map(line)].join('\n');
}
