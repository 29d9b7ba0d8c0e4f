import type { DomainStats } from '../../drivers/libvirt/domstats.js';
/** Samples from libvirt's domain statistics, and the rates between two of them. */
import type { InstanceSample, Rates } from '../../model/metrics.js';

export type { InstanceSample, Rates } from '../../model/metrics.js';

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
