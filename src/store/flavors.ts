import type { Db } from './db.js';
import type { Flavor } from '../model/types.js';

/** A row of the flavors table as SQLite hands it back. */
interface FlavorRow { name: string; vcpus: number; ram_mib: number; disk_gib: number; builtin: number }

export class FlavorRepo {
  constructor(private readonly db: Db) {}

  /** Every flavor, or those a project may use: the public ones and its own. */
  list(project?: string): Flavor[] {
    const rows = project === undefined ? this.db.prepare('SELECT * FROM flavors ORDER BY vcpus, ram_mib, disk_gib, name').all()
      : this.db.prepare('SELECT * FROM flavors WHERE public = 1 OR project = ? ORDER BY vcpus, ram_mib, disk_gib, name').all(project);
    return (rows as FlavorRow[]).map(toFlavor);
  }

  /** Whether a project may use the flavor: public, or its own. */
  usableBy(name: string, project: string): boolean {
    return this.db.prepare('SELECT 1 FROM flavors WHERE name = ? AND (public = 1 OR project = ?)').get(name, project) !== undefined;
  }

  owner(name: string): string | undefined {
    return (this.db.prepare('SELECT project FROM flavors WHERE name = ?').get(name) as { project: string } | undefined)?.project;
  }

  get(name: string): Flavor | undefined {
    const row = this.db.prepare('SELECT * FROM flavors WHERE name = ?').get(name) as FlavorRow | undefined;
    return row && toFlavor(row);
  }

  /** `owner`: the project it belongs to and whether every project may use it (default: default's, public). */
  insert(f: Omit<Flavor, 'builtin'>, owner: { project: string; public: boolean } = { project: 'default', public: true }): void {
    this.db.prepare('INSERT INTO flavors (name, vcpus, ram_mib, disk_gib, project, public) VALUES (?, ?, ?, ?, ?, ?)')
      .run(f.name, f.vcpus, f.ramMiB, f.diskGiB, owner.project, owner.public ? 1 : 0);
  }

  /** New sizes for a flavor, in one statement: it is never missing in between. */
  update(f: Omit<Flavor, 'builtin'>): void {
    this.db.prepare('UPDATE flavors SET vcpus = ?, ram_mib = ?, disk_gib = ? WHERE name = ?').run(f.vcpus, f.ramMiB, f.diskGiB, f.name);
  }

  delete(name: string): void {
    this.db.prepare('DELETE FROM flavors WHERE name = ?').run(name);
  }
}

const toFlavor = (r: FlavorRow): Flavor =>
  ({ name: r.name, vcpus: r.vcpus, ramMiB: r.ram_mib, diskGiB: r.disk_gib, builtin: r.builtin === 1 });
