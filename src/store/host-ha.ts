import type { Db } from './db.js';
import type { HaMove, HaState, HostHa } from '../model/ha.js';

interface HostHaRow {
  host: string; state: HaState; down_at: string | null; fenced_at: string | null;
  rejoined_at: string | null; fence_error: string | null; moved: string;
}

const toStory = (r: HostHaRow): HostHa => ({
  state: r.state,
  ...(r.down_at ? { downAt: r.down_at } : {}),
  ...(r.fenced_at ? { fencedAt: r.fenced_at } : {}),
  ...(r.rejoined_at ? { rejoinedAt: r.rejoined_at } : {}),
  ...(r.fence_error ? { fenceError: r.fence_error } : {}),
  moved: JSON.parse(r.moved) as HaMove[],
});

/** Each host's HA story (table host_ha): what the watcher saw, did, and moved where. No row: up, nothing happened. */
export class HostHaRepo {
  constructor(private readonly db: Db) {}

  get(host: string): HostHa | undefined {
    const row = this.db.prepare('SELECT * FROM host_ha WHERE host = ?').get(host) as HostHaRow | undefined;
    return row && toStory(row);
  }

  /** Writes the whole story (the watcher's state changes). */
  set(host: string, s: HostHa): void {
    this.db.prepare(`INSERT INTO host_ha (host, state, down_at, fenced_at, rejoined_at, fence_error, moved) VALUES (?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (host) DO UPDATE SET state = excluded.state, down_at = excluded.down_at, fenced_at = excluded.fenced_at,
        rejoined_at = excluded.rejoined_at, fence_error = excluded.fence_error, moved = excluded.moved`)
      .run(host, s.state, s.downAt ?? null, s.fencedAt ?? null, s.rejoinedAt ?? null, s.fenceError ?? null, JSON.stringify(s.moved));
  }

  /**
   * Changes the story in one transaction, only from the states in `from` (no row counts as up):
   * of two watchers that saw the same thing, the second finds the state changed and does nothing.
   */
  change(host: string, from: HaState[], next: (s: HostHa) => HostHa): boolean {
    return this.db.transaction(() => {
      const s = this.get(host) ?? { state: 'up' as const, moved: [] };
      if (!from.includes(s.state)) return false;
      this.set(host, next(s));
      return true;
    })();
  }

  /** Adds one move to the story in one transaction (two watchers' moves both stay). */
  addMove(host: string, move: HaMove): void {
    this.db.transaction(() => {
      const s = this.get(host);
      if (s) this.set(host, { ...s, moved: [...s.moved, move] });
    })();
  }
}
