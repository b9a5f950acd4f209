// The etcd client's defaults, in a module that loads nothing: the CLI's flag
// definitions show them in --help without loading etcd3 or gRPC.

/** Near etcd's own clients (etcdctl pings every 2 s and waits 6 s; etcd accepts pings every 5 s at most). */
export const DEFAULT_KEEPALIVE_TIME_MS = 10_000;
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 5_000;
