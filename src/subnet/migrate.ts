// flannel before 0.18 kept the config and the leases in etcd's v2 keyspace,
// which the v3 API (flannel since 0.18, weft) cannot see. This copies them
// over: each value byte for byte, each lease on an etcd v3 lease with the TTL
// it has left in v2 (a key without a TTL stays a reservation). It checks
// everything before it writes anything, and refuses when v3 already holds a
// different value for a key: it never overwrites.
import { WeftError, messageOf } from '../core/errors.js';
import { explainEtcdError, httpGet, type EtcdRegistry } from './registry.js';
import { parseLeaseAttrs, parseSubnetKey } from './lease.js';

interface V2Node {
  key: string;
  value?: string;
  dir?: boolean;
  ttl?: number;
  nodes?: V2Node[];
}

export type ItemAction = 'copy' | 'same' | 'conflict' | 'skip';

export interface MigrationItem {
  kind: 'config' | 'lease';
  key: string;
  value: string;
  /** Seconds left in v2; null: none (the config, a reservation). */
  ttl: number | null;
  action: ItemAction;
  /** Why: for 'skip' what is wrong, for 'conflict' the v3 value. */
  note?: string;
  /** After apply: the etcd lease the key was written with. */
  leaseId?: string;
}

export interface MigrationPlan {
  endpoint: string;
  prefix: string;
  items: MigrationItem[];
}

/** The v2 tree at key (recursive), from the first endpoint that serves the v2 API; null when it has none. */
async function readV2(reg: EtcdRegistry, key: string): Promise<{ endpoint: string; node: V2Node | null }> {
  const errors: string[] = [];
  for (const endpoint of reg.options.endpoints) {
    const url = `${endpoint.replace(/\/+$/, '')}/v2/keys${key}?recursive=true`;
    try {
      const body = await httpGet(url, reg.options);
      if (body === null) return { endpoint, node: null };
      return { endpoint, node: (JSON.parse(body) as { node: V2Node }).node };
    } catch (err) {
      errors.push(`${endpoint}: ${messageOf(err)}`);
    }
  }
  throw new WeftError(`cannot read etcd's v2 keyspace: ${errors.join('; ')}. Check --etcd-endpoints (and that etcd runs with --enable-v2)`, 'unavailable');
}

/** Two values are the same when they are the same JSON (a config rewritten with other spacing is not a conflict). */
function sameValue(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return JSON.stringify(JSON.parse(a)) === JSON.stringify(JSON.parse(b));
  } catch {
    return false;
  }
}

function leaseProblem(value: string): string | undefined {
  try {
    parseLeaseAttrs(value);
    return undefined;
  } catch (err) {
    return `not a lease value: ${messageOf(err)}`;
  }
}

/** What the migration would do; reads only. */
export async function planMigration(reg: EtcdRegistry): Promise<MigrationPlan> {
  const { endpoint, node: config } = await readV2(reg, reg.configKey);
  const { node: subnets } = await readV2(reg, reg.subnetsPrefix.replace(/\/$/, ''));
  const items: MigrationItem[] = [];
  if (config?.value !== undefined) items.push({ kind: 'config', key: reg.configKey, value: config.value, ttl: null, action: 'copy' });
  for (const n of [...(subnets?.nodes ?? [])].sort((x, y) => x.key.localeCompare(y.key))) {
    const name = n.key.slice(n.key.lastIndexOf('/') + 1);
    const item: MigrationItem = { kind: 'lease', key: reg.subnetsPrefix + name, value: n.value ?? '', ttl: n.ttl ?? null, action: 'copy' };
    const problem = n.dir || !parseSubnetKey(name) ? 'not a subnet key' : leaseProblem(item.value) ?? (item.ttl !== null && item.ttl <= 0 ? 'expired' : undefined);
    if (problem) {
      item.action = 'skip';
      item.note = problem;
    }
    items.push(item);
  }
  if (!items.length) {
    throw new WeftError(`etcd's v2 keyspace at ${endpoint} holds nothing under ${reg.prefix}: no config, no leases (is --etcd-prefix right, and does etcd run with --enable-v2?)`, 'failed');
  }
  for (const item of items.filter((i) => i.action === 'copy')) {
    const now = await reg.client.get(item.key).string();
    if (now === null) continue;
    if (sameValue(now, item.value)) item.action = 'same';
    else {
      item.action = 'conflict';
      item.note = now;
    }
  }
  return { endpoint, prefix: reg.prefix, items };
}

/**
 * Writes what the plan copies, each key only if v3 still has none (a
 * transaction on its version); refuses before writing anything when the plan
 * holds a conflict.
 */
export async function applyMigration(reg: EtcdRegistry, plan: MigrationPlan): Promise<void> {
  const conflicts = plan.items.filter((i) => i.action === 'conflict');
  if (conflicts.length) throw conflictError(conflicts);
  const late: MigrationItem[] = [];
  for (const item of plan.items.filter((i) => i.action === 'copy')) {
    try {
      let put = reg.client.put(item.key).value(item.value);
      let grant: string | undefined;
      if (item.ttl !== null) {
        grant = String((await reg.client.leaseClient.leaseGrant({ TTL: item.ttl })).ID);
        put = put.lease(grant);
      }
      const res = await reg.client.if(item.key, 'Version', '==', 0).then(put).commit();
      if (res.succeeded) item.leaseId = grant;
      else {
        if (grant) await reg.revoke(grant);
        item.action = 'conflict';
        item.note = (await reg.client.get(item.key).string()) ?? '';
        late.push(item);
      }
    } catch (err) {
      throw new WeftError(`copying ${item.key}: ${explainEtcdError(err as Error, reg.options.endpoints)}`, 'failed');
    }
  }
  if (late.length) throw conflictError(late, 'written in v3 by someone else while migrating; the other keys were copied');
}

function conflictError(items: MigrationItem[], why = 'nothing was written'): WeftError {
  const list = items.map((i) => `${i.key} (v3 holds ${i.note}, v2 ${i.value})`).join('; ');
  return new WeftError(
    `refusing to overwrite: v3 already holds a different value for ${items.length === 1 ? 'one key' : `${items.length} keys`}: ${list}; ${why}. ` +
      'Delete the v3 key (etcdctl del KEY) if the v2 value is the one to keep, or leave v2 behind.',
    'failed',
  );
}
