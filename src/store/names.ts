import Database from 'better-sqlite3';
import type { NameKind } from '../model/name-kinds.js';

/**
 * The names of one kind in the store, for shell completion. Networks live in libvirt; the store
 * knows those kumo defined (their project, bridge or subnet rows) and the built-in ones.
 */
const QUERIES: Record<NameKind, string> = {
  instance: 'SELECT name FROM instances',
  image: 'SELECT name FROM images',
  flavor: 'SELECT name FROM flavors',
  network: `SELECT network AS name FROM network_projects UNION SELECT network FROM network_bridges
    UNION SELECT network FROM network_subnets UNION SELECT 'default'`,
  host: 'SELECT name FROM hosts',
  volume: 'SELECT name FROM volumes',
  share: 'SELECT name FROM shares',
  lb: 'SELECT name FROM load_balancers',
  project: 'SELECT name FROM projects',
  user: 'SELECT name FROM users',
};

/** At most this many: a shell shows no more usefully, and a TAB must stay quick. */
const LIMIT = 500;

/**
 * Names of `kind` that begin with `prefix`, read through a read-only connection: nothing is
 * created, migrated or recovered (a missing or unreadable store throws; the caller stays silent).
 */
export function namesInStore(dbFile: string, kind: NameKind, prefix: string): string[] {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    // substr, not LIKE: a prefix holding % or _ is matched as typed.
    const rows = db.prepare(`SELECT name FROM (${QUERIES[kind]}) WHERE substr(name, 1, ?) = ? ORDER BY name LIMIT ${LIMIT}`)
      .all(prefix.length, prefix) as { name: string }[];
    return rows.map((r) => r.name);
  } finally {
    db.close();
  }
}
