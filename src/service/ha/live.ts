import type { Context } from '../context.js';
import { DEFAULT_WATCH, type WatchOptions } from '../../model/ha.js';
import { fenceHost } from './fence.js';
import { keepDomainCopy, placeElsewhere, startOn, undefineMoved } from './restart.js';
import { HaWatcher, type HaDeps } from './watcher.js';

/** A beat's question may take twice the interval, within 1-5 s: short enough to count misses, long enough for a busy TCG host. */
export const beatTimeoutMs = (intervalMs: number): number => Math.min(5_000, Math.max(1_000, 2 * intervalMs));

/**
 * The watcher on the real hosts: libvirt asked over kumo's protocol connection (nodeinfo, a
 * short timeout), the shell with `true`, the fence of fence.ts, create's placement and the
 * domain copy of restart.ts.
 */
export function liveWatcher(ctx: Context, opts: WatchOptions = DEFAULT_WATCH, hooks: Pick<HaDeps, 'event' | 'log'> = {}): HaWatcher {
  const timeoutMs = beatTimeoutMs(opts.intervalMs);
  const deps: HaDeps = {
    now: () => Date.now(),
    libvirtAnswers: (host) => ctx.virshFor(host).nodeInfo(timeoutMs).then(() => true, () => false),
    shellAnswers: (host) => ctx.shellOf(host).run('true', [], { timeoutMs }).then(() => true, () => false),
    fence: (host) => fenceHost(ctx, host),
    place: (r, exclude) => placeElsewhere(ctx, r, exclude),
    start: (r, to) => startOn(ctx, r, to),
    undefine: (host, r) => undefineMoved(ctx, host, r),
    keepCopy: (host, r) => keepDomainCopy(ctx, host, r),
    ...hooks,
  };
  return new HaWatcher(ctx, deps, opts);
}
