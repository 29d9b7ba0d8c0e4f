import { Command } from 'commander';
import { named } from '../names.js';
import { context, say } from '../app.js';
import { type LogFormat, lineLog, logFormatOption } from '../log-lines.js';
import { json, table } from '../render.js';
import {
  MonitoringService, STAT_METRICS, metricOf, parseDuration, parseSince,
  type HostStatus, type StatMetric, type StatsView, type TopRow, type TopView,
} from '../../service/monitoring.js';
import type { InstanceSample } from '../../service/metrics/sample.js';
import type { Collector, RoundResult } from '../../service/metrics/collector.js';
import { invalid } from '../../model/errors.js';
import { parseWhole } from '../../model/sizes.js';

// ------------------------------------------------------------------ formatting

const BINARY = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function bytesText(n: number | undefined): string | undefined {
  if (n === undefined) return undefined;
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < BINARY.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${Math.round(v)} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${BINARY[u]}`;
}

const rate = (bps: number | undefined) => (bps === undefined ? undefined : `${bytesText(bps)}/s`);
const pkts = (pps: number | undefined) => (pps === undefined ? undefined : pps < 10 ? pps.toFixed(1) : String(Math.round(pps)));
const pct = (v: number | undefined) => (v === undefined ? undefined : `${v.toFixed(1)}%`);
const kibText = (kib: number | undefined) => bytesText(kib === undefined ? undefined : kib * 1024);
const clock = (ms: number) => new Date(ms).toTimeString().slice(0, 8);

function memory(r: Pick<InstanceSample, 'memRssKiB' | 'memCurrentKiB'>): string | undefined {
  if (r.memRssKiB === undefined) return undefined;
  return r.memCurrentKiB === undefined ? kibText(r.memRssKiB) : `${kibText(r.memRssKiB)} / ${kibText(r.memCurrentKiB)}`;
}

function hostLine(hosts: HostStatus[]): string {
  if (!hosts.length) return 'hosts: no hypervisor registered (kumo host add NAME --uri URI)';
  return `hosts: ${hosts.map((h) => (h.up ? `${h.host} up (${h.durationMs} ms)` : `${h.host} DOWN (${h.error ?? 'no answer'})`)).join(', ')}`;
}

export function renderTop(v: TopView, intervalMs?: number): string {
  const head = `kumo top — ${clock(v.at || Date.now())}${intervalMs ? `, every ${intervalMs / 1000} s (Ctrl+C quits)` : ''}\n${hostLine(v.hosts)}\n`;
  const rows = v.instances.map((r: TopRow) => {
    const x = r.rates;
    return [r.instance, r.host, r.state, pct(x?.cpuPct), memory(r), rate(x?.rdBps), rate(x?.wrBps), rate(x?.rxBps), rate(x?.txBps),
      pkts(x?.rxPps), pkts(x?.txPps), r.note];
  });
  const body = v.instances.length
    ? table(['Instance', 'Host', 'State', 'CPU', 'Memory (RSS / size)', 'Disk read', 'Disk write', 'Net RX', 'Net TX', 'RX pkt/s', 'TX pkt/s', 'Note'], rows)
    : ' no instances (kumo instance create NAME --image IMAGE)';
  return `${head}\n${body}`;
}

const SPARKS = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/**
 * One character per time slice of [from, to]: the slice's average on a 0..max scale. A slice
 * with no reading repeats its neighbour when readings around it are at most `maxGapMs` apart
 * (uneven timing), and stays blank across a real gap (nothing was recording).
 */
export function sparkline(points: { at: number; value: number }[], from: number, to: number, width: number, maxGapMs = Infinity): string {
  const sums = new Array<number>(width).fill(0);
  const counts = new Array<number>(width).fill(0);
  const span = Math.max(1, to - from);
  const slice = (at: number) => Math.min(width - 1, Math.max(0, Math.floor(((at - from) / span) * width)));
  for (const p of points) {
    const i = slice(p.at);
    sums[i]! += p.value;
    counts[i]!++;
  }
  const avgs = sums.map((s, i) => (counts[i] ? s / counts[i]! : undefined));
  for (let k = 1; k < points.length; k++) {
    const [a, b] = [points[k - 1]!, points[k]!];
    if (b.at - a.at > maxGapMs) continue;
    for (let i = slice(a.at) + 1; i < slice(b.at); i++) avgs[i] ??= avgs[i - 1];
  }
  const max = Math.max(0, ...avgs.filter((a): a is number => a !== undefined));
  return avgs.map((a) => (a === undefined ? ' ' : max <= 0 ? SPARKS[0] : SPARKS[Math.min(7, Math.round((a / max) * 7))])).join('');
}

const METRIC_LABEL: Record<StatMetric, [string, (v: number | undefined) => string | undefined]> = {
  cpuPct: ['CPU', pct],
  memRssKiB: ['Memory (RSS)', kibText],
  rdBps: ['Disk read', rate],
  wrBps: ['Disk write', rate],
  rxBps: ['Net RX', rate],
  txBps: ['Net TX', rate],
  rxPps: ['RX pkt/s', pkts],
  txPps: ['TX pkt/s', pkts],
};

/** Averages of consecutive samples, `rows` groups at most, for the history table. */
function buckets(samples: InstanceSample[], rows: number): { at: number; state: string; values: Partial<Record<StatMetric, number>> }[] {
  const per = Math.max(1, Math.ceil(samples.length / rows));
  const out = [];
  for (let i = 0; i < samples.length; i += per) {
    const group = samples.slice(i, i + per);
    const values: Partial<Record<StatMetric, number>> = {};
    for (const m of STAT_METRICS) {
      const vs = group.map((s) => metricOf(s, m)).filter((v): v is number => v !== undefined);
      if (vs.length) values[m] = vs.reduce((a, b) => a + b, 0) / vs.length;
    }
    out.push({ at: group[group.length - 1]!.at, state: group[group.length - 1]!.state, values });
  }
  return out;
}

export function renderStats(v: StatsView, opts: { width: number; rows: number }): string {
  const first = v.samples[0]!.at;
  const last = v.samples[v.samples.length - 1]!.at;
  const lines = [`${v.instance}${v.host ? ` on ${v.host}` : ''}: ${v.samples.length} readings, ${clock(first)} → ${clock(last)}`, ''];
  // No wider than the readings: a column per time slice, blank only where nothing was recorded.
  const width = Math.min(opts.width, v.samples.length);
  const gaps = v.samples.slice(1).map((x, i) => x.at - v.samples[i]!.at).sort((a, b) => a - b);
  const typical = gaps[Math.floor(gaps.length / 2)] ?? 0;
  const chartRows = STAT_METRICS.filter((m) => v.summary[m]).map((m) => {
    const [label, fmt] = METRIC_LABEL[m];
    const s = v.summary[m]!;
    const points = v.samples.map((x) => ({ at: x.at, value: metricOf(x, m) })).filter((p): p is { at: number; value: number } => p.value !== undefined);
    return [label, fmt(s.last), fmt(s.avg), fmt(s.max), sparkline(points, first, last, width, 3 * typical)];
  });
  if (chartRows.length) lines.push(table(['Metric', 'Last', 'Avg', 'Max', `${clock(first)} … ${clock(last)}`], chartRows), '');
  else lines.push(` no rates in this period: it was ${[...new Set(v.samples.map((x) => x.state))].join(', ')}`, '');
  const hist = buckets(v.samples, opts.rows);
  const per = Math.ceil(v.samples.length / opts.rows);
  lines.push(per > 1 ? ` history (each row averages ${per} readings):` : ' history:');
  lines.push(table(['Time', 'State', 'CPU', 'Memory', 'Disk read', 'Disk write', 'Net RX', 'Net TX', 'RX pkt/s', 'TX pkt/s'],
    hist.map((b) => [clock(b.at), b.state, pct(b.values.cpuPct), kibText(b.values.memRssKiB), rate(b.values.rdBps), rate(b.values.wrBps),
      rate(b.values.rxBps), rate(b.values.txBps), pkts(b.values.rxPps), pkts(b.values.txPps)])));
  return lines.join('\n');
}

// ------------------------------------------------------------------ options

function positive(flag: string, text: string): number {
  const n = parseWhole(text);
  if (!Number.isInteger(n) || n < 1) throw invalid(`${flag} must be a whole number of at least 1, got "${text}"`, `e.g. ${flag} 5`);
  return n;
}

function intervalMs(text: string): number {
  const ms = parseDuration('--interval', text);
  if (ms < 1_000) throw invalid(`--interval ${text} is below one second`, 'libvirt counters move in steps; give --interval 1 or more');
  return ms;
}

/** Resolves when the process is asked to stop (Ctrl+C, a service manager's SIGTERM). */
function untilSignal(): { done: Promise<void>; dispose(): void } {
  let resolve!: () => void;
  const done = new Promise<void>((r) => { resolve = r; });
  const on = () => resolve();
  process.once('SIGINT', on);
  process.once('SIGTERM', on);
  return { done, dispose: () => { process.off('SIGINT', on); process.off('SIGTERM', on); } };
}

/**
 * Runs the collector until Ctrl+C / SIGTERM or `count` rounds, calling `each` after every round
 * (numbered from 1); returns how many rounds ran.
 */
async function runRounds(collector: Collector, count: number | undefined, each: (r: RoundResult, round: number) => void): Promise<number> {
  const stop = untilSignal();
  let rounds = 0;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((r) => { finish = r; });
  collector.onRound((r) => {
    each(r, ++rounds);
    if (count !== undefined && rounds >= count) finish();
  });
  try {
    collector.start();
    await Promise.race([stop.done, finished]);
  } finally {
    stop.dispose();
    await collector.stop();
  }
  return rounds;
}

// ------------------------------------------------------------------ commands

export function topCommand(): Command {
  return new Command('top').description('live CPU, memory, disk and network of every instance, refreshed (records history while it runs)')
    .option('--once', 'print one table (after a second reading, for rates) and exit')
    .option('--json', 'machine-readable: one document (--once), else one line per refresh')
    .option('--interval <seconds>', 'seconds between refreshes', '2')
    .option('--count <n>', 'stop after this many refreshes')
    .option('--no-record', 'do not write the readings to the history (metrics.db)')
    .action(async (o: { once?: boolean; json?: boolean; interval: string; count?: string; record: boolean }) => {
      const every = intervalMs(o.interval);
      const count = o.count === undefined ? undefined : positive('--count', o.count);
      const svc = new MonitoringService(await context());
      try {
        if (o.once) {
          const v = await svc.topOnce({ record: o.record });
          console.log(o.json ? json(v) : renderTop(v));
          return;
        }
        const collector = svc.collector({ intervalMs: every, record: o.record });
        const tty = process.stdout.isTTY && !o.json;
        collector.onError((e) => say(`warning: could not record the readings: ${e instanceof Error ? e.message : String(e)}`));
        await runRounds(collector, count, (_r, round) => {
          const v = svc.topView(collector.snapshot());
          if (o.json) process.stdout.write(`${JSON.stringify(v)}\n`);
          // On a terminal the table redraws in place; into a pipe or file the tables follow each other.
          else process.stdout.write(`${tty ? '\x1b[H\x1b[2J' : round > 1 ? '\n' : ''}${renderTop(v, every)}\n`);
        });
      } finally {
        svc.close();
      }
    });
}

export function statsCommand(): Command {
  return new Command('stats').addArgument(named('instance', '<instance>')).description('an instance\'s recorded history: a chart per metric and a table')
    .option('--since <time>', 'how far back: 90s, 10m, 2h, 1d, or a date/time', '10m')
    .option('--rows <n>', 'rows in the history table (readings are averaged to fit)', '12')
    .option('--width <n>', 'characters per chart', '48')
    .option('--json', 'machine-readable output (every reading, and the summary)')
    .action(async (name: string, o: { since: string; rows: string; width: string; json?: boolean }) => {
      const since = parseSince(o.since);
      const rows = positive('--rows', o.rows);
      const width = positive('--width', o.width);
      const svc = new MonitoringService(await context());
      try {
        const v = svc.stats(name, since);
        console.log(o.json ? json(v) : renderStats(v, { rows, width }));
      } finally {
        svc.close();
      }
    });
}

export function monitorCommand(): Command {
  const cmd = new Command('monitor').description('the metrics collector behind kumo top and kumo stats');
  cmd.command('run').description('read every hypervisor in the foreground and record history to KUMO_HOME/metrics.db (for a service manager)')
    .option('--interval <seconds>', 'seconds between readings', '5')
    .option('--retention <duration>', 'how long history is kept, e.g. 24h, 7d', '24h')
    .option('--history <n>', 'readings kept in memory per instance', '720')
    .option('--count <n>', 'stop after this many rounds (for scripts and tests)')
    .option('--verbose', 'a line for every round, not only when a host goes down or comes back')
    .addOption(logFormatOption())
    .action(async (o: { interval: string; retention: string; history: string; count?: string; verbose?: boolean; logFormat: LogFormat }) => {
      const every = intervalMs(o.interval);
      const retentionMs = parseDuration('--retention', o.retention);
      const historySize = positive('--history', o.history);
      const count = o.count === undefined ? undefined : positive('--count', o.count);
      const svc = new MonitoringService(await context());
      const collector = svc.collector({ intervalMs: every, retentionMs, historySize });
      const wasUp = new Map<string, boolean>();
      const log = lineLog('monitor', o.logFormat);
      collector.onError((e) => log.warn(`could not record the readings: ${e instanceof Error ? e.message : String(e)}`));
      log.info(`collecting every ${every / 1000} s into ${svc.metricsFile} (kept ${o.retention})`, { intervalMs: every, file: svc.metricsFile });
      let rounds = 0;
      try {
        rounds = await runRounds(collector, count, (r, round) => {
          for (const h of r.hosts) {
            if (wasUp.get(h.host) !== h.up) log.info(`host ${h.host} ${h.up ? 'up' : `DOWN: ${h.error ?? 'no answer'}`}`, { host: h.host, up: h.up });
            wasUp.set(h.host, h.up);
          }
          if (o.verbose || round === 1) {
            log.info(`read ${r.samples.length} instance${r.samples.length === 1 ? '' : 's'} on ${r.hosts.filter((h) => h.up).length}/${r.hosts.length} hosts` +
              (r.unreadable.length ? `; unreadable: ${r.unreadable.map((u) => `${u.instance} (${u.reason})`).join(', ')}` : ''),
            { round, instances: r.samples.length, hostsUp: r.hosts.filter((h) => h.up).length, hosts: r.hosts.length });
          }
        });
      } finally {
        svc.close();
      }
      log.info(`stopped after ${rounds} round${rounds === 1 ? '' : 's'}`, { rounds });
    });
  return cmd;
}
