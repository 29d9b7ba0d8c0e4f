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
  /** How HA fences it: a shell command run on this machine, 'none', or unset (the lab's own for a lab hypervisor, else none). */
  fence?: string;
}

interface HostRow { name: string; uri: string | null; migration_address: string | null; roles: string; shell: string; created_at: string; fence: string | null }

const toHost = (r: HostRow): HostRecord => ({
  name: r.name, ...(r.uri ? { uri: r.uri } : {}), ...(r.migration_address ? { migrationAddress: r.migration_address } : {}),
  roles: JSON.parse(r.roles) as HostRole[], shell: JSON.parse(r.shell) as ShellSpec, createdAt: r.created_at, ...(r.fence !== null ? { fence: r.fence } : {}),
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
    this.db.prepare('INSERT INTO hosts (name, uri, migration_address, roles, shell, created_at, fence) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(h.name, h.uri ?? null, h.migrationAddress ?? null, JSON.stringify(h.roles), JSON.stringify(h.shell), h.createdAt, h.fence ?? null);
  }

  /** The fence HA uses (undefined: back to the default). */
  setFence(name: string, fence: string | undefined): void {
    this.db.prepare('UPDATE hosts SET fence = ? WHERE name = ?').run(fence ?? null, name);
  }

  delete(name: string): void {
    // Its HA story goes with it: a host registered again under the name starts a new one.
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM host_ha WHERE host = ?').run(name);
      this.db.prepare('DELETE FROM hosts WHERE name = ?').run(name);
    })();
  }
}
