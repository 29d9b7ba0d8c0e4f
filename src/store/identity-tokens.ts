import type { Db } from './db.js';

/** Who an OpenStack (Keystone) token acts as: a kumo user, or a kumo API token by its id. */
export type IdentitySubjectKind = 'user' | 'token';

/** A Keystone token: the sha256 of its text, never the text itself. Times are epoch ms. */
export interface IdentityTokenRecord {
  hash: string;
  subjectKind: IdentitySubjectKind;
  subject: string;
  /** The project it is scoped to: the subject's own, or any for an admin. */
  project: string;
  issuedAt: number;
  expiresAt: number;
}

interface Row { hash: string; subject_kind: IdentitySubjectKind; subject: string; project: string; issued_at: number; expires_at: number }

export class IdentityTokenRepo {
  constructor(private readonly db: Db) {}

  insert(t: IdentityTokenRecord): void {
    this.db.prepare('INSERT INTO identity_tokens (hash, subject_kind, subject, project, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(t.hash, t.subjectKind, t.subject, t.project, t.issuedAt, t.expiresAt);
  }

  get(hash: string): IdentityTokenRecord | undefined {
    const r = this.db.prepare('SELECT * FROM identity_tokens WHERE hash = ?').get(hash) as Row | undefined;
    return r && { hash: r.hash, subjectKind: r.subject_kind, subject: r.subject, project: r.project, issuedAt: r.issued_at, expiresAt: r.expires_at };
  }

  delete(hash: string): void {
    this.db.prepare('DELETE FROM identity_tokens WHERE hash = ?').run(hash);
  }

  /** Forgets every token that has expired by `now`. */
  sweep(now: number): void {
    this.db.prepare('DELETE FROM identity_tokens WHERE expires_at <= ?').run(now);
  }
}
