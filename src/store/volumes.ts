import type { Db } from './db.js';

interface VolumeRow {
  name: string; size_gib: number; file: string; instance: string | null; target: string | null; created_at: string; project: string;
}

/** What kumo recorded about a data volume: its size, its file and where the user attached it. */
export interface VolumeRecord {
  name: string;
  sizeGiB: number;
  file: string;
  /** The instance it is attached to, and the libvirt target (vdb, vdc, ...) it was given there. */
  instance?: string;
  target?: string;
  createdAt: string;
  /** The project it belongs to (its quotas count it). */
  project: string;
}

export class VolumeRepo {
  constructor(private readonly db: Db) {}

  /** Every volume, or a project's only. */
  list(project?: string): VolumeRecord[] {
    const rows = project === undefined ? this.db.prepare('SELECT * FROM volumes ORDER BY name').all()
      : this.db.prepare('SELECT * FROM volumes WHERE project = ? ORDER BY name').all(project);
    return (rows as VolumeRow[]).map(toVolume);
  }

  get(name: string): VolumeRecord | undefined {
    const row = this.db.prepare('SELECT * FROM volumes WHERE name = ?').get(name) as VolumeRow | undefined;
    return row && toVolume(row);
  }

  attachedTo(instance: string): VolumeRecord[] {
    return (this.db.prepare('SELECT * FROM volumes WHERE instance = ? ORDER BY target').all(instance) as VolumeRow[])
      .map(toVolume);
  }

  /** Records a new volume; false when the name is taken (another kumo may have just made it). */
  insert(v: Omit<VolumeRecord, 'instance' | 'target'>): boolean {
    const info = this.db.prepare(`INSERT INTO volumes (name, size_gib, file, created_at, project) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT DO NOTHING`).run(v.name, v.sizeGiB, v.file, v.createdAt, v.project);
    return info.changes === 1;
  }

  /**
   * Marks a detached volume as attached at instance/target. false when it is attached already
   * or the target is taken on that instance: the check and the claim are one statement, so
   * two kumo processes can never attach the same volume twice.
   */
  claim(name: string, instance: string, target: string): boolean {
    const info = this.db.prepare(`UPDATE OR IGNORE volumes SET instance = ?, target = ?
      WHERE name = ? AND instance IS NULL`).run(instance, target, name);
    return info.changes === 1;
  }

  release(name: string): void {
    this.db.prepare('UPDATE volumes SET instance = NULL, target = NULL WHERE name = ?').run(name);
  }

  /** Detaches (in the store) every volume of an instance; returns their names. */
  releaseAll(instance: string): string[] {
    return this.db.transaction(() => {
      const names = this.attachedTo(instance).map((v) => v.name);
      this.db.prepare('UPDATE volumes SET instance = NULL, target = NULL WHERE instance = ?').run(instance);
      return names;
    })();
  }

  updateSize(name: string, sizeGiB: number): void {
    this.db.prepare('UPDATE volumes SET size_gib = ? WHERE name = ?').run(sizeGiB, name);
  }

  delete(name: string): void {
    this.db.prepare('DELETE FROM volumes WHERE name = ?').run(name);
  }
}

const toVolume = (r: VolumeRow): VolumeRecord => ({
  name: r.name, sizeGiB: r.size_gib, file: r.file,
  ...(r.instance ? { instance: r.instance, ...(r.target ? { target: r.target } : {}) } : {}),
  createdAt: r.created_at,
  project: r.project,
});
