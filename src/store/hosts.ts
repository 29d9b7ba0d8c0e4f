import type { Db } from './db.js';
import type { ShellSpec } from '../model/shell.js';
import type { HostRole } from '../model/roles.js';

export interface HostRecord {
  name: string;
  /** libvirt URI: qemu:///system, qemu+ssh://root@kvm2/system, or a unix socket in the lab; none for nodes without libvirt. */
  uri?: string;
  /** Address other hypervisors send migration traffic to (tcp://ADDR:PORT is built from it). */
  migrationAddress?: string;
  roles: HostRole[];
  /** How commands on the host itself run (qemu-img, bridges, nftables, its services). */
  shell: ShellSpec;
  createdAt: string;
}

interface HostRow { name: string; uri: string | null; migration_address: string | null; roles: string; shell: string; created_at: string }

const toHost = (r: HostRow): HostRecord => ({
  name: r.name, ...(r.uri ? { uri: r.uri } : {}), ...(r.migration_address ? { migrationAddress: r.migration_address } : {}),
  roles: JSON.parse(r.roles) as HostRole[], shell: JSON.parse(r.shell) as ShellSpec, createdAt: r.created_at,
});

export class HostRepo {
  constructor(private readonly db: Db) {}

  list(): HostRecord[] {
    return (this.db.prepare('SELECT * FROM hosts ORDER BY created_at, name').all() as HostRow[]).map(toHost);
  }

  get(name: string): HostRecord | undefined {
    const row = this.db.prepare('SELECT * FROM hosts WHERE name = ?').get(name) as HostRow | undefined;
    return row && toHost(row);
  }

  byUri(uri: string): HostRecord | undefined {
    const row = this.db.prepare('SELECT * FROM hosts WHERE uri = ?').get(uri) as HostRow | undefined;
    return row && toHost(row);
  }

  insert(h: HostRecord): void {
    this.db.prepare('INSERT INTO hosts (name, uri, migration_address, roles, shell, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(h.name, h.uri ?? null, h.migrationAddress ?? null, JSON.stringify(h.roles), JSON.stringify(h.shell), h.createdAt);
  }

  delete(name: string): void {
    this.db.prepare('DELETE FROM hosts WHERE name = ?').run(name);
  }
}
