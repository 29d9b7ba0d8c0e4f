import { local, type Executor } from '../../exec/exec.js';
import { KumoError } from '../../model/errors.js';
import { FENCE_TIMEOUT_MS } from '../../model/ha.js';

/** How a fence ended: ok means the command said the host is off (exit 0). */
export type FenceOutcome = { ok: true } | { ok: false; error: string };

/**
 * Runs a host's fence command on this machine with `sh -c` (root's own configuration, set on
 * the machine only: `kumo host set --fence`), with KUMO_FENCE_HOST naming the host. Exit 0
 * means the host is off; anything else, or no end within the timeout, is a failed fence. The
 * command text is never repeated in the outcome: it may carry a BMC's or PDU's password.
 */
export async function runFenceCommand(command: string, host: string, timeoutMs = FENCE_TIMEOUT_MS, exec: Executor = local): Promise<FenceOutcome> {
  try {
    const r = await exec.run('sh', ['-c', command], { env: { ...process.env, KUMO_FENCE_HOST: host }, timeoutMs, allowFailure: true });
    if (r.code === 0) return { ok: true };
    const last = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' / ').slice(0, 500);
    return { ok: false, error: `the fence command exited ${r.code}${last ? `: ${last}` : ''}` };
  } catch (e) {
    if (e instanceof KumoError && e.code === 'TIMEOUT') return { ok: false, error: `the fence command did not finish within ${Math.round(timeoutMs / 1000)} s` };
    return { ok: false, error: `the fence command could not run: ${(e as Error).message}` };
  }
}
