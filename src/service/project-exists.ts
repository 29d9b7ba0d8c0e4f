import type { Context } from './context.js';
import { checkName } from '../model/names.js';
import { notFound } from '../model/errors.js';

/**
 * The one place users, tokens and the API's `?project=` ask whether a project exists.
 * Until kumo keeps a projects table, every valid project name does (`default` always).
 * When projects are stored, this asks the store: nothing else changes.
 */
export function projectExists(_ctx: Pick<Context, 'db'>, name: string): boolean {
  try {
    checkName('project', name);
    return true;
  } catch {
    return false;
  }
}

/** The project's name, or NOT_FOUND naming it (valid names only: the check of names comes first). */
export function requireProject(ctx: Pick<Context, 'db'>, name: string): string {
  checkName('project', name);
  if (!projectExists(ctx, name)) throw notFound(`there is no project "${name}"`, 'see `kumo project list`');
  return name;
}
