import { sleep } from '../exec/process.js';
import type { Virsh } from '../drivers/libvirt/virsh.js';
import { libvirtCallTimeoutMs } from '../config.js';
import { KumoError } from '../model/errors.js';

/**
 * How long kumo keeps watching for a domain after its define timed out. libvirtd goes on with
 * a call whose virsh kumo killed: on a host with a broken /dev/kvm a define took 48-110 s and
 * landed after kumo had given up, leaving an orphan domain. A minute past the call's own
 * timeout covers what was seen (less when the call timeout is shorter); a domain later still is found by `kumo doctor`.
 */
export const defineGraceMs = (): number => Math.min(60_000, libvirtCallTimeoutMs());
const POLL_MS = 1_000;
/** One look must not outlast the watch, nor the call timeout: a stalled libvirt answers nothing. */
const lookTimeoutMs = (): number => Math.min(10_000, libvirtCallTimeoutMs());

/**
 * Watches libvirt for the domain with `uuid` until `untilMs` (at least one look) and removes it
 * when it appears. Returns whether it removed one. Throws when libvirt answered no look at all:
 * then nobody knows whether the domain exists, and the caller must not count it as gone.
 */
export async function removeWhenItAppears(v: Virsh, uuid: string, untilMs: number): Promise<boolean> {
  let unanswered: unknown;
  for (;;) {
    const state = await v.domainState(uuid, lookTimeoutMs()).then((s) => s, (e: unknown) => {
      unanswered ??= e;
      return undefined;
    });
    if (state !== undefined && state !== 'missing') {
      await v.removeDomain(uuid);
      return true;
    }
    if (state !== undefined) unanswered = undefined; // libvirt answered: it has no such domain now
    if (Date.now() >= untilMs) {
      if (unanswered !== undefined) throw unanswered;
      return false;
    }
    await sleep(Math.min(POLL_MS, Math.max(0, untilMs - Date.now())));
  }
}

/**
 * Defines a domain so that a define libvirt did not answer in time leaves no domain behind.
 * `pending` journals (before the call) until when libvirt may still make it, and clears that once
 * libvirt answered; after a timeout the domain is watched for and removed before the error is
 * thrown, so the operation is over only when kumo knows what libvirt did.
 */
export async function defineOrRemove(v: Virsh, xml: string, uuid: string,
  pending: (until: string | undefined) => void, graceMs = defineGraceMs()): Promise<void> {
  pending(new Date(Date.now() + libvirtCallTimeoutMs() + graceMs).toISOString());
  try {
    await v.defineDomain(xml);
  } catch (e) {
    if (!(e instanceof KumoError) || e.code !== 'TIMEOUT') {
      pending(undefined); // libvirt answered (a refusal): nothing is on its way
      throw e;
    }
    const removed = await removeWhenItAppears(v, uuid, Date.now() + graceMs).catch(() => 'no answer' as const);
    pending(undefined);
    const waited = `${v.describe()} did not answer the define within ${Math.round(libvirtCallTimeoutMs() / 1000)} s`;
    throw new KumoError('TIMEOUT', removed === 'no answer'
      ? `${waited}, nor any look for the domain in a further ${Math.round(graceMs / 1000)} s: libvirtd is stalled. kumo keeps the undo of the define journaled and removes the domain if libvirtd makes it once it answers again (the next kumo command retries; \`kumo doctor\` lists it)`
      : removed
        ? `${waited}; the domain it made afterwards was removed, and nothing of the instance is left`
        : `${waited}, nor made the domain in a further ${Math.round(graceMs / 1000)} s; nothing of the instance is left`,
    `check that libvirtd is not stuck (\`virsh -c ${v.uri} list\` should answer at once) and \`kumo host info\`; \`kumo doctor\` finds a domain libvirt made later still`, { cause: e });
  }
  pending(undefined);
}
