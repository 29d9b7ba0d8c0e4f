import { openContext, type Context } from '../service/context.js';
import { recoverInterrupted } from '../service/recovery.js';
import { DEFAULT_PROJECT, machineActor, type Actor } from '../model/actor.js';

/**
 * The CLI's one context per process, opened on first use so that `--help` and argument
 * errors never touch the store or libvirt.
 */
let ctx: Context | undefined;

export async function context(): Promise<Context> {
  if (!ctx) {
    ctx = openContext({
      onSlowLibvirtCall: (n) => say(`  still waiting for libvirt (${n.uri}) to finish "${n.call}": ${Math.round(n.elapsedMs / 1000)} s${n.hint ? ` (${n.hint})` : ''}`),
    });
    for (const line of await recoverInterrupted(ctx)) process.stderr.write(`kumo: ${line}\n`);
  }
  return ctx;
}

/** The context if a command opened one (the audit line then goes through it). */
export const openedContext = (): Context | undefined => ctx;

export function closeContext(): void {
  ctx?.close();
  ctx = undefined;
}

/** The project the global --project option picked (default: default). */
let project = DEFAULT_PROJECT;
export const setProject = (name: string | undefined): void => { project = name ?? DEFAULT_PROJECT; };

/** Who a CLI command acts as: root on the machine, an admin, in the --project it picked. */
export const actor = (): Actor => machineActor(project);

export const say = (line: string) => process.stderr.write(`${line}\n`);

/** commander's collector for an option given several times (--network a --network b). */
export const collect = (value: string, all: string[]) => [...all, value];
