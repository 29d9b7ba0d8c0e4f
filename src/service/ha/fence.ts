import type { Context } from '../context.js';
import { LabService } from '../lab.js';
import { runFenceCommand, type FenceOutcome } from '../../drivers/host/fence-command.js';
import { FENCE_NONE, type FenceKind } from '../../model/ha.js';

export type { FenceOutcome };

/** Whether `host` is a hypervisor of the lab that is up (fenced by the lab itself unless set otherwise). */
function labHypervisor(ctx: Context, host: string): boolean {
  return new LabService(ctx).state()?.spec.nodes[host]?.roles.includes('hypervisor') === true;
}

/** How a host is fenced: its own command, 'none', or by default the lab's kill for a lab hypervisor (else none). */
export function fenceKind(ctx: Context, host: string): FenceKind {
  const fence = ctx.hosts.get(host)?.fence;
  if (fence === FENCE_NONE) return 'none';
  if (fence !== undefined) return 'command';
  return labHypervisor(ctx, host) ? 'lab' : 'none';
}

/**
 * Fences a dead host: ok means it is off, so its HA instances may start elsewhere without ever
 * running twice on one disk. No fence is a failed fence: HA never guesses that a host is off.
 */
export async function fenceHost(ctx: Context, host: string): Promise<FenceOutcome> {
  const kind = fenceKind(ctx, host);
  if (kind === 'none') {
    return { ok: false, error: `host ${host} has no fence: kumo cannot make sure it is off` };
  }
  if (kind === 'command') return runFenceCommand(ctx.hosts.get(host)!.fence!, host);
  try {
    return (await new LabService(ctx).fence(host)) ? { ok: true } : { ok: false, error: `host ${host} is no longer a hypervisor of the lab` };
  } catch (e) {
    return { ok: false, error: `the lab could not kill ${host}'s libvirtd and guests: ${(e as Error).message}` };
  }
}

/** What to do about a host that could not be fenced, for `kumo host show`. */
export function unfencedFix(host: string): string {
  return `give ${host} a fence kumo can run (exit 0 once the host is off): kumo host set ${host} --fence 'ipmitool -I lanplus -H BMC -U USER -f PASSFILE chassis power off' `
    + `(or, once you have powered it off yourself, --fence true); the watcher fences it at its next try (within 30 beats) and starts its HA instances elsewhere`;
}
