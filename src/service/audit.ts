import { userInfo } from 'node:os';
import { kumoVersion, paths as defaultPaths, type Paths } from '../config.js';
import { openDb } from '../store/db.js';
import { AuditRepo, type AuditEntry } from '../store/audit.js';
import { invalid } from '../model/errors.js';
import type { Context } from './context.js';

export type { AuditEntry };

/** What a face records: everything but the id and the time, which the log gives. */
export type AuditRecord = Omit<AuditEntry, 'id' | 'at'>;

/** How many entries the log keeps (the oldest go first). */
const KEEP_ENTRIES = 100_000;
/** The longest detail kept: enough for a command's first lines of stderr, not a whole log. */
const MAX_DETAIL = 2000;
/** A target is a resource's name; anything longer is not one (and might be a body pasted where a name goes). */
const MAX_TARGET = 200;

/** Caps a record's free text. Faces pass only names and codes, never bodies: nothing here can hold a password or a token. */
const bounded = (r: AuditRecord): AuditRecord => ({
  ...r,
  ...(r.target !== undefined ? { target: r.target.slice(0, MAX_TARGET) } : {}),
  ...(r.detail !== undefined ? { detail: r.detail.slice(0, MAX_DETAIL) } : {}),
});

/**
 * The audit log: who (an API token, or the local user running the CLI) did what to which
 * resource, and how it ended. Written by the faces' dispatch (the API's onResponse hook, the
 * CLI's main) so no use case can forget it; read with `kumo audit` and GET /api/v1/audit.
 * It never holds a secret: actions are route patterns or command names, targets are resource
 * names, never request bodies (passwords, user-data, tokens).
 */
export class AuditService {
  private readonly repo: AuditRepo;

  constructor(ctx: Pick<Context, 'db'>) {
    this.repo = new AuditRepo(ctx.db);
  }

  record(r: AuditRecord): void {
    const id = this.repo.insert({ ...bounded(r), at: new Date().toISOString() });
    // Bounded like the rest: a token hammering the API must not fill the disk through the log.
    if (id % 1000 === 0) this.repo.prune(id, KEEP_ENTRIES);
  }

  recent(limit = 50): AuditEntry[] {
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw invalid(`the limit must be a whole number from 1 to 10000, not ${limit}`, 'e.g. --limit 100');
    return this.repo.recent(limit);
  }
}

/** The local user a CLI command runs as: "user:NAME(uid N)". */
export function localActor(): string {
  const u = userInfo();
  return `user:${u.username}(uid ${u.uid})`;
}

/**
 * Records one CLI command when the command did not open a context (it failed before): opens
 * the store for this line alone. Errors here must never hide the command's own outcome.
 */
export function recordStandalone(r: AuditRecord, p: Paths = defaultPaths()): void {
  const db = openDb(p.db, { kumo: kumoVersion() });
  try {
    new AuditService({ db }).record(r);
  } finally {
    db.close();
  }
}
