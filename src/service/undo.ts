import { rm } from 'node:fs/promises';
import type { Context } from './context.js';
import { processAlive } from '../exec/process.js';
import type { UndoStep } from '../store/journal.js';
import { DomainDevices } from '../drivers/libvirt/devices.js';
import { HostLinks, OvsBridges } from '../drivers/net/links.js';
import { removeWhenItAppears } from './domain-define.js';
import { stepBoundary } from './fault-points.js';
import { noSpaceError } from './disk-full.js';

/** Registers how to undo a step; what it returns rewrites that step in the journal (a call that ended). */
export type Undo = (step: UndoStep) => (changed: UndoStep) => void;
/** Marks a step boundary that journals nothing (the fault tests stop a process at each one). */
export type Step = () => void;

/**
 * Undo and finish handlers of services, by name. A service registers its own when its module
 * loads (this module cannot import services: they import it); service/recovery.ts loads them all
 * before it recovers anything.
 */
const handlers = new Map<string, (ctx: Context, args: Record<string, string>) => Promise<void>>();
export function onRecover(handler: string, run: (ctx: Context, args: Record<string, string>) => Promise<void>): void {
  handlers.set(handler, run);
}

/**
 * Runs a multi-step operation so that it either completes or leaves nothing behind.
 * Each step registers how to undo itself; the list is written to the journal before the
 * next step runs, so a crash half-way is undone by `recoverInterrupted` on the next start.
 */
export async function withUndo<T>(
  ctx: Context,
  operation: string,
  body: (undo: Undo, step: Step) => Promise<T>,
): Promise<T> {
  let id: number;
  try {
    id = ctx.journal.open(operation);
  } catch (e) {
    throw noSpaceError(e, ctx.paths.home, `"${operation}"`, true) ?? e; // the store itself is full: nothing was made
  }
  const steps: UndoStep[] = [];
  const boundary = () => stepBoundary(operation);
  try {
    const result = await body((step) => {
      steps.push(step);
      ctx.journal.setUndo(id, steps);
      boundary();
      const at = steps.length - 1;
      return (changed) => {
        steps[at] = changed;
        ctx.journal.setUndo(id, steps);
        boundary();
      };
    }, boundary);
    ctx.journal.close(id);
    return result;
  } catch (e) {
    // Finishing steps are for a crash only: here the caller hears of the failure and may retry.
    const left = await undoAll(ctx, steps.filter((s) => !(s.kind === 'service' && s.when === 'after-crash')));
    // What could not be undone (a daemon down) stays journaled: the next start retries it.
    try {
      await withStoreRoom(ctx, async () => (left.length ? ctx.journal.release(id, left.map((l) => l.step)) : ctx.journal.close(id)));
    } catch {
      // Still no room: the entry keeps this process's id and its steps, so the next kumo start,
      // seeing this process gone, undoes them again (every undo is idempotent).
    }
    throw noSpaceError(e, ctx.paths.home, `"${operation}"`, !left.length) ?? e;
  }
}

/** Undoes the steps, the last first; returns those that failed, with why (their order kept). */
async function undoAll(ctx: Context, steps: UndoStep[]): Promise<{ step: UndoStep; why: string }[]> {
  const failed: { step: UndoStep; why: string }[] = [];
  for (const step of [...steps].reverse()) {
    try {
      await withStoreRoom(ctx, () => runUndo(ctx, step));
    } catch (e) {
      failed.unshift({ step, why: `${step.kind === 'service' ? step.handler : step.kind}: ${(e as Error).message}` });
    }
  }
  return failed;
}

/**
 * Runs `fn` (a store write), and once more when it found the filesystem full: after a checkpoint
 * that restarts SQLite's write-ahead log, the next write reuses the log file's room from its start
 * instead of growing it (a truncating checkpoint would give that room away to the next writer).
 */
async function withStoreRoom<T>(ctx: Context, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (!noSpaceError(e, ctx.paths.home, 'the store')) throw e;
    try {
      ctx.db.pragma('wal_checkpoint(RESTART)');
    } catch {
      throw e; // no checkpoint now (another kumo reads): the first error says what happened
    }
    return fn();
  }
}

async function runUndo(ctx: Context, step: UndoStep): Promise<void> {
  switch (step.kind) {
    case 'service': {
      const run = handlers.get(step.handler);
      if (!run) throw new Error(`no handler "${step.handler}" is loaded (service/recovery.ts loads them)`);
      await run(ctx, step.args);
      return;
    }
    case 'remove-path':
      await rm(step.path, { recursive: true, force: true });
      return;
    case 'undefine-domain':
      // A define still in flight may make the domain after this: wait for it (bounded) and remove it.
      if (step.uuid && step.pendingUntil) await removeWhenItAppears(ctx.virshAt(step.uri), step.uuid, Date.parse(step.pendingUntil));
      else await ctx.virshAt(step.uri).removeDomain(step.uuid ?? step.name);
      return;
    case 'forget-instance':
      ctx.instances.delete(step.name);
      return;
    case 'forget-volume':
      ctx.volumes.delete(step.name);
      return;
    case 'release-volume':
      ctx.volumes.release(step.name);
      return;
    case 'detach-disk':
      // Only this file at this target: a disk someone else put there stays.
      await new DomainDevices(ctx.virshAt(step.uri)).detachDisk(step.domain, { file: step.file, target: step.target });
      return;
    case 'forget-network-project':
      if (ctx.projects.networkProject(step.name) === step.project) ctx.projects.forgetNetwork(step.name);
      return;
    case 'remove-network':
      await ctx.virshAt(step.uri).removeNetwork(step.name);
      return;
    case 'remove-host-bridge':
      await (step.ovs ? new OvsBridges(ctx.exec) : new HostLinks(ctx.exec)).remove(step.bridge);
      return;
  }
}


/**
 * Undoes (or finishes) what operations interrupted by a crash had made, and retries undo steps
 * that failed before. What fails again stays journaled for the next start (and `kumo doctor`).
 * Returns a line for each entry. Call it through service/recovery.ts, which loads the handlers.
 */
export async function recoverJournal(ctx: Context): Promise<string[]> {
  const done: string[] = [];
  for (const entry of ctx.journal.pending().filter((e) => e.pid === 0 || !processAlive(e.pid))) {
    if (!ctx.journal.claim(entry.id, entry.pid)) continue; // another kumo took it
    const left = await undoAll(ctx, entry.undo);
    const what = entry.pid === 0 ? 'retried the undo of' : 'undid interrupted';
    if (!left.length) {
      ctx.journal.close(entry.id);
      done.push(`${what} "${entry.operation}" from ${entry.startedAt}`);
      continue;
    }
    ctx.journal.release(entry.id, left.map((l) => l.step));
    done.push(`${what} "${entry.operation}" from ${entry.startedAt}, but ${left.length} step(s) failed and are retried on the next start` +
      ` (${left.map((l) => l.why).join('; ')}); \`kumo doctor\` lists them`);
  }
  return done;
}
