import type { Context } from './context.js';
import type { Actor } from '../model/actor.js';
import { notFound } from '../model/errors.js';
import { firstExcess, quotaExceeded, type QuotaUse } from '../model/quotas.js';

/**
 * Projects scope what an actor sees: its own project's resources only. An admin acts in the
 * project it picked (the CLI's --project, default `default`) and sees that one. A resource of
 * another project is answered exactly like a missing one, so its existence is not revealed.
 */
export const sees = (actor: Actor, project: string): boolean => project === actor.project;

/** The project an actor acts in, which must exist (a --project typo is refused, not created). */
export function actingProject(ctx: Context, actor: Actor): string {
  if (!ctx.projects.get(actor.project)) {
    throw notFound(`project "${actor.project}" does not exist`, 'see `kumo project list`; an admin makes one with `kumo project create NAME`');
  }
  return actor.project;
}

/**
 * An early look at the quotas, before slow work starts, so that a full project is refused at
 * once (the API answers it rather than failing an operation). Not a guarantee: reserve() is.
 */
export function checkRoom(ctx: Context, project: string, need: Partial<QuotaUse>): void {
  const excess = firstExcess(ctx.projects.get(project)?.limits ?? {}, ctx.projects.use(project), need);
  if (excess) throw quotaExceeded(project, excess);
}

/**
 * Checks the quotas and records the new resource (`write`, synchronous) in one transaction:
 * two creates, in this process or in two kumo processes, cannot both take the last room.
 */
export function reserve<T>(ctx: Context, project: string, need: Partial<QuotaUse>, write: () => T): T {
  const r = ctx.projects.reserve(project, need, write);
  if ('missing' in r) throw notFound(`project "${project}" does not exist`, 'see `kumo project list`');
  if ('excess' in r) throw quotaExceeded(project, r.excess);
  return r.value;
}
