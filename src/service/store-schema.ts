import { existsSync } from 'node:fs';
import { kumoVersion, paths as defaultPaths, type Paths } from '../config.js';
import { openDb, readSchema, SCHEMA_VERSION } from '../store/db.js';
import { secureHome } from '../drivers/host/private-files.js';
import { homeLayout } from './context.js';

/** Where a store stands against this kumo: what the package's maintainer scripts and an operator ask. */
export interface StoreSchema {
  file: string;
  /** The store's schema; undefined: no store yet. */
  schema?: number;
  /** The kumo that last migrated it, where recorded. */
  migratedBy?: string;
  /** The newest schema this kumo writes. */
  known: number;
  kumo: string;
}

export function storeSchema(p: Paths = defaultPaths()): StoreSchema {
  const found = existsSync(p.db) ? readSchema(p.db) : undefined;
  return { file: p.db, ...(found ?? {}), known: SCHEMA_VERSION, kumo: kumoVersion() };
}

/**
 * Makes KUMO_HOME's folders with the modes of the security model and brings the store to this
 * kumo's schema (a new one is created), touching nothing else: no libvirt, no recovery of an
 * interrupted command (the next ordinary command does that). A newer store is refused unchanged.
 */
export function migrateStore(p: Paths = defaultPaths()): { before?: number; after: StoreSchema } {
  const before = storeSchema(p).schema;
  secureHome(homeLayout(p), { fix: true });
  openDb(p.db, { kumo: kumoVersion() }).close();
  return { ...(before === undefined ? {} : { before }), after: storeSchema(p) };
}
