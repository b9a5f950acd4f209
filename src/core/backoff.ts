// Exponential backoff with jitter, for every retry that waits on something
// outside weft (etcd above all). Doubling from `initialMs` up to `maxMs`;
// each delay is drawn from the upper half of the current step ("equal
// jitter"), so that a thousand agents that lost etcd together do not come
// back in lockstep, while the delay still grows. reset() after a success
// starts the next outage from the bottom again.

export interface BackoffOptions {
  /** First delay's ceiling (default 200 ms). */
  initialMs?: number;
  /** The ceiling no delay exceeds (default 30 s). */
  maxMs?: number;
  /** Growth per failure (default 2). */
  factor?: number;
  random?: () => number;
}

export const BACKOFF_MAX_MS = 30_000;

export class Backoff {
  private step = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly random: () => number;

  constructor(o: BackoffOptions = {}) {
    this.initialMs = o.initialMs ?? 200;
    this.maxMs = o.maxMs ?? BACKOFF_MAX_MS;
    this.factor = o.factor ?? 2;
    this.random = o.random ?? Math.random;
  }

  /** The ceiling of the current step (no jitter): what the next delay is at most. */
  get ceilingMs(): number {
    return Math.min(this.maxMs, this.initialMs * this.factor ** this.step);
  }

  /** The delay before the next attempt; each call moves one step up. */
  next(): number {
    const ceiling = this.ceilingMs;
    if (ceiling < this.maxMs) this.step++;
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  /** After a success: the next failure waits the shortest delay again. */
  reset(): void {
    this.step = 0;
  }

  /** Waits the next delay; resolves early (false) when `abort` fires. */
  wait(signal?: AbortSignal): Promise<boolean> {
    const ms = this.next();
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve(false);
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve(true);
      }, ms);
      const onAbort = (): void => {
        clearTimeout(timer);
        resolve(false);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
