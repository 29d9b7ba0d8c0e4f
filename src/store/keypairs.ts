import type { Db } from './db.js';

/** An ssh public key a project keeps under a name (Nova's keypair): servers are made with it. */
export interface KeypairRecord {
  /** The row's number: Nova 2.1 shows keypairs with an integer id. */
  id: number;
  project: string;
  name: string;
  publicKey: string;
  /** MD5 of the key's blob, colon-separated hex, as Nova shows it. */
  fingerprint: string;
  type: 'ssh' | 'x509';
  createdAt: string;
}

interface KeypairRow { id: number; project: string; name: string; public_key: string; fingerprint: string; type: 'ssh' | 'x509'; created_at: string }

const toKeypair = (r: KeypairRow): KeypairRecord => ({
  id: r.id, project: r.project, name: r.name, publicKey: r.public_key, fingerprint: r.fingerprint, type: r.type, createdAt: r.created_at,
});

export class KeypairRepo {
  constructor(private readonly db: Db) {}

  list(project: string): KeypairRecord[] {
    return (this.db.prepare('SELECT * FROM keypairs WHERE project = ? ORDER BY name').all(project) as KeypairRow[]).map(toKeypair);
  }

  get(project: string, name: string): KeypairRecord | undefined {
    const row = this.db.prepare('SELECT * FROM keypairs WHERE project = ? AND name = ?').get(project, name) as KeypairRow | undefined;
    return row && toKeypair(row);
  }

  /** false when the project has a keypair of that name (the UNIQUE constraint settles races between processes). */
  insert(k: Omit<KeypairRecord, 'id'>): boolean {
    const r = this.db.prepare('INSERT OR IGNORE INTO keypairs (project, name, public_key, fingerprint, type, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(k.project, k.name, k.publicKey, k.fingerprint, k.type, k.createdAt);
    return r.changes === 1;
  }

  /** false when there was none. */
  delete(project: string, name: string): boolean {
    return this.db.prepare('DELETE FROM keypairs WHERE project = ? AND name = ?').run(project, name).changes === 1;
  }
}
