import type { Db } from './db.js';

/** A dashboard session: the sha256 of its cookie, never the cookie itself. */
export interface SessionRecord {
  hash: string;
  user: string;
  /** The value the dashboard sends back in X-Kumo-CSRF with every request that changes something. */
  csrf: string;
  /** Epoch ms. */
  expiresAt: number;
}

interface SessionRow { hash: string; user: string; csrf: string; expires_at: number }

export class SessionRepo {
  constructor(private readonly db: Db) {}

  insert(s: SessionRecord): void {
    this.db.prepare('INSERT INTO sessions (hash, user, csrf, expires_at) VALUES (?, ?, ?, ?)').run(s.hash, s.user, s.csrf, s.expiresAt);
  }

  get(hash: string): SessionRecord | undefined {
    const r = this.db.prepare('SELECT * FROM sessions WHERE hash = ?').get(hash) as SessionRow | undefined;
    return r && { hash: r.hash, user: r.user, csrf: r.csrf, expiresAt: r.expires_at };
  }

  delete(hash: string): void {
    this.db.prepare('DELETE FROM sessions WHERE hash = ?').run(hash);
  }

  /** Forgets every session that has expired by `now`. */
  sweep(now: number): void {
    this.db.prepare('DELETE FROM sessions WHERE expires_at <= ?').run(now);
  }

  deleteOfUser(user: string): void {
    this.db.prepare('DELETE FROM sessions WHERE user = ?').run(user);
  }
}
