import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cliEntry } from '../config.js';
import type { Context } from './context.js';
import { local } from '../exec/exec.js';
import { livePid, sleep, stopDaemon, waitUntil } from '../exec/process.js';
import { readDomainStats } from '../drivers/libvirt/domstats.js';
import { Collector, DEFAULT_HISTORY_SIZE, type Inventory, type MetricsSnapshot, type RoundResult } from './metrics/collector.js';
import { DEFAULT_RETENTION_MS, METRICS_DB_FILE, MetricsStore, type HostStatus } from '../store/metrics.js';
import type { InstanceSample } from './metrics/sample.js';
import { renderPrometheus } from './metrics/prometheus.js';
import { KumoError, invalid, notFound } from '../model/errors.js';
import type { RuntimeState } from '../model/types.js';

/** One line of `kumo top`: an instance kumo has, with its newest reading if there is one. */
export type TopRow = Omit<InstanceSample, 'at' | 'state'> & {
  state: RuntimeState;
  at?: number;
  /** Why there are no numbers (host down, domain missing, not running). */
  note?: string;
};

export interface TopView {
  at: number;
  hosts: HostStatus[];
  instances: TopRow[];
}

// Not the guest's own memory figure: without a balloon stats period it is frozen at boot (sample.ts).
export type StatMetric = 'cpuPct' | 'memRssKiB' | 'rdBps' | 'wrBps' | 'rxBps' | 'txBps' | 'rxPps' | 'txPps';
export const STAT_METRICS: StatMetric[] = ['cpuPct', 'memRssKiB', 'rdBps', 'wrBps', 'rxBps', 'txBps', 'rxPps', 'txPps'];

export interface StatSummary {
  min: number;
  avg: number;
  max: number;
  last: number;
  points: number;
}

export interface StatsView {
  instance: string;
  host?: string;
  since: number;
  until: number;
  samples: InstanceSample[];
  /** Per metric, over the samples that have it (absent: none had it). */
  summary: Partial<Record<StatMetric, StatSummary>>;
}

export interface CollectorRequest {
  intervalMs?: number;
  /** Write rounds to KUMO_HOME/metrics.db (default yes). */
  record?: boolean;
  retentionMs?: number;
  historySize?: number;
}

/** The value of a metric in a sample: a rate, or a gauge for memory. */
export function metricOf(s: InstanceSample, m: StatMetric): number | undefined {
  return m === 'memRssKiB' ? s[m] : s.rates?.[m];
}

/**
 * The use cases of traffic monitoring: a collector over every hypervisor kumo has, the live
 * view (`kumo top`), an instance's history (`kumo stats`) and, for the API later, the
 * Prometheus text of a running collector.
 */
export class MonitoringService {
  private store: MetricsStore | undefined;

  constructor(private readonly ctx: Context) {}

  get metricsFile(): string {
    return join(this.ctx.paths.home, METRICS_DB_FILE);
  }

  /** The hypervisors and instances of this kumo, read afresh on every round. */
  inventory(): Inventory {
    const ctx = this.ctx;
    return {
      hosts: () => ctx.hosts.list().filter((h) => h.roles.includes('hypervisor') && h.uri)
        .map((h) => ({ name: h.name, read: () => readDomainStats(ctx.virshFor(h.name)) })),
      instances: () => ctx.instances.list().map((i) => ({ name: i.name, host: i.host })),
    };
  }

  /** metrics.db, opened once per service (the CLI has one per process); the first caller's retention holds. */
  openStore(retentionMs = DEFAULT_RETENTION_MS): MetricsStore {
    this.store ??= new MetricsStore(this.metricsFile, retentionMs);
    return this.store;
  }

  /**
   * A collector over this kumo's hypervisors, primed with the newest recorded readings that are
   * recent enough for a rate to mean something now (another collector's, or this one's last run).
   */
  collector(req: CollectorRequest = {}): Collector {
    const intervalMs = req.intervalMs ?? 5_000;
    const store = req.record === false ? undefined : this.openStore(req.retentionMs);
    const c = new Collector(this.inventory(), { intervalMs, historySize: req.historySize ?? DEFAULT_HISTORY_SIZE, ...(store ? { store } : {}) });
    const fresh = Date.now() - Math.max(60_000, 3 * intervalMs);
    c.prime(this.openStore(req.retentionMs).latest(fresh));
    return c;
  }

  /** One reading of everything, with rates: waits `settleMs` for a second round when there was no earlier reading. */
  async topOnce(opts: { record?: boolean; settleMs?: number } = {}): Promise<TopView> {
    const settleMs = opts.settleMs ?? 1_000;
    const c = this.collector({ intervalMs: 2_000, record: opts.record ?? true });
    const first = await c.sampleOnce();
    if (first.samples.some((s) => s.cpuTimeNs !== undefined && !s.rates)) {
      await sleep(settleMs);
      await c.sampleOnce();
    }
    return this.topView(c.snapshot());
  }

  /** Every instance kumo has, with what the collector last read of it. */
  topView(snap: MetricsSnapshot): TopView {
    const read = new Map(snap.instances.map((m) => [m.sample.instance, m.sample]));
    const unreadable = new Map(snap.unreadable.map((u) => [u.instance, u]));
    const rows = this.ctx.instances.list().map((rec): TopRow => {
      const s = read.get(rec.name);
      if (s) {
        const note = s.cpuTimeNs === undefined ? 'not running' : s.rates ? undefined : 'first reading: rates next round';
        return { ...s, ...(note ? { note } : {}) };
      }
      const u = unreadable.get(rec.name);
      return { instance: rec.name, host: rec.host, state: u?.state ?? 'unknown', note: u?.reason ?? 'not read yet' };
    });
    return { at: snap.at, hosts: snap.hosts, instances: rows };
  }

  /** An instance's recorded history since `since` (epoch ms). */
  stats(instance: string, since: number, until = Date.now()): StatsView {
    const rec = this.ctx.instances.get(instance);
    const store = this.openStore();
    const samples = store.history(instance, since, until);
    if (!rec && !samples.length) {
      throw notFound(`instance "${instance}" does not exist and has no recorded history`, 'see `kumo instance list`');
    }
    if (!samples.length) {
      const span = store.span(instance);
      throw notFound(`no readings of "${instance}" since ${new Date(since).toISOString()}`,
        span.last !== undefined
          ? `the newest is from ${new Date(span.last).toISOString()}: widen --since, or keep \`kumo monitor run\` running to record continuously`
          : 'history is recorded while `kumo monitor run` (or `kumo top`) runs: start one and try again in a few seconds');
    }
    const summary: StatsView['summary'] = {};
    for (const m of STAT_METRICS) {
      const values = samples.map((s) => metricOf(s, m)).filter((v): v is number => v !== undefined);
      if (!values.length) continue;
      summary[m] = {
        min: Math.min(...values), max: Math.max(...values), last: values[values.length - 1]!,
        avg: values.reduce((a, b) => a + b, 0) / values.length, points: values.length,
      };
    }
    const host = rec?.host ?? samples[samples.length - 1]?.host;
    return { instance, ...(host ? { host } : {}), since, until, samples, summary };
  }

  /** The text a Prometheus scrape of a running collector gets. */
  prometheus(c: Collector): string {
    return renderPrometheus(c.snapshot());
  }

  close(): void {
    this.store?.close();
    this.store = undefined;
  }

  // ---- the background collector (a datacenter file's `monitoring:`) ----

  private get daemonDir(): string {
    return join(this.ctx.paths.home, 'monitor');
  }

  /** The background collector's pid and settings, if it runs. */
  async collectorDaemon(): Promise<{ pid: number; settings: CollectorSettings } | undefined> {
    const pid = await livePid(local, join(this.daemonDir, 'collector.pid'), 'monitor run');
    if (!pid) return undefined;
    const settings = JSON.parse(await readFile(join(this.daemonDir, 'collector.json'), 'utf8').catch(() => '{}')) as CollectorSettings;
    return { pid, settings };
  }

  /**
   * Starts `kumo monitor run` in the background (what a service manager would run), replacing
   * one with other settings; its log is KUMO_HOME/monitor/collector.log.
   */
  async startCollector(settings: CollectorSettings): Promise<number> {
    parseDuration('retention', settings.retention);
    await this.stopCollector();
    await mkdir(this.daemonDir, { recursive: true });
    const log = openSync(join(this.daemonDir, 'collector.log'), 'w');
    // The daemon is the CLI's own `monitor run`: one collector loop, whoever starts it.
    const child = spawn(process.execPath, [cliEntry(), 'monitor', 'run', '--interval', String(settings.intervalS), '--retention', settings.retention], {
      detached: true, stdio: ['ignore', log, log], env: { ...process.env, KUMO_HOME: this.ctx.paths.home },
    });
    closeSync(log);
    child.unref();
    const pid = child.pid!;
    await writeFile(join(this.daemonDir, 'collector.pid'), `${pid}\n`);
    await writeFile(join(this.daemonDir, 'collector.json'), JSON.stringify(settings));
    // It runs once it has written its first line ("collecting every ...").
    await waitUntil('the collector to start', async () => {
      if (!(await livePid(local, join(this.daemonDir, 'collector.pid'), 'monitor run'))) {
        throw new KumoError('COMMAND_FAILED', 'the metrics collector exited at once', `see ${join(this.daemonDir, 'collector.log')}`);
      }
      return /collecting every/.test(await readFile(join(this.daemonDir, 'collector.log'), 'utf8')) || undefined;
    }, 30_000);
    return pid;
  }

  async stopCollector(): Promise<void> {
    const running = await this.collectorDaemon();
    if (running) await stopDaemon(local, running.pid, async () => (await this.collectorDaemon()) !== undefined, 'the metrics collector');
    await rm(join(this.daemonDir, 'collector.pid'), { force: true });
  }
}

export interface CollectorSettings {
  intervalS: number;
  /** A duration such as 24h. */
  retention: string;
}

export type { RoundResult, MetricsSnapshot, HostStatus };

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "10m", "2h", "1d" (or a bare number of seconds) in ms. */
export function parseDuration(flag: string, text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$/.exec(text);
  if (!m || Number(m[1]) <= 0) throw invalid(`${flag}: "${text}" is not a duration`, `give a number with s, m, h or d, e.g. ${flag} 10m`);
  return Math.round(Number(m[1]) * UNITS[m[2] || 's']!);
}

/** --since: a duration back from now, or an ISO date/time. */
export function parseSince(text: string, now = Date.now()): number {
  if (/^\d{4}-\d\d-\d\d/.test(text)) {
    const t = Date.parse(text);
    if (Number.isNaN(t)) throw invalid(`--since: "${text}" is not a date`, 'give e.g. --since 2024-05-01T10:00 or --since 10m');
    return t;
  }
  return now - parseDuration('--since', text);
}
