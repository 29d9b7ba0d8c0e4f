import type { Statement } from 'better-sqlite3';
import type { Db } from './db.js';

/**
 * A mark that differs whenever the store may have changed since it was last taken: SQLite's
 * `PRAGMA data_version` (changes when ANOTHER connection commits, e.g. a `kumo` CLI command
 * writing while `kumo serve` runs) with `total_changes()` (every row this connection itself
 * wrote). Two statements of a few microseconds: cheap enough to take on every request. It may
 * change when nothing a reader cares about did (any table's write counts); it never stays the
 * same across a committed write.
 */
export function storeChangeMark(db: Db): string {
  let s = statements.get(db);
  if (!s) {
    s = { others: db.prepare('PRAGMA data_version').pluck(), mine: db.prepare('SELECT total_changes()').pluck() };
    statements.set(db, s);
  }
  return `${String(s.others.get())}/${String(s.mine.get())}`;
}

const statements = new WeakMap<Db, { others: Statement; mine: Statement }>();
