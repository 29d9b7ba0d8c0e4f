import type { DomainStats } from '../drivers/libvirt/domstats.js';
import type { RuntimeState } from '../model/types.js';

/**
 * One reading of one instance: the cumulative counters libvirt gave, and the rates since the
 * previous reading of the same QEMU process. This flat shape is what the ring buffer holds,
 * what metrics.db stores (a column each) and what `kumo stats --json` prints.
 */
export interface InstanceSample {
  instance: string;
  host: string;
  /** Epoch ms, the middle of the virsh call that read it. */
  at: number;
  state: RuntimeState;
  /** Counters; absent while the domain does not run (libvirt has none then). */
  cpuTimeNs?: number;
  vcpus?: number;
  memCurrentKiB?: number;
  memRssKiB?: number;
  /**
   * In use inside the guest (total minus available) as its balloon driver last reported it:
   * only current if the domain's <memballoon> has a stats period, else frozen at boot.
   */
  memUsedKiB?: number;
  rdBytes?: number;
  rdReqs?: number;
  wrBytes?: number;
  wrReqs?: number;
  rxBytes?: number;
  rxPkts?: number;
  rxErrs?: number;
  rxDrop?: number;
  txBytes?: number;
  txPkts?: number;
  txErrs?: number;
  txDrop?: number;
  /** Rates over the last `intervalMs`; absent on a first reading or after the counters restarted. */
  rates?: Rates;
}

export interface Rates {
  intervalMs: number;
  /** 100 = one vCPU busy all the time (a 2-vCPU guest can show 200), like top. */
  cpuPct: number;
  rdBps: number;
  wrBps: number;
  rdIops: number;
  wrIops: number;
  rxBps: number;
  txBps: number;
  rxPps: number;
  txPps: number;
}

/** The counter fields, in the order metrics.db keeps them. */
export const COUNTERS = [
  'cpuTimeNs', 'vcpus', 'memCurrentKiB', 'memRssKiB', 'memUsedKiB',
  'rdBytes', 'rdReqs', 'wrBytes', 'wrReqs',
  'rxBytes', 'rxPkts', 'rxErrs', 'rxDrop', 'txBytes', 'txPkts', 'txErrs', 'txDrop',
] as const satisfies readonly (keyof InstanceSample)[];

export const RATES = ['cpuPct', 'rdBps', 'wrBps', 'rdIops', 'wrIops', 'rxBps', 'txBps', 'rxPps', 'txPps'] as const satisfies readonly (keyof Rates)[];

/** Which counters must only grow while the same QEMU process runs (the others are gauges). */
const MONOTONIC = ['cpuTimeNs', 'rdBytes', 'rdReqs', 'wrBytes', 'wrReqs', 'rxBytes', 'rxPkts', 'txBytes', 'txPkts'] as const;

export function sampleOf(instance: string, host: string, at: number, d: DomainStats): InstanceSample {
  const s: InstanceSample = { instance, host, at, state: d.state };
  // libvirt still reports stale cpu.time for a stopped domain: only running ones have counters.
  if (d.cpuTimeNs === undefined || ['shut off', 'crashed', 'unknown', 'missing'].includes(d.state)) return s;
  const m = d.memory;
  const used = m.availableKiB !== undefined ? m.availableKiB - (m.usableKiB ?? m.unusedKiB ?? m.availableKiB) : undefined;
  Object.assign(s, {
    cpuTimeNs: d.cpuTimeNs,
    ...(d.vcpus !== undefined ? { vcpus: d.vcpus } : {}),
    ...(m.currentKiB !== undefined ? { memCurrentKiB: m.currentKiB } : {}),
    ...(m.rssKiB !== undefined ? { memRssKiB: m.rssKiB } : {}),
    ...(used !== undefined && used >= 0 ? { memUsedKiB: used } : {}),
    ...d.block, ...d.net,
  });
  return s;
}

/**
 * Rates between two readings of one instance, or undefined when they cannot be compared: a
 * counter went down (the domain restarted or migrated: a new QEMU process starts from zero),
 * it moved hosts, or either reading has no counters.
 */
export function ratesBetween(prev: InstanceSample, cur: InstanceSample): Rates | undefined {
  const ms = cur.at - prev.at;
  if (ms <= 0 || prev.host !== cur.host || prev.cpuTimeNs === undefined || cur.cpuTimeNs === undefined) return undefined;
  for (const k of MONOTONIC) {
    if ((cur[k] ?? 0) < (prev[k] ?? 0)) return undefined;
  }
  const per = (k: (typeof MONOTONIC)[number]) => ((cur[k] ?? 0) - (prev[k] ?? 0)) / (ms / 1000);
  return {
    intervalMs: ms,
    cpuPct: (cur.cpuTimeNs - prev.cpuTimeNs) / (ms * 1e6) * 100,
    rdBps: per('rdBytes'), wrBps: per('wrBytes'), rdIops: per('rdReqs'), wrIops: per('wrReqs'),
    rxBps: per('rxBytes'), txBps: per('txBytes'), rxPps: per('rxPkts'), txPps: per('txPkts'),
  };
}
