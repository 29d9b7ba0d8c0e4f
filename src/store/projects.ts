import type { Db } from './db.js';
import { QUOTAS, firstExcess, type QuotaChange, type QuotaExcess, type QuotaLimits, type QuotaName, type QuotaUse } from '../model/quotas.js';

/** A project: its caps (a quota left out is not capped) and when it was made. */
export interface ProjectRecord {
  name: string;
  limits: QuotaLimits;
  createdAt: string;
}

const COLUMN: Record<QuotaName, string> = {
  instances: 'max_instances', vcpus: 'max_vcpus', ramMiB: 'max_ram_mib', diskGiB: 'max_disk_gib',
  volumes: 'max_volumes', networks: 'max_networks', shares: 'max_shares',
};

type Row = { name: string; created_at: string } & Record<string, number | null | string>;

const toProject = (r: Row): ProjectRecord => {
  const limits: QuotaLimits = {};
  for (const q of QUOTAS) {
    const v = r[COLUMN[q]];
    if (typeof v === 'number') limits[q] = v;
  }
  return { name: r.name, limits, createdAt: r.created_at };
};

/** What a project holds, by kind of resource: what `project delete` refuses over. */
export type Holdings = Record<'instances' | 'volumes' | 'shares' | 'networks' | 'loadBalancers' | 'images' | 'flavors' | 'datacenterResources', string[]>;

export class ProjectRepo {
  constructor(private readonly db: Db) {}

  list(): ProjectRecord[] {
    return (this.db.prepare('SELECT * FROM projects ORDER BY name').all() as Row[]).map(toProject);
  }

  get(name: string): ProjectRecord | undefined {
    const row = this.db.prepare('SELECT * FROM projects WHERE name = ?').get(name) as Row | undefined;
    return row && toProject(row);
  }

  /** false when the name is taken. */
  insert(p: ProjectRecord): boolean {
    const cols = QUOTAS.map((q) => COLUMN[q]);
    const info = this.db.prepare(`INSERT INTO projects (name, ${cols.join(', ')}, created_at)
      VALUES (?, ${cols.map(() => '?').join(', ')}, ?) ON CONFLICT DO NOTHING`)
      .run(p.name, ...QUOTAS.map((q) => p.limits[q] ?? null), p.createdAt);
    return info.changes === 1;
  }

  setLimits(name: string, change: QuotaChange): void {
    const set = QUOTAS.filter((q) => change[q] !== undefined);
    if (!set.length) return;
    this.db.prepare(`UPDATE projects SET ${set.map((q) => `${COLUMN[q]} = ?`).join(', ')} WHERE name = ?`)
      .run(...set.map((q) => change[q] ?? null), name);
  }

  /**
   * Deletes the project if it holds nothing, else returns what it holds; one IMMEDIATE
   * transaction, so a create (whose reserve() checks the project exists) cannot slip in between.
   */
  deleteIfEmpty(name: string): Holdings | undefined {
    return this.db.transaction(() => {
      const held = this.holdings(name);
      if (Object.values(held).some((names) => names.length)) return held;
      this.db.prepare('DELETE FROM projects WHERE name = ?').run(name);
      // Its keypairs are names for public keys, not resources: they go with it, so a project made
      // again under the name does not inherit them.
      this.db.prepare('DELETE FROM keypairs WHERE project = ?').run(name);
      return undefined;
    }).immediate();
  }

  /** What the project uses now, computed from the rows that exist (disk: root and extra disks, and volumes). */
  use(project: string): QuotaUse {
    const one = <T>(sql: string) => this.db.prepare(sql).get(project) as T;
    const inst = one<{ n: number; vcpus: number | null; ram: number | null; disk: number | null }>(
      'SELECT COUNT(*) AS n, SUM(vcpus) AS vcpus, SUM(ram_mib) AS ram, SUM(disk_gib) AS disk FROM instances WHERE project = ?');
    const extra = one<{ gib: number | null }>(
      'SELECT SUM(d.value) AS gib FROM instances AS i, json_each(i.data_disks) AS d WHERE i.project = ?');
    const vols = one<{ n: number; gib: number | null }>('SELECT COUNT(*) AS n, SUM(size_gib) AS gib FROM volumes WHERE project = ?');
    const count = (table: string) => one<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table} WHERE project = ?`).n;
    return {
      instances: inst.n, vcpus: inst.vcpus ?? 0, ramMiB: inst.ram ?? 0,
      diskGiB: (inst.disk ?? 0) + (extra.gib ?? 0) + (vols.gib ?? 0),
      volumes: vols.n, networks: count('network_projects'), shares: count('shares'),
    };
  }

  /**
   * Checks that `need` more fits the project's caps and, if it does, runs `write` (which
   * records the new resource) in the same IMMEDIATE transaction: SQLite's write lock is taken
   * before the use is read, so two creates (in this process or another kumo process) cannot both
   * see the same room. Returns what would be exceeded instead, having written nothing.
   */
  reserve<T>(project: string, need: Partial<QuotaUse>, write: () => T): { excess: QuotaExcess } | { missing: true } | { value: T } {
    return this.db.transaction(() => {
      const p = this.get(project);
      if (!p) return { missing: true as const }; // deleted meanwhile: nothing may be made in it
      const excess = firstExcess(p.limits, this.use(project), need);
      return excess ? { excess } : { value: write() };
    }).immediate();
  }

  /** Everything the project holds, by kind (names), for a refusal that says what is in the way. */
  holdings(project: string): Holdings {
    const names = (table: string, col = 'name') => (this.db.prepare(`SELECT ${col} AS n FROM ${table} WHERE project = ? ORDER BY 1`)
      .all(project) as { n: string }[]).map((r) => r.n);
    return {
      instances: names('instances'), volumes: names('volumes'), shares: names('shares'), networks: names('network_projects', 'network'),
      loadBalancers: names('load_balancers'),
      images: names('images'), flavors: names('flavors'),
      datacenterResources: names('datacenter_resources', "kind || ' ' || name"),
    };
  }

  /** The project that owns a network kumo defined; a network without a record is default's (made before projects, or a built-in). */
  networkProject(network: string): string | undefined {
    return (this.db.prepare('SELECT project FROM network_projects WHERE network = ?').get(network) as { project: string } | undefined)?.project;
  }

  setNetworkProject(network: string, project: string): void {
    this.db.prepare('INSERT OR REPLACE INTO network_projects (network, project) VALUES (?, ?)').run(network, project);
  }

  forgetNetwork(network: string): void {
    this.db.prepare('DELETE FROM network_projects WHERE network = ?').run(network);
  }

  /** Whether a datacenter file's hosts made this network (a hypervisor segment, recorded as NODE:SEGMENT). */
  datacenterSegment(network: string): boolean {
    return this.db.prepare("SELECT 1 FROM datacenter_resources WHERE kind = 'network' AND substr(name, instr(name, ':') + 1) = ?")
      .get(network) !== undefined;
  }

  networksOf(project: string): string[] {
    return (this.db.prepare('SELECT network FROM network_projects WHERE project = ? ORDER BY network').all(project) as { network: string }[])
      .map((r) => r.network);
  }
}
