import type { Db } from './db.js';

/**
 * What kumo knows of a bridge-mode network's LAN, which libvirt does not serve: its subnet,
 * gateway, and where the DHCP server kumo runs for it (the lab's) writes its leases.
 */
export interface NetworkSubnet {
  network: string;
  cidr: string;
  gateway?: string;
  leaseFile?: string;
  /** The registered host whose filesystem holds the lease file (none: this machine). */
  leaseHost?: string;
}

interface Row { network: string; cidr: string; gateway: string | null; lease_file: string | null; lease_host: string | null }

const toSubnet = (r: Row): NetworkSubnet => ({
  network: r.network, cidr: r.cidr, ...(r.gateway ? { gateway: r.gateway } : {}), ...(r.lease_file ? { leaseFile: r.lease_file } : {}),
  ...(r.lease_host ? { leaseHost: r.lease_host } : {}),
});

export class NetworkSubnetRepo {
  constructor(private readonly db: Db) {}

  get(network: string): NetworkSubnet | undefined {
    const row = this.db.prepare('SELECT * FROM network_subnets WHERE network = ?').get(network) as Row | undefined;
    return row && toSubnet(row);
  }

  list(): NetworkSubnet[] {
    return (this.db.prepare('SELECT * FROM network_subnets ORDER BY network').all() as Row[]).map(toSubnet);
  }

  upsert(s: NetworkSubnet): void {
    this.db.prepare('INSERT OR REPLACE INTO network_subnets (network, cidr, gateway, lease_file, lease_host) VALUES (?, ?, ?, ?, ?)')
      .run(s.network, s.cidr, s.gateway ?? null, s.leaseFile ?? null, s.leaseHost ?? null);
  }

  delete(network: string): void {
    this.db.prepare('DELETE FROM network_subnets WHERE network = ?').run(network);
  }
}
