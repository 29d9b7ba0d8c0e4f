import { actor, say } from './app.js';
import type { Context } from '../service/context.js';
import { InstanceService, type CreateRequest } from '../service/instances.js';
import { ConsoleService, openViewer } from '../service/consoles.js';
import type { ConsoleMode, Instance } from '../model/types.js';
import { invalid } from '../model/errors.js';
import { formatReadyCheck, parseReadyCheck, type ReadyCheck } from '../model/readiness.js';
import { parseSeconds } from '../model/sizes.js';
import type { Messages } from './i18n.js';

export interface LaunchOptions {
  console: ConsoleMode | 'auto';
  wait: boolean;
  /** What to wait for instead of the image's own readiness (--wait-for). */
  waitFor?: ReadyCheck;
  waitTimeoutMs?: number;
  messages: Messages['launch'];
}

/** `--wait` / `--wait-for CHECK`: whether to wait, and on what (undefined: the image's own check). */
export function parseWait(o: { wait?: boolean; waitFor?: string; waitTimeout?: string }): Pick<LaunchOptions, 'wait' | 'waitFor' | 'waitTimeoutMs'> {
  return {
    wait: Boolean(o.wait || o.waitFor !== undefined || o.waitTimeout !== undefined),
    ...(o.waitFor !== undefined ? { waitFor: parseReadyCheck(o.waitFor) } : {}),
    ...(o.waitTimeout !== undefined ? { waitTimeoutMs: parseSeconds('--wait-timeout', o.waitTimeout) * 1000 } : {}),
  };
}

/** Waits on the guest's readiness (what for is said after 2 s, as every wait); prints how it was found ready. */
export async function waitAndTell(svc: InstanceService, name: string, opts: { check?: ReadyCheck; timeoutMs?: number; messages: Messages['launch'] }): Promise<void> {
  const check = opts.check ?? svc.readyCheck(name);
  say(opts.messages.waiting(name, formatReadyCheck(check)));
  const ready = await svc.waitReady(name, opts.timeoutMs, { check });
  console.log(opts.messages.ready(name, ready.detail, ready.ip));
}

export const CONSOLE_MODES = ['auto', 'none', 'serial', 'vnc'] as const;

export function parseConsoleMode(v: string): ConsoleMode | 'auto' {
  if (!(CONSOLE_MODES as readonly string[]).includes(v)) {
    throw invalid(`--console must be one of ${CONSOLE_MODES.join(', ')}, got "${v}"`);
  }
  return v as ConsoleMode | 'auto';
}

/**
 * Creates and starts an instance, then connects the console while the guest boots:
 * a VNC viewer where there is a display and a viewer, else the serial console in this
 * terminal. The VNC address is always printed.
 */
export async function launch(ctx: Context, req: CreateRequest, opts: LaunchOptions): Promise<Instance> {
  const svc = new InstanceService(ctx, actor());
  const steps: Record<string, string> = { disk: 'creating disks', seed: 'writing the cloud-init seed', define: 'defining the domain', start: 'starting' };
  const inst = await svc.create(req, (s) => say(`  ${steps[s] ?? s}...`));
  console.log(opts.messages.created(inst.name));
  if (inst.vnc) console.log(opts.messages.vnc(inst.vncNetns ? `${inst.vnc} (network namespace ${inst.vncNetns})` : inst.vnc));
  let mode = opts.console;
  if (mode === 'auto') mode = process.stdin.isTTY && process.stdout.isTTY ? 'vnc' : 'none';
  if (mode === 'vnc' && inst.vnc) {
    const viewer = openViewer(inst);
    if (viewer) console.log(opts.messages.viewer(viewer));
    else if (opts.console === 'auto' || !process.stdin.isTTY) mode = process.stdin.isTTY ? 'serial' : 'none';
  }
  if (mode === 'serial') {
    console.log(opts.messages.detach);
    await new ConsoleService(ctx).attachSerial(inst.name);
  }
  if (opts.wait) await waitAndTell(svc, inst.name, { ...(opts.waitFor ? { check: opts.waitFor } : {}), ...(opts.waitTimeoutMs ? { timeoutMs: opts.waitTimeoutMs } : {}), messages: opts.messages });
  return inst;
}
