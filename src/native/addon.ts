// Loads the compiled addon (native/build/Release/weft_native.node). The typed
// wrappers in bpf.ts, netlink.ts and conntrack.ts are the only modules that touch it.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
export const addonPath = path.resolve(here, '../../native/build/Release/weft_native.node');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Raw = Record<string, any>;
type Addon = { bpf: Raw; netlink: Raw; netns: Raw; conntrack: Raw; lock: Raw; memory: Raw; notify: Raw };
let cached: Addon | undefined;

export function addon(): Addon {
  if (!cached) {
    const require = createRequire(import.meta.url);
    try {
      cached = require(addonPath) as Addon;
    } catch (err) {
      throw new Error(`cannot load the native addon ${addonPath}: ${(err as Error).message}; run 'make build'`);
    }
  }
  return cached;
}

/**
 * Runs fn with the main thread in the network namespace at nsPath (e.g.
 * /run/netns/NAME). Netlink and TC calls made inside act on that namespace.
 * fn must be synchronous.
 */
export function withNetns<T>(nsPath: string, fn: () => T): T {
  return addon().netns.withNetns(nsPath, fn) as T;
}

/** Gives the C heap's free pages back to the kernel (malloc_trim(0)): whether any went. */
export function mallocTrim(): boolean {
  return addon().memory.mallocTrim() as boolean;
}

/** V8's full collection for memory (Isolate::LowMemoryNotification): it also shrinks the young generation to its first size. */
export function lowMemoryNotification(): void {
  addon().memory.lowMemoryNotification();
}
