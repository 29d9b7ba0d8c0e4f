import type { Context } from '../service/context.js';
import { DEFAULT_PROJECT, machineActor, type Actor } from '../model/actor.js';

/**
 * The CLI's one context per process, opened on first use so that `--help` and argument
 * errors never touch the store or libvirt.
 */
let ctx: Context | undefined;
let opening: Promise<Context> | undefined;

export function context(): Promise<Context> {
  opening ??= (async () => {
    // Loaded here, not at the top: the services, the store and libvirt's driver are most of the
    // CLI's code, and a command that never opens the context must not pay for loading them.
    const [{ openContext }, { recoverInterrupted }, { reportWaits, describeWait }] = await Promise.all([
      import('../service/context.js'), import('../service/recovery.js'), import('../service/waits.js')]);
    // Every step that waits over 2 s (a lease, a daemon, a slow libvirt call) says so on stderr.
    reportWaits((n) => say(`  ${describeWait(n, 'still waiting for')}`));
    ctx = openContext();
    for (const line of await recoverInterrupted(ctx)) process.stderr.write(`kumo: ${line}\n`);
    return ctx;
  })();
  // A context that could not be opened is tried again by the next caller, as before.
  opening.catch(() => { if (!ctx) opening = undefined; });
  return opening;
}

/** The context if a command opened one (the audit line then goes through it). */
export const openedContext = (): Context | undefined => ctx;

export function closeContext(): void {
  ctx?.close();
  ctx = undefined;
  opening = undefined;
}

/** The project the global --project option picked (default: default). */
let project = DEFAULT_PROJECT;
export const setProject = (name: string | undefined): void => { project = name ?? DEFAULT_PROJECT; };

/** Who a CLI command acts as: root on the machine, an admin, in the --project it picked. */
export const actor = (): Actor => machineActor(project);

export const say = (line: string) => process.stderr.write(`${line}\n`);

/** commander's collector for an option given several times (--network a --network b). */
export const collect = (value: string, all: string[]) => [...all, value];
