// `weft leases`: the subnet leases in etcd under the prefix, from any machine
// that can reach etcd, with the TTL each has left. The definition only;
// leases-run.ts (and etcd) load when it runs.
import type { Argv, CommandModule } from 'yargs';
import { etcdOptions, outputOption, withOptions, type EtcdArgs } from './options.js';
import type { OutputArgs } from './table.js';

export type LeasesArgs = EtcdArgs & OutputArgs;

/** The flags FLANNELD_<FLAG> variables may set for `weft leases`: the agent's etcd flags. */
export const leasesEnvFlags = Object.keys(etcdOptions);

export const leasesCommand: CommandModule<object, LeasesArgs> = {
  command: 'leases',
  describe: 'list the subnet leases in etcd: subnet, PublicIP, backend, VTEP, TTL left, reservations, malformed keys',
  builder: (y: Argv) =>
    withOptions(y, etcdOptions, outputOption).epilogue(
      'Exit codes: 0 listed (also when there are none), 1 failed, 2 usage error, 3 etcd unreachable.',
    ) as unknown as Argv<LeasesArgs>,
  handler: async (a) => (await import('./leases-run.js')).runLeases(a),
};
