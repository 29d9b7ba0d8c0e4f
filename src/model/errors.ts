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
  | 'TIMEOUT';

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
