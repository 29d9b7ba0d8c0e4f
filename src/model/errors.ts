/**
 * Every failure a user can see is a KumoError: a stable code for scripts and the API,
 * a sentence a person understands, and where possible the command that fixes it.
 */
export type ErrorCode =
  | 'INVALID_INPUT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'IN_USE'
  | 'MISSING_DEPENDENCY'
  | 'COMMAND_FAILED'
  | 'LIBVIRT_ERROR'
  | 'HOST_UNREACHABLE'
  | 'NOT_INTERACTIVE'
  | 'CANCELLED'
  | 'TIMEOUT'
  /** Too much long work runs already (the API's cap on concurrent operations): try again later. */
  | 'TOO_BUSY'
  /** The actor's role may not do this (a non-admin asking for an admin's use case). */
  | 'FORBIDDEN'
  /** The project's quota has no room for what a create needs: make room, or an admin raises it. */
  | 'QUOTA_EXCEEDED'
  /** The filesystem under KUMO_HOME (disks, seeds, the store) is full: free space or grow it, then retry. */
  | 'NO_SPACE'
  /** The guest said it failed while coming up (cloud-init's errors, a kernel panic): its own words, for its owner. */
  | 'GUEST_FAILED';

export class KumoError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly fix?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'KumoError';
  }

  /** The text a CLI user sees: the problem, then how to fix it. */
  describe(): string {
    return this.fix ? `${this.message}\n  fix: ${this.fix}` : this.message;
  }
}

export const invalid = (message: string, fix?: string) => new KumoError('INVALID_INPUT', message, fix);
export const notFound = (message: string, fix?: string) => new KumoError('NOT_FOUND', message, fix);
export const forbidden = (message: string, fix?: string) => new KumoError('FORBIDDEN', message, fix);

/**
 * What a remote caller (an API token) may be told about a failure. Refusals of the caller's
 * request (invalid input, not found, conflict, a host down...) are theirs to read, word for
 * word. COMMAND_FAILED is not: its message carries the argument list and stderr of a command
 * kumo ran as root (paths, addresses, other tenants' names), which is the operator's business.
 * It and anything not a KumoError (a bug) answer a stable code, a short sentence and an id
 * under which the server's log (and the audit log) keeps the detail. The CLI, run by root on
 * the machine, still prints everything.
 */
export interface PublicError {
  code: string;
  message: string;
  fix?: string;
  /** Set when the detail was withheld: the id the server log has it under. */
  withheldUnder?: string;
}

export function publicError(e: unknown, id: string, what = 'request'): PublicError {
  if (e instanceof KumoError && e.code !== 'COMMAND_FAILED') return { code: e.code, message: e.message, ...(e.fix ? { fix: e.fix } : {}) };
  if (e instanceof KumoError) {
    return { code: e.code, message: `a command kumo ran on a host failed (${what} ${id})`,
      fix: `the server log has the command and its output under ${what} id ${id}`, withheldUnder: id };
  }
  return { code: 'INTERNAL', message: `internal error (${what} ${id})`,
    fix: `this is a bug in kumo; the server log has the details under ${what} id ${id}`, withheldUnder: id };
}
