import type { Db } from './db.js';

/** The name each network's range goes by as OpenStack's subnet (Neutron names them apart). */
export class SubnetNameRepo {
  constructor(private readonly db: Db) {}

  get(network: string): string | undefined {
    return (this.db.prepare('SELECT name FROM subnet_names WHERE network = ?').get(network) as { name: string } | undefined)?.name;
  }

  set(network: string, name: string): void {
    this.db.prepare('INSERT OR REPLACE INTO subnet_names (network, name) VALUES (?, ?)').run(network, name);
  }

  delete(network: string): void {
    this.db.prepare('DELETE FROM subnet_names WHERE network = ?').run(network);
  }
}
