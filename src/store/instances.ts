import type { Db } from './db.js';
import type { InstanceSpec, NicInfo } from '../model/types.js';

/** A row of the instances table as SQLite hands it back. */
interface InstanceRow {
  name: string; uuid: string; host: string; image: string; flavor: string | null;
  vcpus: number; ram_mib: number; disk_gib: number; networks: string; nics: string;
  data_disks: string; password_hash: string | null; ssh_keys: string; created_at: string; project: string; ha: number;
}

/** What kumo recorded about an instance when it made it. */
export interface InstanceRecord extends InstanceSpec {
  uuid: string;
  host: string;
  nics: Omit<NicInfo, 'ipv4'>[];
  createdAt: string;
  /** The project it belongs to (its quotas count it). */
  project: string;
}

export class InstanceRepo {
  constructor(private readonly db: Db) {}

  /** Every instance, or a project's only. */
  list(project?: string): InstanceRecord[] {
    const rows = project === undefined ? this.db.prepare('SELECT * FROM instances ORDER BY name').all()
      : this.db.prepare('SELECT * FROM instances WHERE project = ? ORDER BY name').all(project);
    return (rows as InstanceRow[]).map(toInstance);
  }

  get(name: string): InstanceRecord | undefined {
    const row = this.db.prepare('SELECT * FROM instances WHERE name = ?').get(name) as InstanceRow | undefined;
    return row && toInstance(row);
  }

  /** The instance whose libvirt domain has this UUID (what lifecycle events name). */
  byUuid(uuid: string): InstanceRecord | undefined {
    const row = this.db.prepare('SELECT * FROM instances WHERE uuid = ?').get(uuid.toLowerCase()) as InstanceRow | undefined;
    return row && toInstance(row);
  }

  insert(r: InstanceRecord): void {
    this.db.prepare(`INSERT INTO instances (name, uuid, host, image, flavor, vcpus, ram_mib, disk_gib, networks, nics,
        data_disks, password_hash, ssh_keys, created_at, project, ha)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(r.name, r.uuid, r.host, r.image, r.flavor ?? null, r.vcpus, r.ramMiB, r.diskGiB,
        JSON.stringify(r.networks), JSON.stringify(r.nics), JSON.stringify(r.dataDisks),
        r.passwordHash ?? null, JSON.stringify(r.sshKeys), r.createdAt, r.project, r.ha ? 1 : 0);
  }

  /** After a live migration libvirt confirmed: the instance now lives on `host`. */
  updateHost(name: string, host: string): void {
    this.db.prepare('UPDATE instances SET host = ? WHERE name = ?').run(host, name);
  }

  /**
   * HA's compare-and-set: the record moves to `to` only if it still names `from`. True when this
   * caller moved it; false when another watcher (or a migration) did first: then it must not start it.
   */
  moveIfOn(name: string, from: string, to: string): boolean {
    return this.db.prepare('UPDATE instances SET host = ? WHERE name = ? AND host = ?').run(to, name, from).changes === 1;
  }

  /** Marks an instance highly available, or not (a datacenter file's `ha:`). */
  setHa(name: string, ha: boolean): void {
    this.db.prepare('UPDATE instances SET ha = ? WHERE name = ?').run(ha ? 1 : 0, name);
  }

  /** Records a grown root disk, and the flavor the sizes still match (none: a custom size). */
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
  project: r.project,
  ha: r.ha === 1,
});
