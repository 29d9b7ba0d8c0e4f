import type { ErrorCode } from '../model/errors.js';

/** How each KumoError code answers over HTTP. A Record, so a new code cannot be forgotten here. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  INVALID_INPUT: 400,
  NOT_INTERACTIVE: 400,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  IN_USE: 409,
  CANCELLED: 409,
  COMMAND_FAILED: 500,
  LIBVIRT_ERROR: 502,
  HOST_UNREACHABLE: 502,
  MISSING_DEPENDENCY: 503,
  TIMEOUT: 504,
  TOO_BUSY: 429,
  FORBIDDEN: 403,
  // A conflict with the project's current use, like IN_USE: deleting something makes room. 403
  // stays for "your role may not", and every create route declares 409 already.
  QUOTA_EXCEEDED: 409,
  // The server's own storage is full (RFC 4918's Insufficient Storage): not the caller's fault.
  NO_SPACE: 507,
  // Only an operation's wait meets it (its failure, not an answer); the guest is the upstream that failed.
  GUEST_FAILED: 502,
};
