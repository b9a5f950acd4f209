// A pino logger whose lines stay in memory, for tests that assert what was logged.
import { Writable } from 'node:stream';
import { createLogger, type Logger } from 'weft/core/log.js';

export interface MemLog {
  log: Logger;
  lines: Array<{ level: number; msg: string; [k: string]: unknown }>;
  has(re: RegExp): boolean;
}

export function memLog(level = 'debug'): MemLog {
  const lines: MemLog['lines'] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      cb();
    },
  });
  const log = createLogger({ level, pretty: false, destination: sink });
  return { log, lines, has: (re) => lines.some((l) => re.test(JSON.stringify(l))) };
}
