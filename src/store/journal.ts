import type { Db } from './db.js';

/**
 * A durable list of undo steps for an operation in progress. If kumo dies half-way,
 * the next start finds the entry and undoes what was made, so nothing is left half-made.
 */
export type UndoStep =
  | { kind: 'remove-path'; path: string }
  /**
   * `uuid`: the domain kumo defined (entries written before it was recorded have the name only).
   * `pendingUntil` (ISO time): written before a define is sent and cleared when libvirt answered;
   * while set, libvirt may still make the domain (a timed-out call, or kumo killed during it),
   * so the undo waits for it until then and removes it when it appears.
   */
  | { kind: 'undefine-domain'; uri: string; name: string; uuid?: string; pendingUntil?: string }
  | { kind: 'forget-instance'; name: string }
  | { kind: 'forget-volume'; name: string }
  | { kind: 'release-volume'; name: string }
  | { kind: 'detach-disk'; uri: string; domain: string; file: string; target: string }
  | { kind: 'remove-network'; uri: string; name: string }
  /** The project record of a network being made (only the one this operation wrote). */
  | { kind: 'forget-network-project'; name: string; project: string }
  | { kind: 'remove-host-bridge'; bridge: string; ovs: boolean };

export interface JournalEntry {
  id: number;
  operation: string;
  /** The process running it: an entry whose process is gone was interrupted. */
  pid: number;
  undo: UndoStep[];
  startedAt: string;
}

export class JournalRepo {
  constructor(private readonly db: Db) {}

  open(operation: string): number {
    const info = this.db.prepare('INSERT INTO journal (operation, pid, undo, started_at) VALUES (?, ?, ?, ?)')
      .run(operation, process.pid, '[]', new Date().toISOString());
    return Number(info.lastInsertRowid);
  }

  setUndo(id: number, undo: UndoStep[]): void {
    this.db.prepare('UPDATE journal SET undo = ? WHERE id = ?').run(JSON.stringify(undo), id);
  }

  close(id: number): void {
    this.db.prepare('DELETE FROM journal WHERE id = ?').run(id);
  }

  pending(): JournalEntry[] {
    return (this.db.prepare('SELECT * FROM journal ORDER BY id').all() as
      { id: number; operation: string; pid: number; undo: string; started_at: string }[])
      .map((r) => ({ id: r.id, operation: r.operation, pid: r.pid, undo: JSON.parse(r.undo) as UndoStep[], startedAt: r.started_at }));
  }
}
