import type { Db } from './db.js';

export interface ShareRecord {
  name: string;
  /** The folder on the storage host that is exported. */
  path: string;
  /** kumo networks whose instances may mount it (and only they). */
  networks: string[];
  readOnly: boolean;
  createdAt: string;
  /** The project it belongs to (its quotas count it). */
  project: string;
}

interface ShareRow { name: string; path: string; networks: string; read_only: number; created_at: string; project: string }

const toShare = (r: ShareRow): ShareRecord => ({
  name: r.name, path: r.path, networks: JSON.parse(r.networks) as string[], readOnly: r.read_only === 1, createdAt: r.created_at, project: r.project,
});

export class ShareRepo {
  constructor(private readonly db: Db) {}

  /** Every share, or a project's only. */
  list(project?: string): ShareRecord[] {
    const rows = project === undefined ? this.db.prepare('SELECT * FROM shares ORDER BY name').all()
      : this.db.prepare('SELECT * FROM shares WHERE project = ? ORDER BY name').all(project);
    return (rows as ShareRow[]).map(toShare);
  }

  get(name: string): ShareRecord | undefined {
    const row = this.db.prepare('SELECT * FROM shares WHERE name = ?').get(name) as ShareRow | undefined;
    return row && toShare(row);
  }

  insert(s: ShareRecord): void {
    this.db.prepare('INSERT INTO shares (name, path, networks, read_only, created_at, project) VALUES (?, ?, ?, ?, ?, ?)')
      .run(s.name, s.path, JSON.stringify(s.networks), s.readOnly ? 1 : 0, s.createdAt, s.project);
  }

  delete(name: string): void {
    this.db.prepare('DELETE FROM shares WHERE name = ?').run(name);
  }
}
