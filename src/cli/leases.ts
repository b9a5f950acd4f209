// `weft leases`: the subnet leases in etcd under the prefix, from any machine
// that can reach etcd, with the TTL each has left. The definition only;
// leases-run.ts (and etcd) load when it runs, from their bundle (runner.ts).
import type { Argv, CommandModule, Options } from 'yargs';
import { loadRunner } from './runner.js';
import { etcdOptions, outputOption, withOptions, type EtcdArgs } from './options.js';
import type { OutputArgs } from './table.js';

export type LeasesArgs = EtcdArgs & OutputArgs & { ttl?: boolean };

/** At most this many etcd leases get a TTL call each unless --ttl asks for all (see leasesOptions.ttl). */
export const TTL_AUTO_MAX = 1000;

const leasesOptions = {
  ttl: {
    type: 'boolean',
    describe: `ask etcd for each lease's TTL (one call per etcd lease: 65,535 of them take about 25 s); default: only when there are at most ${TTL_AUTO_MAX}; --no-ttl never`,
  },
} satisfies Record<string, Options>;

/** The flags FLANNELD_<FLAG> variables may set for `weft leases`: the agent's etcd flags. */
export const leasesEnvFlags = Object.keys(etcdOptions);

export const leasesCommand: CommandModule<object, LeasesArgs> = {
  command: 'leases',
  describe: 'list the subnet leases in etcd: subnet, PublicIP, backend, VTEP, TTL left, reservations, malformed keys',
  builder: (y: Argv) =>
    withOptions(y, etcdOptions, leasesOptions, outputOption).epilogue(
      'Exit codes: 0 listed (also when there are none), 1 failed, 2 usage error, 3 etcd unreachable.',
    ) as unknown as Argv<LeasesArgs>,
  handler: async (a) => (await loadRunner('leases-run', () => import('./leases-run.js'))).runLeases(a),
};
