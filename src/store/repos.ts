import type { Db } from './db.js';
import type { Flavor, Image, InstanceSpec, NicInfo } from '../model/types.js';

/** Row shapes as SQLite hands them back. */
interface FlavorRow { name: string; vcpus: number; ram_mib: number; disk_gib: number; builtin: number }
interface ImageRow {
  name: string; os: string; disk: string; format: 'qcow2' | 'raw'; virtual_size: number;
  kernel: string | null; initrd: string | null; cmdline: string | null; source: string; created_at: string;
}
interface InstanceRow {
  name: string; uuid: string; host: string; image: string; flavor: string | null;
  vcpus: number; ram_mib: number; disk_gib: number; networks: string; nics: string;
  data_disks: string; password_hash: string | null; ssh_keys: string; created_at: string;
}

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

  delete(name: string): void {
    this.db.prepare('DELETE FROM flavors WHERE name = ?').run(name);
  }
}

const toFlavor = (r: FlavorRow): Flavor =>
  ({ name: r.name, vcpus: r.vcpus, ramMiB: r.ram_mib, diskGiB: r.disk_gib, builtin: r.builtin === 1 });

export class ImageRepo {
  constructor(private readonly db: Db) {}

  list(): Image[] {
    return (this.db.prepare('SELECT * FROM images ORDER BY created_at, name').all() as ImageRow[]).map(toImage);
  }

  get(name: string): Image | undefined {
    const row = this.db.prepare('SELECT * FROM images WHERE name = ?').get(name) as ImageRow | undefined;
    return row && toImage(row);
  }

  upsert(i: Image): void {
    this.db.prepare(`INSERT INTO images (name, os, disk, format, virtual_size, kernel, initrd, cmdline, source, created_at)
      VALUES (@name, @os, @disk, @format, @virtualSizeBytes, @kernel, @initrd, @cmdline, @source, @createdAt)
      ON CONFLICT(name) DO UPDATE SET os = excluded.os, disk = excluded.disk, format = excluded.format,
        virtual_size = excluded.virtual_size, kernel = excluded.kernel, initrd = excluded.initrd,
        cmdline = excluded.cmdline, source = excluded.source`)
      .run({ ...i, kernel: i.kernel ?? null, initrd: i.initrd ?? null, cmdline: i.cmdline ?? null });
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
  source: r.source, createdAt: r.created_at,
});

/** What kumo recorded about an instance when it made it. */
export interface InstanceRecord extends InstanceSpec {
  uuid: string;
  host: string;
  nics: Omit<NicInfo, 'ipv4'>[];
  createdAt: string;
}

export class InstanceRepo {
  constructor(private readonly db: Db) {}

  list(): InstanceRecord[] {
    return (this.db.prepare('SELECT * FROM instances ORDER BY name').all() as InstanceRow[]).map(toInstance);
  }

  get(name: string): InstanceRecord | undefined {
    const row = this.db.prepare('SELECT * FROM instances WHERE name = ?').get(name) as InstanceRow | undefined;
    return row && toInstance(row);
  }

  insert(r: InstanceRecord): void {
    this.db.prepare(`INSERT INTO instances (name, uuid, host, image, flavor, vcpus, ram_mib, disk_gib, networks, nics,
        data_disks, password_hash, ssh_keys, created_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(r.name, r.uuid, r.host, r.image, r.flavor ?? null, r.vcpus, r.ramMiB, r.diskGiB,
        JSON.stringify(r.networks), JSON.stringify(r.nics), JSON.stringify(r.dataDisks),
        r.passwordHash ?? null, JSON.stringify(r.sshKeys), r.createdAt);
  }

  /** Records a grown root disk, and the flavor the sizes still match (none: a custom size). */
  /** After a live migration libvirt confirmed: the instance now lives on `host`. */
  updateHost(name: string, host: string): void {
    this.db.prepare('UPDATE instances SET host = ? WHERE name = ?').run(host, name);
  }

  updateDiskSize(name: string, diskGiB: number, flavor?: string): void {
    this.db.prepare('UPDATE instances SET disk_gib = ?, flavor = ? WHERE name = ?').run(diskGiB, flavor ?? null, name);
  }

  delete(name: string): void {
    this.db.prepare('DELETE FROM instances WHERE name = ?').run(name);
  }
}

const toInstance = (r: InstanceRow): InstanceRecord => ({
  name: r.name, uuid: r.uuid, host: r.host, image: r.image,
  ...(r.flavor ? { flavor: r.flavor } : {}),
  vcpus: r.vcpus, ramMiB: r.ram_mib, diskGiB: r.disk_gib,
  networks: JSON.parse(r.networks) as string[],
  nics: JSON.parse(r.nics) as Omit<NicInfo, 'ipv4'>[],
  dataDisks: JSON.parse(r.data_disks) as number[],
  ...(r.password_hash ? { passwordHash: r.password_hash } : {}),
  sshKeys: JSON.parse(r.ssh_keys) as string[],
  createdAt: r.created_at,
});
