import { rm } from 'node:fs/promises';
import type { Context } from './context.js';
import { processAlive } from '../exec/process.js';
import type { UndoStep } from '../store/journal.js';
import { DomainDevices } from '../drivers/libvirt/devices.js';
import { HostLinks, OvsBridges } from '../drivers/net/links.js';
import { removeWhenItAppears } from './domain-define.js';

/** Registers how to undo a step; what it returns rewrites that step in the journal (a call that ended). */
export type Undo = (step: UndoStep) => (changed: UndoStep) => void;

/**
 * Runs a multi-step operation so that it either completes or leaves nothing behind.
 * Each step registers how to undo itself; the list is written to the journal before the
 * next step runs, so a crash half-way is undone by `recoverInterrupted` on the next start.
 */
export async function withUndo<T>(
  ctx: Context,
  operation: string,
  body: (undo: Undo) => Promise<T>,
): Promise<T> {
  const id = ctx.journal.open(operation);
  const steps: UndoStep[] = [];
  try {
    const result = await body((step) => {
      steps.push(step);
      ctx.journal.setUndo(id, steps);
      const at = steps.length - 1;
      return (changed) => {
        steps[at] = changed;
        ctx.journal.setUndo(id, steps);
      };
    });
    ctx.journal.close(id);
    return result;
  } catch (e) {
    await undoAll(ctx, steps);
    ctx.journal.close(id);
    throw e;
  }
}

async function undoAll(ctx: Context, steps: UndoStep[]): Promise<string[]> {
  const problems: string[] = [];
  for (const step of [...steps].reverse()) {
    try {
      await runUndo(ctx, step);
    } catch (e) {
      problems.push(`${step.kind}: ${(e as Error).message}`);
    }
  }
  return problems;
}

async function runUndo(ctx: Context, step: UndoStep): Promise<void> {
  switch (step.kind) {
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


/** Undoes what operations interrupted by a crash had made. Returns what was cleaned up. */
export async function recoverInterrupted(ctx: Context): Promise<string[]> {
  const done: string[] = [];
  for (const entry of ctx.journal.pending().filter((e) => !processAlive(e.pid))) {
    const problems = await undoAll(ctx, entry.undo);
    ctx.journal.close(entry.id);
    done.push(`undid interrupted "${entry.operation}" from ${entry.startedAt}` +
      (problems.length ? ` (with problems: ${problems.join('; ')})` : ''));
  }
  return done;
}
