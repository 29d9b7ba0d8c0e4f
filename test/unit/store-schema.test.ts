import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDb, readSchema, SCHEMA_VERSION } from '../../src/store/db.js';
import { KumoError } from '../../src/model/errors.js';

/** An older kumo never writes to a store a newer kumo migrated (upgrades keep data; downgrades are refused). */

test('a new store records its schema and the kumo that made it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-schema-'));
  try {
    const file = join(dir, 'kumo.db');
    assert.equal(readSchema(file), undefined);
    openDb(file, { kumo: '1.2.3' }).close();
    assert.deepEqual(readSchema(file), { schema: SCHEMA_VERSION, migratedBy: '1.2.3' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a store at a newer schema is refused unchanged, naming both versions and the fix', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-schema-'));
  try {
    const file = join(dir, 'kumo.db');
    openDb(file, { kumo: '1.2.3' }).close();
    const db = new Database(file);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.prepare("UPDATE settings SET value = '9.9.9' WHERE key = 'store.migrated_by'").run();
    db.close();
    const before = await readFile(file);
    assert.throws(() => openDb(file, { kumo: '1.2.3' }), (e: unknown) => e instanceof KumoError
      && e.message.includes(`is at schema ${SCHEMA_VERSION + 1}, migrated by kumo 9.9.9; this kumo (1.2.3) knows schemas up to ${SCHEMA_VERSION}`)
      && /9\.9\.9 or later/.test(e.fix ?? ''));
    assert.deepEqual(await readFile(file), before);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
