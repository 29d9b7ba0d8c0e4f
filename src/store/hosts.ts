import type { Db } from './db.js';

export type HostRole = 'hypervisor' | 'storage' | 'lb' | 'edge';
export const HOST_ROLES: HostRole[] = ['hypervisor', 'storage', 'lb', 'edge'];

export interface HostRecord {
  name: string;
  /** libvirt URI: qemu:///system, qemu+ssh://root@kvm2/system, or a unix socket in the lab. */
  uri: string;
  /** Address other hypervisors send migration traffic to (tcp://ADDR:PORT is built from it). */
  migrationAddress?: string;
  roles: HostRole[];
  createdAt: string;
}

interface HostRow { name: string; uri: string; migration_address: string | null; roles: string; created_at: string }

const toHost = (r: HostRow): HostRecord => ({
  name: r.name, uri: r.uri, ...(r.migration_address ? { migrationAddress: r.migration_address } : {}),
  roles: JSON.parse(r.roles) as HostRole[], createdAt: r.created_at,
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
    this.db.prepare('INSERT INTO hosts (name, uri, migration_address, roles, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(h.name, h.uri, h.migrationAddress ?? null, JSON.stringify(h.roles), h.createdAt);
  }

  delete(name: string): void {
    this.db.prepare('DELETE FROM hosts WHERE name = ?').run(name);
  }
}
