import type { Db } from './db.js';
import type { UserRole } from '../model/actor.js';

/** An API token as kumo keeps it: never the token itself, only its sha256. */
export interface TokenRecord {
  /** A short public id, to name a token in `kumo token list|revoke` without its secret. */
  id: string;
  name: string;
  /** Hex sha256 of the whole token string. */
  hash: string;
  /** The project it acts in, with its role (tokens made before projects: admin of default). */
  project: string;
  role: UserRole;
  createdAt: string;
  lastUsedAt?: string;
}

interface TokenRow { id: string; name: string; hash: string; project: string; role: UserRole; created_at: string; last_used_at: string | null }

const toToken = (r: TokenRow): TokenRecord => ({
  id: r.id, name: r.name, hash: r.hash, project: r.project, role: r.role, createdAt: r.created_at,
  ...(r.last_used_at ? { lastUsedAt: r.last_used_at } : {}),
});

export class TokenRepo {
  constructor(private readonly db: Db) {}

  list(): TokenRecord[] {
    return (this.db.prepare('SELECT * FROM api_tokens ORDER BY created_at, name').all() as TokenRow[]).map(toToken);
  }

  byId(id: string): TokenRecord | undefined {
    const row = this.db.prepare('SELECT * FROM api_tokens WHERE id = ?').get(id) as TokenRow | undefined;
    return row && toToken(row);
  }

  byName(name: string): TokenRecord | undefined {
    const row = this.db.prepare('SELECT * FROM api_tokens WHERE name = ?').get(name) as TokenRow | undefined;
    return row && toToken(row);
  }

  byHash(hash: string): TokenRecord | undefined {
    const row = this.db.prepare('SELECT * FROM api_tokens WHERE hash = ?').get(hash) as TokenRow | undefined;
    return row && toToken(row);
  }

  /** false when the name is taken (the UNIQUE constraint settles races between processes). */
  insert(t: TokenRecord): boolean {
    const r = this.db.prepare('INSERT OR IGNORE INTO api_tokens (id, name, hash, project, role, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(t.id, t.name, t.hash, t.project, t.role, t.createdAt);
    return r.changes === 1;
  }

  touch(id: string, at: string): void {
    this.db.prepare('UPDATE api_tokens SET last_used_at = ? WHERE id = ?').run(at, id);
  }

  delete(id: string): void {
    this.db.prepare('DELETE FROM api_tokens WHERE id = ?').run(id);
  }

  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM api_tokens').get() as { n: number }).n;
  }
}
