// `weft monitor` when it runs: opens the pinned ring buffer and control map,
// holds the programs' attention (src/monitor/session.ts) and prints what
// they say until Ctrl-C, --count events or --duration seconds.
import { usageError } from '../core/errors.js';
import { MAP_EVENTS, MAP_MONITOR } from '../dataplane/ebpf/maps.js';
import { NetlinkHandle } from '../native/netlink.js';
import { monotonicNs, MonitorSession } from '../monitor/session.js';
import { jsonLine, matches, parseFilter, tableLine, TABLE_HEADER } from '../monitor/format.js';
import type { MonitorEvent } from '../monitor/event.js';
import { PinnedMaps } from './bpf/pins.js';
import type { MonitorArgs } from './monitor.js';

/** Interface names by index, in the namespace the monitor runs in (the host's); asked again for an index not seen yet. */
class DeviceNames {
  private names = new Map<number, string>();
  private readonly nl = NetlinkHandle.open();
  private refreshedAt = 0;

  name(ifindex: number): string {
    const known = this.names.get(ifindex);
    if (known !== undefined) return known;
    // A device created since the last look; at most one netlink dump a second, however many events name it.
    if (Date.now() - this.refreshedAt > 1000) {
      this.refreshedAt = Date.now();
      this.names = new Map(this.nl.links().map((l) => [l.index, l.name]));
    }
    return this.names.get(ifindex) ?? `if${ifindex}`;
  }

  close(): void {
    this.nl.close();
  }
}

function check(a: MonitorArgs): ReturnType<typeof parseFilter> {
  if (!Number.isInteger(a.sample) || a.sample < 1) throw usageError(`--sample ${a.sample}: give a whole number from 1 (every decision), e.g. --sample 100`);
  if (!Number.isInteger(a.count) || a.count < 0) throw usageError(`--count ${a.count}: give a whole number, 0 for no limit`);
  if (!(a.duration >= 0)) throw usageError(`--duration ${a.duration}: give seconds, 0 for no limit`);
  if (a.type === 'drop' && a.sample !== 1) throw usageError('--sample applies to trace events: add --type trace (or all)');
  try {
    return parseFilter({ address: a.address, peer: a.peer, reason: a.reason });
  } catch (err) {
    throw usageError((err as Error).message);
  }
}

export async function runMonitor(a: MonitorArgs): Promise<void> {
  const filter = check(a);
  const dir = a['bpf-pin-dir'];
  const maps = PinnedMaps.open(dir, [MAP_EVENTS, MAP_MONITOR]);
  const devices = new DeviceNames();
  const drops = a.type !== 'trace';
  const trace = a.type !== 'drop';
  const session = new MonitorSession(maps.map(MAP_EVENTS), maps.map(MAP_MONITOR), { drops, trace, sample: a.sample });
  // Event times are CLOCK_MONOTONIC; this turns them into wall-clock time for the output.
  const epochOffsetNs = BigInt(Date.now()) * 1_000_000n - monotonicNs();
  const line = a.output === 'json' ? jsonLine : tableLine;
  let printed = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const finish = (): void => resolve();
      const onEvent = (e: MonitorEvent): void => {
        if ((a.count && printed >= a.count) || !matches(e, filter)) return;
        process.stdout.write(line(e, devices.name(e.ifindex), e.monotonicNs + epochOffsetNs));
        printed++;
        if (a.count && printed >= a.count) finish();
      };
      // `weft monitor | head` closes the pipe: that is the end, not an error.
      process.stdout.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' ? finish() : reject(err)));
      for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, finish);
      if (a.duration) setTimeout(finish, a.duration * 1000).unref();
      session.start({
        event: onEvent,
        lost: (n) => process.stderr.write(`weft monitor: ${n} event${n === 1n ? '' : 's'} lost: the ring buffer was full${trace && a.sample < 100 ? '; --sample 100 (or a filter on fewer events) keeps up' : ''}\n`),
        error: reject,
      });
      const what = [drops ? 'drops' : '', trace ? `forwarding decisions (one in ${a.sample})` : ''].filter(Boolean).join(' and ');
      process.stderr.write(`weft monitor: listening for ${what} in ${dir}; Ctrl-C stops\n`);
      if (a.output === 'table') process.stdout.write(TABLE_HEADER);
    });
  } finally {
    session.stop();
    devices.close();
    maps.close();
  }
}
