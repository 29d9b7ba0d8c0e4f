import type { Db } from './db.js';
import type { UserRole } from '../model/actor.js';

/** A user who logs in with a password: a project, a role, and only the password's scrypt hash. */
export interface UserRecord {
  name: string;
  project: string;
  role: UserRole;
  passwordHash: string;
  createdAt: string;
}

interface UserRow { name: string; project: string; role: UserRole; password_hash: string; created_at: string }

const toUser = (r: UserRow): UserRecord => ({ name: r.name, project: r.project, role: r.role, passwordHash: r.password_hash, createdAt: r.created_at });

export class UserRepo {
  constructor(private readonly db: Db) {}

  list(): UserRecord[] {
    return (this.db.prepare('SELECT * FROM users ORDER BY project, name').all() as UserRow[]).map(toUser);
  }

  get(name: string): UserRecord | undefined {
    const row = this.db.prepare('SELECT * FROM users WHERE name = ?').get(name) as UserRow | undefined;
    return row && toUser(row);
  }

  /** false when the name is taken (the primary key settles races between processes). */
  insert(u: UserRecord): boolean {
    return this.db.prepare('INSERT OR IGNORE INTO users (name, project, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(u.name, u.project, u.role, u.passwordHash, u.createdAt).changes === 1;
  }

  setPasswordHash(name: string, hash: string): boolean {
    return this.db.prepare('UPDATE users SET password_hash = ? WHERE name = ?').run(hash, name).changes === 1;
  }

  /** Deletes the user and (ON DELETE CASCADE) every session of theirs. */
  delete(name: string): boolean {
    return this.db.prepare('DELETE FROM users WHERE name = ?').run(name).changes === 1;
  }
}
