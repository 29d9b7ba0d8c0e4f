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
  | { kind: 'remove-host-bridge'; bridge: string; ovs: boolean }
  /**
   * Steps a service undoes or finishes itself (shares, load balancers, a delete, a migration):
   * `kind` names the handler it registered (service/undo.ts `onRecover`), `args` what it needs.
   */
  | { kind: 'service'; handler: string; args: Record<string, string>; when?: 'always' | 'after-crash' };

export interface JournalEntry {
  id: number;
  operation: string;
  /**
   * The process running it: an entry whose process is gone was interrupted. 0: the process gave
   * the entry up (its undo failed half-way, e.g. a daemon was down), so any later start retries it.
   */
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

  /** Gives the entry up with the steps still to undo: the next recovery retries them. */
  release(id: number, undo: UndoStep[]): void {
    this.db.prepare('UPDATE journal SET undo = ?, pid = 0 WHERE id = ?').run(JSON.stringify(undo), id);
  }

  /**
   * Takes over an interrupted entry for this process. Only one of two kumo processes starting at
   * once gets it (the pid it saw must still be there), so an entry is never undone twice at once.
   */
  claim(id: number, seenPid: number): boolean {
    return this.db.prepare('UPDATE journal SET pid = ? WHERE id = ? AND pid = ?').run(process.pid, id, seenPid).changes === 1;
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
