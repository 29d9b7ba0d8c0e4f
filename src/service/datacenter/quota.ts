import type { Context } from '../context.js';
import { groupMembers, type Datacenter, type InstanceGroup } from '../../model/datacenter.js';
import { notFound, type KumoError } from '../../model/errors.js';
import { firstExcess, quotaExceeded, type QuotaUse } from '../../model/quotas.js';
import type { Change, FilePath } from './kind.js';

/**
 * What plan refuses about the file's project: that it does not exist, or that the creates
 * would exceed its quotas. The creates are counted in apply's order from today's use, and the
 * first one that would not fit is refused at its section of the file (instances.GROUP,
 * shares.NAME), so the file's line and column say where. apply checks again, atomically, as it
 * creates (another create may take the room between plan and apply).
 */
export function projectProblems(ctx: Context, dc: Datacenter, changes: readonly Change[]): { path: FilePath; error: KumoError }[] {
  const project = ctx.projects.get(dc.project);
  if (!project) {
    return [{ path: ['project'], error: notFound(`project "${dc.project}" does not exist`, `an admin makes it first: kumo project create ${dc.project}`) }];
  }
  const now = ctx.projects.use(dc.project);
  const use: QuotaUse = { ...now };
  const problems: { path: FilePath; error: KumoError }[] = [];
  const groupOf = memberGroups(dc);
  for (const c of changes) {
    const counted = needOf(ctx, dc, c, groupOf);
    if (!counted) continue;
    const excess = firstExcess(project.limits, use, counted.need);
    if (excess) {
      const error = quotaExceeded(dc.project, excess);
      // "has" counts what the file makes before this one: say so, the project may hold less today.
      if (use[excess.quota] !== now[excess.quota]) error.message = error.message.replace(/ \(quota /, `, counting this file's creates before it (${now[excess.quota]} today) (quota `);
      if (!problems.some((p) => p.path.join('.') === counted.path.join('.'))) problems.push({ path: counted.path, error });
      continue;
    }
    for (const [q, n] of Object.entries(counted.need) as [keyof QuotaUse, number][]) use[q] += n;
  }
  return problems;
}

/** Each instance of the file by name → its group and the group's spec (one pass, not one per change). */
function memberGroups(dc: Datacenter): Map<string, [string, InstanceGroup]> {
  return new Map(Object.entries(dc.instances).flatMap(([group, g]) => groupMembers(group, g.count).map((n) => [n, [group, g]] as const)));
}

/** What one change adds to the project's use (a recreate: the difference of sizes), and where the file declares it. */
function needOf(ctx: Context, dc: Datacenter, c: Change, groupOf: Map<string, [string, InstanceGroup]>): { need: Partial<QuotaUse>; path: FilePath } | undefined {
  if (c.kind === 'share' && c.action === 'create') return { need: { shares: 1 }, path: ['shares', c.name] };
  if (c.kind !== 'instance' || (c.action !== 'create' && c.action !== 'recreate')) return undefined;
  const found = groupOf.get(c.name);
  if (!found) return undefined;
  const [group, g] = found;
  const own = dc.flavors[g.flavor];
  const size = own ? { vcpus: own.vcpus, ramMiB: own.ram_mib, diskGiB: own.disk_gib } : ctx.flavors.get(g.flavor);
  if (!size) return undefined; // refused at the group's flavor already
  const old = c.action === 'recreate' ? ctx.instances.get(c.name) : undefined;
  return {
    need: { instances: old ? 0 : 1, vcpus: size.vcpus - (old?.vcpus ?? 0), ramMiB: size.ramMiB - (old?.ramMiB ?? 0), diskGiB: size.diskGiB - (old?.diskGiB ?? 0) },
    path: ['instances', group],
  };
}
