import type { Context } from '../context.js';
import { notFound } from '../../model/errors.js';
import { checkFence, FENCE_NONE, type FenceKind, type HostHa } from '../../model/ha.js';
import { fenceKind, unfencedFix } from './fence.js';

/** A host's HA as `kumo host show` and GET /hosts/:name give it (never the fence command itself: it may hold a password). */
export interface HostHaView {
  fence: FenceKind;
  ha: HostHa & { fix?: string };
}

export function hostHaView(ctx: Context, host: string): HostHaView {
  if (!ctx.hosts.get(host)) throw notFound(`host "${host}" is not registered`, 'see `kumo host list`');
  const story = ctx.hostHa.get(host) ?? { state: 'up' as const, moved: [] };
  return { fence: fenceKind(ctx, host), ha: { ...story, ...(story.state === 'unfenced' ? { fix: unfencedFix(host) } : {}) } };
}

/** Every host's HA state at once (host list). */
export function haStates(ctx: Context): Map<string, HostHa['state']> {
  return new Map(ctx.hosts.list().map((h) => [h.name, ctx.hostHa.get(h.name)?.state ?? 'up']));
}

/**
 * `kumo host set NAME --fence 'COMMAND' | none` (root on the machine only: the command runs on
 * this machine as root). Returns the kind it is now.
 */
export function setFence(ctx: Context, host: string, fence: string): FenceKind {
  if (!ctx.hosts.get(host)) throw notFound(`host "${host}" is not registered`, 'see `kumo host list`; register it with kumo host add NAME --uri URI');
  const f = checkFence(fence);
  ctx.hosts.setFence(host, f === FENCE_NONE ? FENCE_NONE : f);
  return fenceKind(ctx, host);
}
