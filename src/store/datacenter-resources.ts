import type { Db } from './db.js';

export type ResourceKind = 'lab' | 'host' | 'network' | 'dhcp' | 'image' | 'flavor' | 'share' | 'instance' | 'loadbalancer' | 'firewall' | 'edge' | 'monitoring';

export interface OwnedResource {
  kind: ResourceKind;
  name: string;
  /** What apply made it from (undefined: recorded before kumo kept it). */
  spec?: unknown;
}

interface Row {
  kind: ResourceKind;
  name: string;
  spec: string | null;
}

const toOwned = (r: Row): OwnedResource => ({ kind: r.kind, name: r.name, ...(r.spec !== null ? { spec: JSON.parse(r.spec) as unknown } : {}) });

/** Which datacenter file owns which resource, made from what: apply records, destroy removes only those. */
export class DatacenterResourceRepo {
  constructor(private readonly db: Db) {}

  owned(datacenter: string, kind?: ResourceKind): OwnedResource[] {
    return ((kind
      ? this.db.prepare('SELECT kind, name, spec FROM datacenter_resources WHERE datacenter = ? AND kind = ? ORDER BY name').all(datacenter, kind)
      : this.db.prepare('SELECT kind, name, spec FROM datacenter_resources WHERE datacenter = ? ORDER BY kind, name').all(datacenter)) as Row[]).map(toOwned);
  }

  owner(kind: ResourceKind, name: string): string | undefined {
    return (this.db.prepare('SELECT datacenter FROM datacenter_resources WHERE kind = ? AND name = ?').get(kind, name) as { datacenter: string } | undefined)?.datacenter;
  }

  /** The spec a resource was applied from, if recorded. */
  spec(kind: ResourceKind, name: string): unknown {
    const row = this.db.prepare('SELECT kind, name, spec FROM datacenter_resources WHERE kind = ? AND name = ?').get(kind, name) as Row | undefined;
    return row ? toOwned(row).spec : undefined;
  }

  /** `project`: the file's (its resources count there; the project cannot be deleted while it holds them). */
  claim(datacenter: string, kind: ResourceKind, name: string, spec?: unknown, project = 'default'): void {
    this.db.prepare('INSERT OR REPLACE INTO datacenter_resources (datacenter, kind, name, spec, project) VALUES (?, ?, ?, ?, ?)')
      .run(datacenter, kind, name, spec === undefined ? null : JSON.stringify(spec), project);
  }

  release(kind: ResourceKind, name: string): void {
    this.db.prepare('DELETE FROM datacenter_resources WHERE kind = ? AND name = ?').run(kind, name);
  }
}
