import type { Db } from './db.js';
import type { Flavor } from '../model/types.js';

/** A row of the flavors table as SQLite hands it back. */
interface FlavorRow { name: string; vcpus: number; ram_mib: number; disk_gib: number; builtin: number }

export class FlavorRepo {
  constructor(private readonly db: Db) {}

  list(): Flavor[] {
    return (this.db.prepare('SELECT * FROM flavors ORDER BY vcpus, ram_mib, disk_gib, name').all() as FlavorRow[])
      .map(toFlavor);
  }

  get(name: string): Flavor | undefined {
    const row = this.db.prepare('SELECT * FROM flavors WHERE name = ?').get(name) as FlavorRow | undefined;
    return row && toFlavor(row);
  }

  insert(f: Omit<Flavor, 'builtin'>): void {
    this.db.prepare('INSERT INTO flavors (name, vcpus, ram_mib, disk_gib) VALUES (?, ?, ?, ?)')
      .run(f.name, f.vcpus, f.ramMiB, f.diskGiB);
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
