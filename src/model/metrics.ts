import type { RuntimeState } from './types.js';

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
