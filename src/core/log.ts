// pino: JSON lines on stdout for machines; readable lines when stdout is a terminal.
// Secrets are redacted wherever they appear in a logged object.
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';

export type { Logger };

export const REDACT = ['password', 'etcdPassword', '*.password', '*.etcdPassword', 'options.password', 'auth.password'];

export function createLogger(opts: { level?: string; pretty?: boolean; destination?: NodeJS.WritableStream } = {}): Logger {
  const level = opts.level ?? process.env.WEFT_LOG_LEVEL ?? 'info';
  const base = { level, base: undefined, redact: { paths: REDACT, censor: '[redacted]' }, timestamp: pino.stdTimeFunctions.isoTime };
  const usePretty = opts.pretty ?? Boolean(process.stdout.isTTY);
  if (usePretty) {
    // Loaded only for a terminal: pino-pretty and its packages cost an agent's every start 50 to 80 ms.
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
    return pino(base, pretty({ sync: true, colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname', destination: opts.destination ?? 1 }));
  }
  return pino(base, opts.destination ?? pino.destination({ dest: 1, sync: true }));
}

/** Logs at most once per `everyMs` for the same key (for conditions that repeat while they last). */
export class RateLimiter {
  private readonly last = new Map<string, number>();
  constructor(private readonly everyMs: number) {}
  allow(key: string): boolean {
    const now = Date.now();
    const prev = this.last.get(key);
    if (prev !== undefined && now - prev < this.everyMs) return false;
    this.last.set(key, now);
    return true;
  }
  reset(key: string): void {
    this.last.delete(key);
  }
}
