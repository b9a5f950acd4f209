// `weft migrate-v2` when it runs (etcd loads here).
import { EtcdRegistry } from '../subnet/registry.js';
import { applyMigration, planMigration, type MigrationItem } from '../subnet/migrate.js';
import { etcdRefusal } from '../subnet/etcd-tls.js';
import { etcdFromArgs } from './options.js';
import { dash, duration, print, table, toJson } from './table.js';
import type { MigrateArgs } from './migrate-v2.js';

function outcome(i: MigrationItem, dryRun: boolean): string {
  switch (i.action) {
    case 'copy': {
      const verb = dryRun ? 'would copy' : 'copied';
      if (i.kind === 'config') return verb;
      if (i.ttl === null) return `${verb} as a reservation (no TTL in v2)`;
      return `${verb} on an etcd lease of ${duration(i.ttl * 1000)}${i.leaseId ? ` (${i.leaseId})` : ''}`;
    }
    case 'same':
      return 'already in v3 with the same value';
    case 'skip':
      return `skipped: ${i.note}`;
    case 'conflict':
      return 'v3 holds a different value';
  }
}

export async function runMigrateV2(a: MigrateArgs): Promise<void> {
  const reg = new EtcdRegistry(etcdFromArgs(a));
  try {
    const plan = await planMigration(reg).catch((err: unknown) => {
      throw etcdRefusal(err, reg.options) ?? err;
    });
    if (!a['dry-run']) await applyMigration(reg, plan);
    const copied = plan.items.filter((i) => i.action === 'copy');
    if (a.output === 'json') {
      print(toJson({ ...plan, dryRun: a['dry-run'] }));
      return;
    }
    const rows = plan.items.map((i) => [i.key, i.kind === 'config' ? '-' : dash(i.ttl === null ? null : duration(i.ttl * 1000)), outcome(i, a['dry-run'])]);
    const same = plan.items.filter((i) => i.action === 'same').length;
    const skipped = plan.items.filter((i) => i.action === 'skip').length;
    print(
      `etcd v2 keyspace at ${plan.endpoint}, under ${plan.prefix}\n\n` +
        table(['KEY', 'V2 TTL', 'V3'], rows) +
        `\n${a['dry-run'] ? 'would copy' : 'copied'} ${copied.length} key${copied.length === 1 ? '' : 's'}; ${same} already there; ${skipped} skipped.` +
        (copied.length && !a['dry-run'] ? ' weft and flannel (0.18 and later) read these v3 keys; the v2 ones are left as they were.' : '') +
        '\n',
    );
  } finally {
    reg.close();
  }
}
