import type { Context } from './context.js';
import { checkName } from '../model/names.js';
import { notFound } from '../model/errors.js';

/** The one place users, tokens and the API's `?project=` ask whether a project exists: the projects table. */
export function projectExists(ctx: Pick<Context, 'projects'>, name: string): boolean {
  try {
    checkName('project', name);
  } catch {
    return false;
  }
  return ctx.projects.get(name) !== undefined;
}

/** The project's name, or NOT_FOUND naming it (valid names only: the check of names comes first). */
export function requireProject(ctx: Pick<Context, 'projects'>, name: string): string {
  checkName('project', name);
  if (!projectExists(ctx, name)) throw notFound(`there is no project "${name}"`, 'see `kumo project list`');
  return name;
}
