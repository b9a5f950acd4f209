// How weft's etcd client meets failures: what etcd3@1.1.2 and @grpc/grpc-js
// give, and what weft adds (README, "Failure behaviour"). registry.ts builds
// its clients with these; the watch (etcd-watch.ts) runs on them.
// - grpc-js keepalive (channel options) is off by default: a connection to a
//   member that went silent stays "up" until TCP gives up, minutes later.
//   Every channel here pings after keepaliveTimeMs and drops the connection
//   when no answer comes within keepaliveTimeoutMs (etcd's server allows
//   pings every 5 s, and only while a call is open, so no ping without one).
// - etcd3's pool shuffles the hosts per call but, once a call reached a host
//   and failed, does not try another (its per-host policy decides; with
//   none, a dead member fails a third of the calls). The global policy here
//   retries a failed call at once on the next host, as many times as there
//   are other hosts.
// - etcd answers from a member cut off from the others as if nothing were
//   wrong unless the call carries "hasleader" metadata (clientv3's
//   WithRequireLeader): then it refuses calls while it has no leader and
//   cancels open watches within three election timeouts.
// - grpc-js refuses messages over 4 MiB by default; etcd's own client takes
//   any size. Range reads are paged anyway (listLeases), so no single answer
//   has to hold the whole keyspace.
// - etcd3's watch manager reconnects on the same pool at a near-steady rate;
//   the watch (etcd-watch.ts) uses one client per endpoint instead and moves
//   between them itself, with weft's backoff.
import { InterceptingCall, type Interceptor } from '@grpc/grpc-js';
import { GRPCDeadlineExceededError, GRPCUnavailableError, isRecoverableError } from 'etcd3';
import { IPAddr } from '../core/ipnet.js';

export { DEFAULT_KEEPALIVE_TIME_MS, DEFAULT_KEEPALIVE_TIMEOUT_MS } from './etcd-defaults.js';
export const DEFAULT_CALL_TIMEOUT_MS = 5_000;
/** etcd refuses lease grants beyond this (lease.MaxLeaseTTL, in seconds). */
export const ETCD_MAX_LEASE_TTL_SEC = 9_000_000_000;
/** A lease value is a few hundred bytes; anything over this is not one, and is skipped unparsed. */
export const MAX_LEASE_VALUE_BYTES = 64 * 1024;
/**
 * Keys in the first page of a range read, before the keys' size is known: 500
 * flannel leases are ~100 KB.
 */
export const FIRST_PAGE_KEYS = 500;
/**
 * The most keys in one page. etcd 3.4 walks every key left in the range for
 * each page (its count), so small pages cost O(n^2): 65,536 leases took 2.2 s
 * in pages of 500 and 0.75 s in pages of 10,000 (about 2 MB each).
 */
export const PAGE_KEYS = 10_000;
/** The answer size a page aims to stay under (grpc-js's default limit is 4 MiB): later pages are sized from the bytes per key seen. */
export const PAGE_BYTES = 2 * 1024 * 1024;
/**
 * A Network with more subnets than this is listed in LIST_PARTS pieces at
 * once (rangePaged's splits). A paged read in one piece is a relay: etcd
 * reads and encodes a page while the agent waits, then the agent receives
 * and indexes it while etcd waits for the next request. At 65,536 leases
 * that was 0.55 s for about 0.25 s of etcd's work and as much of the agent's.
 */
export const LIST_PARALLEL_SUBNETS = PAGE_KEYS;
export const LIST_PARTS = 4;

/**
 * etcd's "hasleader" metadata (clientv3.WithRequireLeader): a member without
 * a leader refuses the call, and cancels a watch, instead of answering from
 * a store that no longer moves.
 */
export const requireLeader: Interceptor = (options, nextCall) =>
  new InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set('hasleader', 'true');
      next(metadata, listener);
    },
  });

/** Whether an etcd error means this endpoint could not serve the call (another one may), not that the call is wrong. */
export function isEndpointFailure(err: unknown): boolean {
  return err instanceof Error && (isRecoverableError(err) || err instanceof GRPCUnavailableError || err instanceof GRPCDeadlineExceededError || /no leader/i.test(err.message));
}

/** The endpoints given as IP addresses (`host:port`); a hostname is resolved by gRPC, out of our sight. */
export function endpointAddresses(hosts: string[]): IPAddr[] {
  return hosts.flatMap((h) => {
    const ip = IPAddr.parse(h.replace(/:\d+$/, '').replace(/^\[|\]$/g, ''));
    return ip ? [ip] : [];
  });
}
