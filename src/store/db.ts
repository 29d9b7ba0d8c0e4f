import Database from 'better-sqlite3';
import { chmodSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { KumoError } from '../model/errors.js';

/**
 * The intent store: what the user asked for. libvirt stays the truth for what runs;
 * services compare the two on every read.
 *
 * Migrations are append-only: each entry runs once, in order, inside a transaction,
 * and PRAGMA user_version records how far a database has come.
 */
const MIGRATIONS: string[] = [
  `CREATE TABLE flavors (
     name TEXT PRIMARY KEY,
     vcpus INTEGER NOT NULL,
     ram_mib INTEGER NOT NULL,
     disk_gib INTEGER NOT NULL,
     builtin INTEGER NOT NULL DEFAULT 0
   );
   INSERT INTO flavors VALUES ('small', 1, 1024, 10, 1), ('medium', 2, 2048, 20, 1);
   CREATE TABLE images (
     name TEXT PRIMARY KEY,
     os TEXT NOT NULL,
     disk TEXT NOT NULL,
     format TEXT NOT NULL,
     virtual_size INTEGER NOT NULL,
     kernel TEXT, initrd TEXT, cmdline TEXT,
     source TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE TABLE instances (
     name TEXT PRIMARY KEY,
     uuid TEXT NOT NULL UNIQUE,
     host TEXT NOT NULL,
     image TEXT NOT NULL REFERENCES images(name),
     flavor TEXT,
     vcpus INTEGER NOT NULL,
     ram_mib INTEGER NOT NULL,
     disk_gib INTEGER NOT NULL,
     networks TEXT NOT NULL,
     nics TEXT NOT NULL,
     data_disks TEXT NOT NULL,
     password_hash TEXT,
     ssh_keys TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE TABLE journal (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     operation TEXT NOT NULL,
     pid INTEGER NOT NULL,
     undo TEXT NOT NULL,
     started_at TEXT NOT NULL
   );`,
  `CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
  // Host bridges kumo made for a network (bridge/ovs mode, --create-bridge): removed with it.
  `CREATE TABLE network_bridges (network TEXT PRIMARY KEY, bridge TEXT NOT NULL, kind TEXT NOT NULL);`,
  // Data volumes (kumo volume): a qcow2 file each, attached to at most one instance at a
  // libvirt target (vdb, vdc, ...); they outlive the instance (its deletion only detaches them).
  `CREATE TABLE volumes (
     name TEXT PRIMARY KEY,
     size_gib INTEGER NOT NULL,
     file TEXT NOT NULL UNIQUE,
     instance TEXT REFERENCES instances(name) ON DELETE SET NULL,
     target TEXT,
     created_at TEXT NOT NULL
   );
   CREATE UNIQUE INDEX volumes_attachment ON volumes(instance, target) WHERE instance IS NOT NULL;`,
  // Hypervisor hosts (kumo host add). 'local' (this machine's libvirt) is registered on first start.
  `CREATE TABLE hosts (
     name TEXT PRIMARY KEY,
     uri TEXT NOT NULL UNIQUE,
     migration_address TEXT,
     roles TEXT NOT NULL,
     created_at TEXT NOT NULL
   );`,
  // Shared folders served over NFS to instance networks (kumo share).
  `CREATE TABLE shares (
     name TEXT PRIMARY KEY,
     path TEXT NOT NULL,
     networks TEXT NOT NULL,
     read_only INTEGER NOT NULL,
     created_at TEXT NOT NULL
   );`,
  // Hosts get a shell (local, a network namespace, ssh) for commands on the host itself, and
  // nodes without libvirt (storage, lb, edge) need no URI: the table is rebuilt to allow NULL.
  `CREATE TABLE hosts_new (
     name TEXT PRIMARY KEY,
     uri TEXT UNIQUE,
     migration_address TEXT,
     roles TEXT NOT NULL,
     shell TEXT NOT NULL DEFAULT '{"kind":"local"}',
     created_at TEXT NOT NULL
   );
   INSERT INTO hosts_new (name, uri, migration_address, roles, created_at)
     SELECT name, uri, migration_address, roles, created_at FROM hosts;
   DROP TABLE hosts;
   ALTER TABLE hosts_new RENAME TO hosts;
   -- What kumo knows of a bridge-mode network's LAN, which libvirt does not serve: its subnet,
   -- its gateway, and where the DHCP server kumo runs for it (the lab's) writes its leases.
   CREATE TABLE network_subnets (
     network TEXT PRIMARY KEY,
     cidr TEXT NOT NULL,
     gateway TEXT,
     lease_file TEXT
   );`,
  // API bearer tokens (kumo serve, kumo token): only the sha256 of each token is kept; the
  // token itself is shown once when it is made.
  `CREATE TABLE api_tokens (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     hash TEXT NOT NULL UNIQUE,
     created_at TEXT NOT NULL,
     last_used_at TEXT
   );`,
  // Load balancers (kumo lb): HAProxy (+ nginx/ModSecurity) on an lb host; the spec as JSON.
  `CREATE TABLE load_balancers (
     name TEXT PRIMARY KEY,
     host TEXT NOT NULL,
     spec TEXT NOT NULL,
     created_at TEXT NOT NULL
   );`,
  // What each datacenter file made (kumo apply), so destroy removes exactly that.
  `CREATE TABLE datacenter_resources (
     datacenter TEXT NOT NULL,
     kind TEXT NOT NULL,
     name TEXT NOT NULL,
     PRIMARY KEY (kind, name)
   );`,
  // A datacenter file's hosts run DHCP on one of them: the lease file is on that host's
  // filesystem (read through its shell); NULL: on this machine (the lab's).
  'ALTER TABLE network_subnets ADD COLUMN lease_host TEXT;',
  // What apply made each resource from (JSON): destroy removes what was applied, not what
  // today's file would derive. NULL for resources recorded before.
  'ALTER TABLE datacenter_resources ADD COLUMN spec TEXT;',
  // Who did what (service/audit.ts): an API token's name or the local user, never a secret.
  `CREATE TABLE audit_log (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     at TEXT NOT NULL,
     actor TEXT NOT NULL,
     via TEXT NOT NULL,
     action TEXT NOT NULL,
     target TEXT,
     result TEXT NOT NULL,
     detail TEXT
   );`,
  // Users, roles and sessions (issue 15). Tokens act in a project with a role: the ones made
  // before are admins of default, as they were. Users log in with a password (scrypt hash,
  // model/login-password.ts); a dashboard session is kept by the sha256 of its cookie and ends
  // with its user. The audit log names the project each change was made in.
  `ALTER TABLE api_tokens ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
   ALTER TABLE api_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
   CREATE TABLE users (
     name TEXT PRIMARY KEY,
     project TEXT NOT NULL,
     role TEXT NOT NULL CHECK (role IN ('admin', 'member', 'reader')),
     password_hash TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE TABLE sessions (
     hash TEXT PRIMARY KEY,
     user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
     csrf TEXT NOT NULL,
     expires_at INTEGER NOT NULL
   );
   ALTER TABLE audit_log ADD COLUMN project TEXT;`,
  // Projects (issue 15): every resource belongs to one; each may cap what it holds (NULL: no cap).
  // `default` holds everything made before. Images and flavors made before are public. Networks
  // live in libvirt: network_projects records which project a network kumo defined belongs to
  // (a network without a row is default's). No FOREIGN KEY on the added columns: SQLite refuses
  // one with a non-NULL default; the project service refuses to delete a project that holds anything.
  `CREATE TABLE projects (
     name TEXT PRIMARY KEY,
     max_instances INTEGER, max_vcpus INTEGER, max_ram_mib INTEGER, max_disk_gib INTEGER,
     max_volumes INTEGER, max_networks INTEGER, max_shares INTEGER,
     created_at TEXT NOT NULL
   );
   INSERT INTO projects (name, created_at) VALUES ('default', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
   ALTER TABLE instances ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
   ALTER TABLE volumes ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
   ALTER TABLE shares ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
   ALTER TABLE load_balancers ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
   ALTER TABLE datacenter_resources ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
   ALTER TABLE images ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
   ALTER TABLE images ADD COLUMN public INTEGER NOT NULL DEFAULT 1;
   ALTER TABLE flavors ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
   ALTER TABLE flavors ADD COLUMN public INTEGER NOT NULL DEFAULT 1;
   CREATE TABLE network_projects (network TEXT PRIMARY KEY, project TEXT NOT NULL);
   CREATE INDEX instances_project ON instances(project);
   CREATE INDEX volumes_project ON volumes(project);`,
  // How an image's instances are known ready (http:PORT, ssh, cloud-init, agent); NULL: its default.
  'ALTER TABLE images ADD COLUMN ready TEXT;',
  // Keystone tokens of the OpenStack API (issue 16): they expire, and act as their subject does today:
  // a user (password) or a kumo API token (application credential). Only a sha256 is kept.
  `CREATE TABLE identity_tokens (
     hash TEXT PRIMARY KEY,
     subject_kind TEXT NOT NULL CHECK (subject_kind IN ('user', 'token')),
     subject TEXT NOT NULL,
     project TEXT NOT NULL,
     issued_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL
   );`,
  // Nova's keypairs of the OpenStack API (issue 16): ssh public keys a project names at server create.
  `CREATE TABLE keypairs (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     project TEXT NOT NULL,
     name TEXT NOT NULL,
     public_key TEXT NOT NULL,
     fingerprint TEXT NOT NULL,
     type TEXT NOT NULL DEFAULT 'ssh' CHECK (type IN ('ssh', 'x509')),
     created_at TEXT NOT NULL,
     UNIQUE (project, name)
   );`,
  // The name a network's range goes by as Neutron's subnet (issue 16); none: the network's own name.
  'CREATE TABLE subnet_names (network TEXT PRIMARY KEY, name TEXT NOT NULL);',
  // Host failure (issue 18): instances marked highly available, each host's fence (NULL: the
  // default, the lab's own for a lab hypervisor, else none), and each host's HA story.
  `ALTER TABLE instances ADD COLUMN ha INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE hosts ADD COLUMN fence TEXT;
   CREATE TABLE host_ha (
     host TEXT PRIMARY KEY,
     state TEXT NOT NULL CHECK (state IN ('up', 'down', 'fenced', 'unfenced')),
     down_at TEXT,
     fenced_at TEXT,
     rejoined_at TEXT,
     fence_error TEXT,
     moved TEXT NOT NULL DEFAULT '[]'
   );`,
  // The API request an entry came from: the id its answer's X-Request-Id and the server log have.
  `ALTER TABLE audit_log ADD COLUMN request_id TEXT;`,
];

export type Db = Database.Database;

/** The schema this kumo writes: a store at a higher user_version was made by a newer kumo. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** The settings row naming the kumo that last migrated the store (for the refusal of an older one). */
const WRITTEN_BY = 'store.migrated_by';

/** `kumo`: the version of the kumo opening the store, recorded when it migrates it. */
export function openDb(file: string, opts: { kumo?: string } = {}): Db {
  mkdirSync(dirname(file), { recursive: true });
  closeDbFiles(file);
  const db = new Database(file);
  try {
    db.pragma('busy_timeout = 5000');
    refuseNewer(db, file, opts.kumo);
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    migrate(db, opts.kumo);
  } catch (e) {
    db.close();
    throw e;
  }
  return db;
}

/**
 * An older kumo must not write to a store a newer one migrated: it would not know the newer
 * tables and columns, and would lose what is in them. Refused before anything is written.
 */
function refuseNewer(db: Db, file: string, kumo: string | undefined): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version <= SCHEMA_VERSION) return;
  let by: string | undefined;
  try {
    by = (db.prepare('SELECT value FROM settings WHERE key = ?').get(WRITTEN_BY) as { value: string } | undefined)?.value;
  } catch { /* a store without the row: the version stays unnamed */ }
  throw new KumoError('COMMAND_FAILED',
    `the store ${file} is at schema ${version}${by ? `, migrated by kumo ${by}` : ''}; this kumo${kumo ? ` (${kumo})` : ''} knows schemas up to ${SCHEMA_VERSION} and would lose data written by the newer one`,
    `run the newer kumo${by ? ` (${by} or later)` : ''} again, e.g. reinstall its package; kumo changed nothing in the store`);
}

/**
 * Every root password hash and API token digest is in here: the file is 0600 from its first
 * byte (an empty file is an empty SQLite database), and SQLite gives the -wal and -shm files it
 * creates the database file's mode. Files of an older install are closed here too.
 */
function closeDbFiles(file: string): void {
  try {
    writeFileSync(file, '', { flag: 'wx', mode: 0o600 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    try {
      if (statSync(f).mode & 0o077) chmodSync(f, 0o600);
    } catch { /* no such file yet */ }
  }
}

function migrate(db: Db, kumo: string | undefined): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  for (let i = version; i < MIGRATIONS.length; i++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[i]!);
      db.pragma(`user_version = ${i + 1}`);
    })();
  }
  if (kumo !== undefined && version < MIGRATIONS.length) {
    db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(WRITTEN_BY, kumo);
  }
}

/** A store's schema and the kumo that last migrated it, read without changing anything; undefined: no store there. */
export function readSchema(file: string): { schema: number; migratedBy?: string } | undefined {
  let db: Db;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (e) {
    if ((e as { code?: string }).code === 'SQLITE_CANTOPEN') return undefined;
    throw e;
  }
  try {
    db.pragma('busy_timeout = 5000');
    const schema = db.pragma('user_version', { simple: true }) as number;
    let migratedBy: string | undefined;
    try {
      migratedBy = (db.prepare('SELECT value FROM settings WHERE key = ?').get(WRITTEN_BY) as { value: string } | undefined)?.value;
    } catch { /* an empty store has no settings table yet */ }
    return migratedBy === undefined ? { schema } : { schema, migratedBy };
  } finally {
    db.close();
  }
}
