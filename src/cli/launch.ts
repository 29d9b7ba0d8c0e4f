import { actor, say } from './app.js';
import type { Context } from '../service/context.js';
import { InstanceService, HTTP_PORT, type CreateRequest } from '../service/instances.js';
import { ConsoleService, openViewer } from '../service/consoles.js';
import type { ConsoleMode, Instance } from '../model/types.js';
import { invalid } from '../model/errors.js';

export interface LaunchOptions {
  console: ConsoleMode | 'auto';
  wait: boolean;
  messages: { created: (name: string) => string; vnc: (addr: string) => string; detach: string; viewer: (v: string) => string };
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
  if (opts.wait) {
    say(`  waiting for ${inst.name} to answer on port ${HTTP_PORT}...`);
    const ready = await svc.waitReady(inst.name);
    console.log(`${inst.name} answers at http://${ready.ip}:${HTTP_PORT}/`);
  }
  return inst;
}
