import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Context } from '../service/context.js';
import { HostService } from '../service/host.js';
import { MonitoringService } from '../service/monitoring.js';
import type { Collector } from '../service/metrics/collector.js';
import { notFound } from '../model/errors.js';
import { errors, NameParams } from './schemas.js';

/** Upper bounds (seconds) of the request latency histogram: a list answers in ms, a stop can take a minute. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

interface Series {
  count: number;
  sum: number;
  /** Cumulative counts per bucket of LATENCY_BUCKETS (the +Inf bucket is `count`). */
  buckets: number[];
}

/**
 * Request counts and latency of the API, by method, route template (bounded: never the raw URL,
 * whose names would make a series per instance) and status code.
 */
export class RequestMetrics {
  private readonly series = new Map<string, { method: string; route: string; code: string; s: Series }>();

  observe(method: string, route: string, code: number, seconds: number): void {
    const key = `${method} ${route} ${code}`;
    let e = this.series.get(key);
    if (!e) {
      e = { method, route, code: String(code), s: { count: 0, sum: 0, buckets: LATENCY_BUCKETS.map(() => 0) } };
      this.series.set(key, e);
    }
    e.s.count++;
    e.s.sum += seconds;
    LATENCY_BUCKETS.forEach((le, i) => { if (seconds <= le) e.s.buckets[i]!++; });
  }

  /** An onResponse hook that observes every answered request. */
  hook() {
    return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
      const route = req.routeOptions.url ?? 'unmatched';
      this.observe(req.method, route, reply.statusCode, reply.elapsedTime / 1000);
    };
  }

  render(): string {
    const rows = [...this.series.values()].sort((a, b) => `${a.route} ${a.method} ${a.code}`.localeCompare(`${b.route} ${b.method} ${b.code}`));
    const out = [
      '# HELP kumo_api_requests_total API requests answered, by method, route and status code.',
      '# TYPE kumo_api_requests_total counter',
      ...rows.map((r) => `kumo_api_requests_total{${labels(r)}} ${r.s.count}`),
      '# HELP kumo_api_request_duration_seconds Time from receiving an API request to having answered it.',
      '# TYPE kumo_api_request_duration_seconds histogram',
    ];
    for (const r of rows) {
      const l = labels(r);
      LATENCY_BUCKETS.forEach((le, i) => out.push(`kumo_api_request_duration_seconds_bucket{${l},le="${le}"} ${r.s.buckets[i]}`));
      out.push(`kumo_api_request_duration_seconds_bucket{${l},le="+Inf"} ${r.s.count}`);
      out.push(`kumo_api_request_duration_seconds_sum{${l}} ${r.s.sum}`);
      out.push(`kumo_api_request_duration_seconds_count{${l}} ${r.s.count}`);
    }
    return `${out.join('\n')}\n`;
  }
}

const labels = (r: { method: string; route: string; code: string }) =>
  `method="${escapeLabel(r.method)}",route="${escapeLabel(r.route)}",code="${escapeLabel(r.code)}"`;

export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Per-host capacity and what kumo gave out there, read at scrape time (HostService asks each libvirt). */
export async function renderHostCapacity(ctx: Context): Promise<string> {
  const hosts = await new HostService(ctx).list();
  const families: [string, string, (h: (typeof hosts)[number]) => number | undefined][] = [
    ['kumo_host_cpus', 'CPUs libvirt reports on the host.', (h) => h.cpus],
    ['kumo_host_memory_bytes', 'Memory libvirt reports on the host.', (h) => (h.memoryMiB === undefined ? undefined : h.memoryMiB * 1024 * 1024)],
    ['kumo_host_allocated_vcpus', 'Virtual CPUs kumo gave to instances on the host.', (h) => h.allocatedVcpus],
    ['kumo_host_allocated_memory_bytes', 'Memory kumo gave to instances on the host.', (h) => h.allocatedMiB * 1024 * 1024],
    ['kumo_host_instances', 'kumo instances placed on the host.', (h) => h.instances],
    ['kumo_host_reachable', 'Whether kumo reached the host when this page was made (1) or not (0).', (h) => (h.up ? 1 : 0)],
  ];
  const out: string[] = [];
  for (const [name, help, value] of families) {
    const lines = hosts.flatMap((h) => {
      const v = value(h);
      return v === undefined ? [] : [`${name}{host="${escapeLabel(h.name)}"} ${v}`];
    });
    if (lines.length) out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, ...lines);
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

export interface MonitorOptions {
  /** How often the collector reads every hypervisor (default 5 s). */
  intervalMs?: number;
  /** Also write rounds to KUMO_HOME/metrics.db (default yes: `kumo stats` then has the history). */
  record?: boolean;
}

/** What the server's collector is: the service that made it and the collector itself. */
export interface ServerMonitor {
  service: MonitoringService;
  collector: Collector;
}

/** The server's collector, not yet started (buildServer starts it once every route is registered). */
export function createMonitor(ctx: Context, opts: MonitorOptions): ServerMonitor {
  const service = new MonitoringService(ctx);
  const collector = service.collector({ intervalMs: opts.intervalMs ?? 5_000, record: opts.record ?? true });
  // A failed round is the collector's business (the host shows down); never crash the server for it.
  collector.onError(() => undefined);
  return { service, collector };
}

const HistoryQuery = z.object({
  since: z.coerce.number().int().min(0).optional().describe('only readings from this time on (epoch ms)'),
});

const Reading = z.object({
  at: z.number().describe('epoch ms'),
  state: z.string(),
  cpuPct: z.number().optional().describe('100 = one vCPU busy'),
  memRssKiB: z.number().optional(),
  rxBps: z.number().optional(), txBps: z.number().optional(),
  rdBps: z.number().optional(), wrBps: z.number().optional(),
});

/** Routes under /api/v1 (behind the bearer token): what the server's collector holds of an instance, for live charts. */
export function readingRoutes(monitor: ServerMonitor | undefined, ctx: Context): FastifyPluginAsyncZod {
  return async (app) => {
    app.get('/instances/:name/readings', {
      schema: {
        tags: ['instances'], operationId: 'instanceReadings', params: NameParams, querystring: HistoryQuery,
        summary: 'the server collector\'s recent readings of an instance (rates per interval), oldest first: for live charts',
        response: { 200: z.object({ intervalMs: z.number(), readings: z.array(Reading) }), ...errors(400, 404) },
      },
    }, async (req) => {
      const { name } = req.params;
      if (!ctx.instances.get(name)) throw notFound(`instance "${name}" does not exist`, 'see GET /api/v1/instances');
      const samples = monitor?.collector.history(name, req.query.since ?? 0) ?? [];
      return {
        intervalMs: monitor?.collector.snapshot().intervalMs ?? 0,
        readings: samples.map((s) => ({
          at: s.at, state: s.state,
          ...(s.rates ? { cpuPct: s.rates.cpuPct, rxBps: s.rates.rxBps, txBps: s.rates.txBps, rdBps: s.rates.rdBps, wrBps: s.rates.wrBps } : {}),
          ...(s.memRssKiB !== undefined ? { memRssKiB: s.memRssKiB } : {}),
        })),
      };
    });
  };
}
