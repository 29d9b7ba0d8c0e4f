import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { KumoError } from '../model/errors.js';
import type { RuntimeState } from '../model/types.js';
import { COUNTERS, RATES, type InstanceSample, type Rates } from '../model/metrics.js';

/**
 * Samples on disk, so that `kumo stats` in another process sees what a running collector
 * (`kumo monitor run`, `kumo top`) recorded. A file of its own beside kumo.db: measurements are
 * many, short-lived and disposable, intent is few and precious; they do not share migrations,
 * backups or write locks. Deleting metrics.db loses only history.
 */

export const METRICS_DB_FILE = 'metrics.db';
export const DEFAULT_RETENTION_MS = 24 * 3600_000;

/** What the last attempt to read a host gave. */
export interface HostStatus {
  host: string;
  up: boolean;
  /** Epoch ms of the attempt. */
  at: number;
  durationMs: number;
  /** Domains libvirt listed there (kumo's and others). */
  domains: number;
  error?: string;
  /** When it last answered, if ever (kept across failures). */
  lastUpAt?: number;
}

const COLUMN: Record<(typeof COUNTERS)[number] | (typeof RATES)[number], string> = {
  cpuTimeNs: 'cpu_time_ns', vcpus: 'vcpus', memCurrentKiB: 'mem_current_kib', memRssKiB: 'mem_rss_kib', memUsedKiB: 'mem_used_kib',
  rdBytes: 'rd_bytes', rdReqs: 'rd_reqs', wrBytes: 'wr_bytes', wrReqs: 'wr_reqs',
  rxBytes: 'rx_bytes', rxPkts: 'rx_pkts', rxErrs: 'rx_errs', rxDrop: 'rx_drop',
  txBytes: 'tx_bytes', txPkts: 'tx_pkts', txErrs: 'tx_errs', txDrop: 'tx_drop',
  cpuPct: 'cpu_pct', rdBps: 'rd_bps', wrBps: 'wr_bps', rdIops: 'rd_iops', wrIops: 'wr_iops',
  rxBps: 'rx_bps', txBps: 'tx_bps', rxPps: 'rx_pps', txPps: 'tx_pps',
};

/** Append-only, like kumo.db's; a column per number so SQL can aggregate them later. */
const MIGRATIONS: string[] = [
  `CREATE TABLE samples (
     instance TEXT NOT NULL,
     host TEXT NOT NULL,
     at INTEGER NOT NULL,
     state TEXT NOT NULL,
     ${COUNTERS.map((k) => `${COLUMN[k]} INTEGER`).join(',\n     ')},
     interval_ms INTEGER,
     ${RATES.map((k) => `${COLUMN[k]} REAL`).join(',\n     ')},
     PRIMARY KEY (instance, at)
   ) WITHOUT ROWID;
   CREATE INDEX samples_at ON samples(at);
   CREATE TABLE hosts (
     host TEXT PRIMARY KEY,
     up INTEGER NOT NULL,
     at INTEGER NOT NULL,
     duration_ms INTEGER NOT NULL,
     domains INTEGER NOT NULL,
     error TEXT,
     last_up_at INTEGER
   );`,
];

type Row = Record<string, string | number | null>;

const PRUNE_EVERY_MS = 60_000;

export class MetricsStore {
  private readonly db: Database.Database;
  private readonly insertSample: Database.Statement;
  private readonly upsertHost: Database.Statement;
  private lastPrune = 0;

  constructor(readonly file: string, readonly retentionMs = DEFAULT_RETENTION_MS) {
    mkdirSync(dirname(file), { recursive: true });
    try {
      this.db = new Database(file);
      // WAL: `kumo stats` reads while a collector writes, neither waits for the other.
      this.db.pragma('journal_mode = WAL');
      // Losing the last second of samples in a power cut is fine; an fsync every few seconds is not.
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('busy_timeout = 5000');
      this.migrate();
    } catch (e) {
      if (e instanceof KumoError) throw e;
      throw new KumoError('COMMAND_FAILED', `cannot open the metrics history ${file}: ${(e as Error).message}`,
        `check that KUMO_HOME is writable; the file holds only history and can be deleted (rm ${file}*)`, { cause: e });
    }
    const cols = ['instance', 'host', 'at', 'state', ...COUNTERS.map((k) => COLUMN[k]), 'interval_ms', ...RATES.map((k) => COLUMN[k])];
    this.insertSample = this.db.prepare(`INSERT OR REPLACE INTO samples (${cols.join(', ')}) VALUES (${cols.map((c) => `@${c}`).join(', ')})`);
    this.upsertHost = this.db.prepare(`INSERT INTO hosts (host, up, at, duration_ms, domains, error, last_up_at)
      VALUES (@host, @up, @at, @duration_ms, @domains, @error, @last_up_at)
      ON CONFLICT (host) DO UPDATE SET up = excluded.up, at = excluded.at, duration_ms = excluded.duration_ms,
        domains = excluded.domains, error = excluded.error, last_up_at = COALESCE(excluded.last_up_at, hosts.last_up_at)`);
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      throw new KumoError('COMMAND_FAILED', `${this.file} was written by a newer kumo (schema ${version}, this one knows ${MIGRATIONS.length})`,
        `upgrade kumo, or delete the history: rm ${this.file}*`);
    }
    for (let i = version; i < MIGRATIONS.length; i++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[i]!);
        this.db.pragma(`user_version = ${i + 1}`);
      })();
    }
  }

  /** One round: samples and host statuses in one transaction; drops what is older than the retention. */
  write(samples: InstanceSample[], hosts: HostStatus[], now = Date.now()): void {
    try {
      this.db.transaction(() => {
        for (const s of samples) this.insertSample.run(toRow(s));
        for (const h of hosts) {
          this.upsertHost.run({ host: h.host, up: h.up ? 1 : 0, at: h.at, duration_ms: Math.round(h.durationMs), domains: h.domains,
            error: h.error ?? null, last_up_at: h.up ? h.at : (h.lastUpAt ?? null) });
        }
      })();
      if (now - this.lastPrune >= PRUNE_EVERY_MS) this.prune(now);
    } catch (e) {
      throw new KumoError('COMMAND_FAILED', `cannot write the metrics history ${this.file}: ${(e as Error).message}`,
        'check free space and permissions in KUMO_HOME; the file holds only history and can be deleted', { cause: e });
    }
  }

  /** Removes samples older than the retention; returns how many. */
  prune(now = Date.now()): number {
    this.lastPrune = now;
    return this.db.prepare('DELETE FROM samples WHERE at < ?').run(now - this.retentionMs).changes;
  }

  /** One instance's samples in [since, until], oldest first. */
  history(instance: string, since: number, until = Number.MAX_SAFE_INTEGER): InstanceSample[] {
    return (this.db.prepare('SELECT * FROM samples WHERE instance = ? AND at >= ? AND at <= ? ORDER BY at')
      .all(instance, since, until) as Row[]).map(fromRow);
  }

  /** The newest sample of every instance that has one since `since` (the bound keeps the scan short). */
  latest(since = 0): InstanceSample[] {
    return (this.db.prepare(`SELECT s.* FROM samples s
        JOIN (SELECT instance, MAX(at) AS at FROM samples WHERE at >= ? GROUP BY instance) m ON s.instance = m.instance AND s.at = m.at
        ORDER BY s.instance`).all(since) as Row[]).map(fromRow);
  }

  /** The oldest and newest time and the count of one instance's samples. */
  span(instance: string): { count: number; first?: number; last?: number } {
    const r = this.db.prepare('SELECT COUNT(*) AS n, MIN(at) AS first, MAX(at) AS last FROM samples WHERE instance = ?')
      .get(instance) as { n: number; first: number | null; last: number | null };
    return { count: r.n, ...(r.first !== null ? { first: r.first } : {}), ...(r.last !== null ? { last: r.last } : {}) };
  }

  hosts(): HostStatus[] {
    return (this.db.prepare('SELECT * FROM hosts ORDER BY host').all() as Row[]).map((r) => ({
      host: String(r.host), up: r.up === 1, at: Number(r.at), durationMs: Number(r.duration_ms), domains: Number(r.domains),
      ...(r.error !== null ? { error: String(r.error) } : {}),
      ...(r.last_up_at !== null ? { lastUpAt: Number(r.last_up_at) } : {}),
    }));
  }

  close(): void {
    this.db.close();
  }
}

function toRow(s: InstanceSample): Row {
  const row: Row = { instance: s.instance, host: s.host, at: s.at, state: s.state, interval_ms: s.rates?.intervalMs ?? null };
  for (const k of COUNTERS) row[COLUMN[k]] = s[k] ?? null;
  for (const k of RATES) row[COLUMN[k]] = s.rates?.[k] ?? null;
  return row;
}

function fromRow(r: Row): InstanceSample {
  const s: InstanceSample = { instance: String(r.instance), host: String(r.host), at: Number(r.at), state: String(r.state) as RuntimeState };
  for (const k of COUNTERS) {
    const v = r[COLUMN[k]];
    if (v !== null && v !== undefined) s[k] = Number(v);
  }
  if (r.interval_ms !== null && r.interval_ms !== undefined) {
    const rates = { intervalMs: Number(r.interval_ms) } as Rates;
    for (const k of RATES) rates[k] = Number(r[COLUMN[k]] ?? 0);
    s.rates = rates;
  }
  return s;
}
