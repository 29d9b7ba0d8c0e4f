import type { Context } from './context.js';
import { recoverJournal } from './undo.js';
// Services that journal their own undo and finish steps register them when they load.
import './instances.js';
import './shares.js';
import './loadbalancers.js';
import './migration-settle.js';

/**
 * Run by every kumo process as it opens its context (CLI commands, `kumo serve`): undoes or
 * finishes what an interrupted kumo left (service/undo.ts), with every service's handlers loaded.
 */
export async function recoverInterrupted(ctx: Context): Promise<string[]> {
  return recoverJournal(ctx);
}
