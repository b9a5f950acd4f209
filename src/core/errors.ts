// One error type for every failure a person can act on. Its kind decides the
// exit code (mapped in one place, exitCodeOf) and says the message is meant
// for the user: a WeftError is printed as one line, never with a stack.
// Anything else that reaches the top is a bug in weft, and is reported as one.

/**
 *   usage        a mistake on the command line or in the options file (exit 2)
 *   config       the network config in etcd or a file is invalid (exit 1)
 *   unavailable  nothing to talk to: no agent on the status socket, no pinned
 *                maps, etcd unreachable (exit 3)
 *   failed       an operation failed for a reason the message explains:
 *                out of subnets, the lease taken over, a kernel call (exit 1)
 */
export type ErrorKind = 'usage' | 'config' | 'unavailable' | 'failed';

/** Exit codes of every weft command (README, "Inspecting a host"). */
export const EXIT = { ok: 0, failed: 1, usage: 2, unavailable: 3 } as const;

const EXIT_OF: Record<ErrorKind, number> = { usage: EXIT.usage, config: EXIT.failed, unavailable: EXIT.unavailable, failed: EXIT.failed };

export interface ErrorSubject {
  /** The flag or config field the error concerns, e.g. "--healthz-port" or "Backend.Type". */
  field?: string;
  /** The file it concerns, e.g. the subnet file or a TLS certificate. */
  file?: string;
}

export class WeftError extends Error {
  override readonly name = 'WeftError';

  constructor(
    message: string,
    readonly kind: ErrorKind = 'failed',
    readonly subject: ErrorSubject = {},
  ) {
    super(message);
  }

  get exitCode(): number {
    return EXIT_OF[this.kind];
  }
}

export function usageError(message: string, field?: string): WeftError {
  return new WeftError(message, 'usage', field ? { field } : {});
}

/** A network config problem, named by its JSON field: "invalid network config: SubnetLen: ...". */
export function configError(field: string, reason: string): WeftError {
  return new WeftError(`invalid network config: ${field}: ${reason}`, 'config', { field });
}

export function isWeftError(err: unknown, kind?: ErrorKind): err is WeftError {
  return err instanceof WeftError && (kind === undefined || err.kind === kind);
}

/** The one place an error becomes an exit code. */
export function exitCodeOf(err: unknown): number {
  return err instanceof WeftError ? err.exitCode : EXIT.failed;
}

/** errno code of a Node or addon error (ENOENT, EPERM ...), if it has one. */
export function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
