import type { Db } from './db.js';

/** One line of the audit log: who did what, to what, and how it ended. */
export interface AuditEntry {
  id: number;
  at: string;
  /** An API token ("token:NAME"), a dashboard user ("login:NAME") or the local user ("user:NAME(uid N)"). */
  actor: string;
  /** The project the change was made in (API requests); absent for the machine's own commands. */
  project?: string;
  via: 'api' | 'cli' | 'operation';
  /** API: "METHOD /route/:pattern"; CLI: the command path ("instance create"); operation: its kind. */
  action: string;
  target?: string;
  /** "ok", or the error code it ended with. */
  result: string;
  /** The server-side detail of a failure the caller was not shown (publicError), for the operator. */
  detail?: string;
  /** API requests: the id of the request (its answer's X-Request-Id, the server log's reqId). */
  requestId?: string;
}

interface AuditRow { id: number; at: string; actor: string; project: string | null; via: AuditEntry['via']; action: string; target: string | null; result: string; detail: string | null; request_id: string | null }

const toEntry = (r: AuditRow): AuditEntry => ({
  id: r.id, at: r.at, actor: r.actor, ...(r.project !== null ? { project: r.project } : {}), via: r.via, action: r.action,
  ...(r.target !== null ? { target: r.target } : {}), result: r.result, ...(r.detail !== null ? { detail: r.detail } : {}),
  ...(r.request_id !== null ? { requestId: r.request_id } : {}),
});

export class AuditRepo {
  constructor(private readonly db: Db) {}

  /** Adds an entry; returns its id. */
  insert(e: Omit<AuditEntry, 'id'>): number {
    return Number(this.db.prepare('INSERT INTO audit_log (at, actor, project, via, action, target, result, detail, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(e.at, e.actor, e.project ?? null, e.via, e.action, e.target ?? null, e.result, e.detail ?? null, e.requestId ?? null).lastInsertRowid);
  }

  /** Forgets the entries more than `keep` older than entry `newest`. */
  prune(newest: number, keep: number): void {
    this.db.prepare('DELETE FROM audit_log WHERE id <= ?').run(newest - keep);
  }

  /** The newest `limit` entries, newest first. */
  recent(limit: number): AuditEntry[] {
    return (this.db.prepare('SELECT * FROM audit_log ORDER BY id DESC LIMIT ?').all(limit) as AuditRow[]).map(toEntry);
  }
}
