import type { Db } from './db.js';

/** Host bridges kumo created for a network, so deleting the network removes them too. */
export interface OwnedBridge {
  network: string;
  bridge: string;
  kind: 'linux' | 'ovs';
}

export class NetworkBridgeRepo {
  constructor(private readonly db: Db) {}

  get(network: string): OwnedBridge | undefined {
    return this.db.prepare('SELECT * FROM network_bridges WHERE network = ?').get(network) as OwnedBridge | undefined;
  }

  insert(b: OwnedBridge): void {
    this.db.prepare('INSERT INTO network_bridges (network, bridge, kind) VALUES (?, ?, ?)').run(b.network, b.bridge, b.kind);
  }

  delete(network: string): void {
    this.db.prepare('DELETE FROM network_bridges WHERE network = ?').run(network);
  }
}
