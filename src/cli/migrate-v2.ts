// `weft migrate-v2`: copies flannel's config and leases from etcd's v2
// keyspace (flannel before 0.18, and the classic guides' `etcdctl set`) into
// the v3 keys that flannel since 0.18 and weft read. See subnet/migrate.ts.
// The definition only; migrate-v2-run.ts (and etcd) load when it runs.
import type { Argv, CommandModule } from 'yargs';
import { etcdOptions, outputOption, withOptions, type EtcdArgs } from './options.js';
import type { OutputArgs } from './table.js';

export interface MigrateArgs extends EtcdArgs, OutputArgs {
  'dry-run': boolean;
}

/** The flags FLANNELD_<FLAG> variables may set for `weft migrate-v2`: the agent's etcd flags. */
export const migrateEnvFlags = Object.keys(etcdOptions);

export const migrateV2Command: CommandModule<object, MigrateArgs> = {
  command: 'migrate-v2',
  describe: "copy flannel's config and leases from etcd's v2 keyspace to v3 (flannel < 0.18 wrote v2); never overwrites",
  builder: (y: Argv) =>
    withOptions(y, etcdOptions, outputOption, {
      'dry-run': { type: 'boolean', default: false, describe: 'say what would be copied, write nothing' },
    }).epilogue('Needs etcd with the v2 API (etcd 3.4: --enable-v2). Each lease keeps the TTL it has left; refuses, writing nothing, when v3 holds a different value for a key.') as unknown as Argv<MigrateArgs>,
  handler: async (a) => (await import('./migrate-v2-run.js')).runMigrateV2(a),
};
