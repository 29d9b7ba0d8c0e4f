import type { Db } from './db.js';

export type ResourceKind = 'lab' | 'host' | 'network' | 'dhcp' | 'image' | 'flavor' | 'share' | 'instance' | 'loadbalancer' | 'firewall' | 'edge' | 'monitoring';

/** Which datacenter file owns which resource: apply records, destroy removes only those. */
export class DatacenterResourceRepo {
  constructor(private readonly db: Db) {}

  owned(datacenter: string, kind?: ResourceKind): { kind: ResourceKind; name: string }[] {
    return (kind
      ? this.db.prepare('SELECT kind, name FROM datacenter_resources WHERE datacenter = ? AND kind = ? ORDER BY name').all(datacenter, kind)
      : this.db.prepare('SELECT kind, name FROM datacenter_resources WHERE datacenter = ? ORDER BY kind, name').all(datacenter)) as { kind: ResourceKind; name: string }[];
  }

  owner(kind: ResourceKind, name: string): string | undefined {
    return (this.db.prepare('SELECT datacenter FROM datacenter_resources WHERE kind = ? AND name = ?').get(kind, name) as { datacenter: string } | undefined)?.datacenter;
  }

  claim(datacenter: string, kind: ResourceKind, name: string): void {
    this.db.prepare('INSERT OR REPLACE INTO datacenter_resources (datacenter, kind, name) VALUES (?, ?, ?)').run(datacenter, kind, name);
  }

  release(kind: ResourceKind, name: string): void {
    this.db.prepare('DELETE FROM datacenter_resources WHERE kind = ? AND name = ?').run(kind, name);
  }
}
