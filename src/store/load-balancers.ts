import type { Db } from './db.js';

export interface LoadBalancerRecord {
  name: string;
  /** The host (role lb) its HAProxy and WAF run on. */
  host: string;
  /** The public address and port clients use. */
  frontend: { address: string; port: number };
  /** Instances behind it, reached on their address on `network`, port `backendPort`. */
  instances: string[];
  network: string;
  backendPort: number;
  /** HAProxy's own port on 127.0.0.1 while the WAF holds the public one. */
  internalPort: number;
  waf: { enabled: boolean; paranoia: number } | null;
  createdAt: string;
  /** The project it belongs to. */
  project: string;
}

interface Row { name: string; host: string; spec: string; created_at: string; project: string }
type Spec = Omit<LoadBalancerRecord, 'name' | 'host' | 'createdAt' | 'project'>;

const toRecord = (r: Row): LoadBalancerRecord => ({ name: r.name, host: r.host, ...(JSON.parse(r.spec) as Spec), createdAt: r.created_at, project: r.project });

export class LoadBalancerRepo {
  constructor(private readonly db: Db) {}

  /** Every load balancer, or a project's only. */
  list(project?: string): LoadBalancerRecord[] {
    const rows = project === undefined ? this.db.prepare('SELECT * FROM load_balancers ORDER BY name').all()
      : this.db.prepare('SELECT * FROM load_balancers WHERE project = ? ORDER BY name').all(project);
    return (rows as Row[]).map(toRecord);
  }

  get(name: string): LoadBalancerRecord | undefined {
    const row = this.db.prepare('SELECT * FROM load_balancers WHERE name = ?').get(name) as Row | undefined;
    return row && toRecord(row);
  }

  /** Inserts or replaces the whole record. */
  put(lb: LoadBalancerRecord): void {
    const { name, host, createdAt, project, ...spec } = lb;
    this.db.prepare('INSERT OR REPLACE INTO load_balancers (name, host, spec, created_at, project) VALUES (?, ?, ?, ?, ?)')
      .run(name, host, JSON.stringify(spec), createdAt, project);
  }

  delete(name: string): void {
    this.db.prepare('DELETE FROM load_balancers WHERE name = ?').run(name);
  }
}
