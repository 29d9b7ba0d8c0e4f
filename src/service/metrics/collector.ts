import type { DomainStats, NicCounters, DiskCounters } from '../../drivers/libvirt/domstats.js';
import type { RuntimeState } from '../../model/types.js';
import { Ring } from './ring.js';
import { ratesBetween, sampleOf, type InstanceSample } from './sample.js';
import type { HostStatus, MetricsStore } from '../../store/metrics.js';

/**
 * What the collector reads, given to it rather than looked up, so that it depends on no service
 * and can be driven with fakes: the hypervisors to read and the instances to map domains to.
 * (src/service/monitoring.ts builds one from the Context.)
 */
export interface Inventory {
  /** Every hypervisor host now; read again each round, so added and removed hosts follow. */
  hosts(): HypervisorTarget[];
  /** kumo's instances (domain name = instance name) and the host each is recorded on. */
  instances(): { name: string; host: string }[];
}

export interface HypervisorTarget {
  name: string;
  /** All domains' counters on that host (readDomainStats through its Virsh). */
  read(): Promise<DomainStats[]>;
}

/** The newest reading of an instance, with per-device detail for an exporter's labels. */
export interface InstanceMetrics {
  sample: InstanceSample;
  nics: NicCounters[];
  disks: DiskCounters[];
}

/**
 * What a Prometheus exporter (or the API) renders: the latest counters of every instance, and
 * the health of every host. Counters are cumulative, as Prometheus wants them (its rate() does
 * the rest); the rates kumo computed are there too, for gauges and for people.
 */
export interface MetricsSnapshot {
  /** Epoch ms of the newest completed round (0 before the first). */
  at: number;
  intervalMs: number;
  rounds: number;
  hosts: HostStatus[];
  instances: InstanceMetrics[];
  /** kumo instances that have no reading in the latest round: their host is down, or the domain is missing. */
  unreadable: { instance: string; host: string; state: RuntimeState; reason: string }[];
}

export interface RoundResult {
  at: number;
  samples: InstanceSample[];
  hosts: HostStatus[];
  unreadable: MetricsSnapshot['unreadable'];
}

export interface CollectorOptions {
  intervalMs?: number;
  /** Readings kept in memory per instance (the ring buffer); older ones live in the store only. */
  historySize?: number;
  /** Where rounds are persisted; none keeps them in memory only. */
  store?: MetricsStore;
  /** Longest a host may take to answer before it counts as down for this round. */
  hostTimeoutMs?: number;
  now?: () => number;
}

export const DEFAULT_INTERVAL_MS = 5_000;
export const DEFAULT_HISTORY_SIZE = 720; // an hour at the default interval

/**
 * Reads every hypervisor each interval, turns domains into instance samples with rates since the
 * previous reading, keeps a bounded history per instance and (optionally) writes each round to
 * metrics.db. A host that fails is recorded as down for that round; the loop never stops for it.
 */
export class Collector {
  readonly intervalMs: number;
  readonly historySize: number;
  private readonly store: MetricsStore | undefined;
  private readonly hostTimeoutMs: number;
  private readonly now: () => number;
  private readonly rings = new Map<string, Ring<InstanceSample>>();
  private readonly details = new Map<string, InstanceMetrics>();
  private hostStatus = new Map<string, HostStatus>();
  private unreadable: MetricsSnapshot['unreadable'] = [];
  private lastAt = 0;
  private rounds = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<RoundResult> | undefined;
  private stopped = true;
  private readonly listeners: ((r: RoundResult) => void)[] = [];
  private readonly errorListeners: ((e: unknown) => void)[] = [];

  constructor(private readonly inventory: Inventory, opts: CollectorOptions = {}) {
    this.intervalMs = opts.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.historySize = opts.historySize ?? DEFAULT_HISTORY_SIZE;
    this.store = opts.store;
    this.hostTimeoutMs = opts.hostTimeoutMs ?? Math.max(10_000, this.intervalMs);
    this.now = opts.now ?? Date.now;
  }

  /**
   * Takes earlier readings as the previous ones (e.g. the newest per instance from metrics.db),
   * so that a fresh process has rates from its first round on.
   */
  prime(samples: InstanceSample[]): void {
    for (const s of samples) {
      if (!this.rings.get(s.instance)?.size) this.ring(s.instance).push(s);
    }
  }

  onRound(listener: (r: RoundResult) => void): void {
    this.listeners.push(listener);
  }

  /** Errors of a round as a whole (the store failing to write); host failures are not errors. */
  onError(listener: (e: unknown) => void): void {
    this.errorListeners.push(listener);
  }

  /** One round now (waits for one already under way instead of overlapping it). */
  sampleOnce(): Promise<RoundResult> {
    this.running ??= this.round().finally(() => { this.running = undefined; });
    return this.running;
  }

  /** Rounds every intervalMs until stop(); the first starts at once. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const tick = async () => {
      const started = this.now();
      try {
        await this.sampleOnce();
      } catch (e) {
        for (const l of this.errorListeners) l(e);
      }
      if (this.stopped) return;
      // Keep the cadence: a slow round shortens the wait instead of pushing every later one back.
      this.timer = setTimeout(() => void tick(), Math.max(0, this.intervalMs - (this.now() - started)));
    };
    void tick();
  }

  /** Stops the loop and waits for a round under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }

  snapshot(): MetricsSnapshot {
    return {
      at: this.lastAt, intervalMs: this.intervalMs, rounds: this.rounds,
      hosts: [...this.hostStatus.values()].sort((a, b) => a.host.localeCompare(b.host)),
      instances: [...this.details.values()].sort((a, b) => a.sample.instance.localeCompare(b.sample.instance)),
      unreadable: this.unreadable,
    };
  }

  /** What memory holds of one instance, oldest first, from `since` (epoch ms) on. */
  history(instance: string, since = 0): InstanceSample[] {
    return (this.rings.get(instance)?.toArray() ?? []).filter((s) => s.at >= since);
  }

  private ring(instance: string): Ring<InstanceSample> {
    let r = this.rings.get(instance);
    if (!r) {
      r = new Ring(this.historySize);
      this.rings.set(instance, r);
    }
    return r;
  }

  private async round(): Promise<RoundResult> {
    const hosts = this.inventory.hosts();
    const records = this.inventory.instances();
    const readings = await Promise.all(hosts.map((h) => this.readHost(h)));
    const samples: InstanceSample[] = [];
    const statuses: HostStatus[] = [];
    const unreadable: MetricsSnapshot['unreadable'] = [];
    const byHost = new Map(hosts.map((h, i) => [h.name, readings[i]!]));
    for (const r of readings) statuses.push(r.status);

    for (const rec of records) {
      const reading = byHost.get(rec.host);
      if (!reading) {
        unreadable.push({ instance: rec.name, host: rec.host, state: 'unknown', reason: `host ${rec.host} is not a registered hypervisor` });
        continue;
      }
      if (!reading.status.up) {
        unreadable.push({ instance: rec.name, host: rec.host, state: 'unknown', reason: `host ${rec.host} does not answer` });
        continue;
      }
      // Only the recorded host counts: during a live migration the domain exists on both.
      const dom = reading.domains.find((d) => d.name === rec.name);
      if (!dom) {
        unreadable.push({ instance: rec.name, host: rec.host, state: 'missing', reason: `no domain ${rec.name} on ${rec.host}` });
        continue;
      }
      const ring = this.ring(rec.name);
      const sample = sampleOf(rec.name, rec.host, reading.at, dom);
      const prev = ring.last();
      const rates = prev ? ratesBetween(prev, sample) : undefined;
      if (rates) sample.rates = rates;
      ring.push(sample);
      samples.push(sample);
      this.details.set(rec.name, { sample, nics: dom.nics, disks: dom.disks });
    }

    // Forget instances kumo no longer has (deleted): memory stays bounded by what exists.
    const known = new Set(records.map((r) => r.name));
    for (const name of [...this.rings.keys()]) if (!known.has(name)) this.rings.delete(name);
    const unread = new Set(unreadable.map((u) => u.instance));
    for (const name of [...this.details.keys()]) if (!known.has(name) || unread.has(name)) this.details.delete(name);
    this.hostStatus = new Map(statuses.map((s) => [s.host, s]));
    this.unreadable = unreadable;
    const at = this.now();
    this.lastAt = at;
    this.rounds++;
    const result: RoundResult = { at, samples, hosts: statuses, unreadable };
    // Listeners run before the store write so that a failing write still shows the round.
    for (const l of this.listeners) l(result);
    this.store?.write(samples, statuses, at);
    return result;
  }

  private async readHost(h: HypervisorTarget): Promise<{ status: HostStatus; domains: DomainStats[]; at: number }> {
    const t0 = this.now();
    const previous = this.hostStatus.get(h.name);
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${this.hostTimeoutMs} ms`)), this.hostTimeoutMs);
      });
      const domains = await Promise.race([h.read(), timeout]);
      const t1 = this.now();
      // The reading happened somewhere inside the call: its middle is the best guess.
      const at = Math.round((t0 + t1) / 2);
      return { status: { host: h.name, up: true, at: t0, durationMs: t1 - t0, domains: domains.length, lastUpAt: t0 }, domains, at };
    } catch (e) {
      const error = e instanceof Error ? e.message.split('\n')[0]! : String(e);
      const lastUpAt = previous?.up ? previous.at : previous?.lastUpAt;
      return {
        status: { host: h.name, up: false, at: t0, durationMs: this.now() - t0, domains: 0, error, ...(lastUpAt !== undefined ? { lastUpAt } : {}) },
        domains: [], at: t0,
      };
    } finally {
      clearTimeout(timer);
    }
  }
}
