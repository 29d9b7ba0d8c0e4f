import type { Db } from './db.js';
import type { Image } from '../model/types.js';

/** A row of the images table as SQLite hands it back. */
interface ImageRow {
  name: string; os: string; disk: string; format: 'qcow2' | 'raw'; virtual_size: number;
  kernel: string | null; initrd: string | null; cmdline: string | null; ready: string | null; source: string; created_at: string;
}

export class ImageRepo {
  constructor(private readonly db: Db) {}

  /** Every image, or those a project may use: the public ones and its own. */
  list(project?: string): Image[] {
    const rows = project === undefined ? this.db.prepare('SELECT * FROM images ORDER BY created_at, name').all()
      : this.db.prepare('SELECT * FROM images WHERE public = 1 OR project = ? ORDER BY created_at, name').all(project);
    return (rows as ImageRow[]).map(toImage);
  }

  /** Whether a project may use the image: public, or its own. */
  usableBy(name: string, project: string): boolean {
    return this.db.prepare('SELECT 1 FROM images WHERE name = ? AND (public = 1 OR project = ?)').get(name, project) !== undefined;
  }

  /** Whether every project may use the image (Glance's visibility "public"). */
  isPublic(name: string): boolean {
    return this.db.prepare('SELECT 1 FROM images WHERE name = ? AND public = 1').get(name) !== undefined;
  }

  /** The project that owns the image (the one that may change or delete it). */
  owner(name: string): string | undefined {
    return (this.db.prepare('SELECT project FROM images WHERE name = ?').get(name) as { project: string } | undefined)?.project;
  }

  get(name: string): Image | undefined {
    const row = this.db.prepare('SELECT * FROM images WHERE name = ?').get(name) as ImageRow | undefined;
    return row && toImage(row);
  }

  /** Adds or replaces an image; a rebuild (no `ready` of its own) keeps the readiness set for it. */
  upsert(i: Image): void {
    this.db.prepare(`INSERT INTO images (name, os, disk, format, virtual_size, kernel, initrd, cmdline, ready, source, created_at)
      VALUES (@name, @os, @disk, @format, @virtualSizeBytes, @kernel, @initrd, @cmdline, @ready, @source, @createdAt)
      ON CONFLICT(name) DO UPDATE SET os = excluded.os, disk = excluded.disk, format = excluded.format,
        virtual_size = excluded.virtual_size, kernel = excluded.kernel, initrd = excluded.initrd,
        cmdline = excluded.cmdline, ready = COALESCE(excluded.ready, images.ready), source = excluded.source`)
      .run({ ...i, kernel: i.kernel ?? null, initrd: i.initrd ?? null, cmdline: i.cmdline ?? null, ready: i.ready ?? null });
  }

  /** Sets (or with undefined, clears back to the default) how instances of the image are known ready. */
  setReady(name: string, ready: string | undefined): void {
    this.db.prepare('UPDATE images SET ready = ? WHERE name = ?').run(ready ?? null, name);
  }

  delete(name: string): void {
    this.db.prepare('DELETE FROM images WHERE name = ?').run(name);
  }

  usedBy(name: string): string[] {
    return (this.db.prepare('SELECT name FROM instances WHERE image = ? ORDER BY name').all(name) as { name: string }[])
      .map((r) => r.name);
  }
}

const toImage = (r: ImageRow): Image => ({
  name: r.name, os: r.os, disk: r.disk, format: r.format, virtualSizeBytes: r.virtual_size,
  ...(r.kernel ? { kernel: r.kernel } : {}),
  ...(r.initrd ? { initrd: r.initrd } : {}),
  ...(r.cmdline ? { cmdline: r.cmdline } : {}),
  ...(r.ready ? { ready: r.ready } : {}),
  source: r.source, createdAt: r.created_at,
});
