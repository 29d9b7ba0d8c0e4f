import { invalid } from './errors.js';

/**
 * A host's HA state. up: it answers; down: missed beats, not fenced yet; fenced: its fence said
 * it is off, and its HA instances start elsewhere; unfenced: it could not be fenced, so nothing
 * of it starts elsewhere (it might still run them).
 */
export type HaState = 'up' | 'down' | 'fenced' | 'unfenced';

/** One HA instance started on another host. */
export interface HaMove {
  instance: string;
  to: string;
  at: string;
}

/** What `kumo host show` tells of a host's failure: down at, fenced at, moved what where, rejoined at. */
export interface HostHa {
  state: HaState;
  downAt?: string;
  fencedAt?: string;
  rejoinedAt?: string;
  fenceError?: string;
  moved: HaMove[];
}

/** How a host is fenced: the lab's own kill of its libvirtd and guests, a command, or not at all. */
export type FenceKind = 'lab' | 'command' | 'none';

export const FENCE_NONE = 'none';
/** How long a fence command may take before it counts as failed. */
export const FENCE_TIMEOUT_MS = 60_000;

export interface WatchOptions {
  intervalMs: number;
  misses: number;
}

export const DEFAULT_WATCH: WatchOptions = { intervalMs: 1_000, misses: 3 };

/** `--interval SECONDS` and `--misses N`, refused with the fix when out of range. */
export function parseWatchOptions(o: { interval?: string; misses?: string }): WatchOptions {
  const seconds = o.interval === undefined ? DEFAULT_WATCH.intervalMs / 1000 : Number(o.interval);
  if (!Number.isFinite(seconds) || seconds < 0.1 || seconds > 3600) {
    throw invalid(`--interval must be seconds from 0.1 to 3600, got "${o.interval}"`, 'e.g. --interval 1 (a beat a second)');
  }
  const misses = o.misses === undefined ? DEFAULT_WATCH.misses : Number(o.misses);
  if (!Number.isInteger(misses) || misses < 1 || misses > 1000) {
    throw invalid(`--misses must be a whole number from 1 to 1000, got "${o.misses}"`, 'e.g. --misses 3 (down after three missed beats)');
  }
  return { intervalMs: Math.round(seconds * 1000), misses };
}

/** A fence as given to `kumo host set --fence`: a command, or 'none'; refused when empty. */
export function checkFence(fence: string): string {
  const f = fence.trim();
  if (!f) throw invalid('--fence is empty', "give the command that powers the host off (e.g. --fence 'ipmitool -H bmc-kvm1 -U admin -f /root/ipmi.pw chassis power off'), or --fence none");
  if (f.length > 4000) throw invalid(`the fence command is ${f.length} characters long`, 'put it in a script and give its path');
  return f;
}
