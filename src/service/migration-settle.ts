import type { Context } from './context.js';
import { onRecover } from './undo.js';
import { sleep } from '../exec/process.js';
import { waitingFor } from '../exec/waits.js';
import { abortJob, domainPersistent, migrationJobActive } from '../drivers/libvirt/migrate.js';
import type { Virsh } from '../drivers/libvirt/virsh.js';
import { KumoError } from '../model/errors.js';
import type { RuntimeState } from '../model/types.js';

/**
 * The journal step of a live migration (service/migration.ts), written before libvirt is asked
 * to move the domain. kumo killed during the call leaves its virsh child migrating on; a timed-out
 * call leaves libvirt's job running. Either way the record may no longer say where the domain is:
 * this step finds out (aborting a migration still under way) and records the host that has it.
 */
export const SETTLE_MIGRATION = 'settle-migration';
/** How long a settle waits for libvirt's migration job to end after asking it to abort. */
const SETTLE_WAIT_MS = 120_000;
const POLL_MS = 500;
const ABORT_EVERY_MS = 2_000;

export interface MigrationEnds {
  name: string;
  uuid: string;
  from: string;
  to: string;
}

/** The domain on one host: its state ('unreachable': that libvirt did not answer) and whether a job runs on it. */
export interface DomainEnd {
  state: RuntimeState | 'unreachable';
  job: boolean;
}

export type SettleVerdict =
  | { do: 'abort' }
  | { do: 'wait' }
  /** `remove`: the host whose copy is a leftover (shut off after the move, or a paused incoming one). */
  | { do: 'settle'; host: 'from' | 'to'; remove?: 'from' | 'to'; resume: boolean };

const has = (e: DomainEnd) => e.state !== 'missing' && e.state !== 'unreachable';
const live = (e: DomainEnd) => e.state === 'running' || e.state === 'paused';

/** What to do, given the domain on the source and on the destination. Pure: the unit tests try every case. */
export function settleVerdict(src: DomainEnd, dst: DomainEnd): SettleVerdict {
  if (src.state === 'unreachable') return { do: 'wait' };
  if (src.job) return { do: 'abort' };
  if (dst.job) return { do: 'wait' }; // libvirt ends the incoming side once the source's job is over
  if (has(src) && !has(dst)) {
    // An unreachable destination cannot run it while the source does: only a live source is sure.
    if (dst.state === 'unreachable' && !live(src)) return { do: 'wait' };
    return { do: 'settle', host: 'from', resume: src.state === 'paused' };
  }
  if (!has(src) && has(dst)) return { do: 'settle', host: 'to', resume: dst.state === 'paused' };
  if (!has(src)) {
    // On neither (it died on the way): the record stays, and `kumo instance list` shows it missing.
    return dst.state === 'unreachable' ? { do: 'wait' } : { do: 'settle', host: 'from', resume: false };
  }
  // On both: the move ended but one side was not cleaned up (its virsh died before the last phase).
  if (dst.state === 'running' && !live(src)) return { do: 'settle', host: 'to', remove: 'from', resume: false };
  // Running on both, no job: one libvirt seen under two names (a refused move), never a move's leftover.
  if (src.state === 'running' && dst.state === 'running') return { do: 'settle', host: 'from', resume: false };
  if (live(src) && dst.state !== 'running') return { do: 'settle', host: 'from', remove: 'to', resume: src.state === 'paused' };
  return { do: 'wait' };
}

async function look(v: Virsh, uuid: string): Promise<DomainEnd> {
  try {
    const state = await v.domainState(uuid, 30_000);
    return { state, job: state !== 'missing' && await migrationJobActive(v, uuid) };
  } catch {
    return { state: 'unreachable', job: false };
  }
}

/**
 * Brings a live migration to an end and makes kumo's record name the host that has the domain,
 * running and persistent there, with no copy left on the other. Idempotent: run after a failed
 * migration (nothing to do but confirm), and after a crash (maybe a migration still under way:
 * it is aborted, or finishes if past its point of no return). A verdict is acted on only when two
 * looks in a row agree (libvirt passes through short in-between states). Returns the host.
 */
export async function settleMigration(ctx: Context, m: MigrationEnds, waitMs = SETTLE_WAIT_MS): Promise<string> {
  return waitingFor(`the live migration of "${m.name}" from ${m.from} to ${m.to} to come to an end`, () => settle(ctx, m, waitMs));
}

async function settle(ctx: Context, m: MigrationEnds, waitMs: number): Promise<string> {
  const ends = { from: ctx.virshFor(m.from), to: ctx.virshFor(m.to) };
  const deadline = Date.now() + waitMs;
  let lastAbort = 0;
  let previous = '';
  for (;;) {
    const [src, dst] = [await look(ends.from, m.uuid), await look(ends.to, m.uuid)];
    const verdict = settleVerdict(src, dst);
    if (verdict.do === 'abort' && Date.now() - lastAbort >= ABORT_EVERY_MS) {
      await abortJob(ends.from, m.uuid);
      lastAbort = Date.now();
    }
    const key = JSON.stringify(verdict);
    if (verdict.do === 'settle' && key === previous) {
      const keep = ends[verdict.host];
      if (verdict.remove) await ends[verdict.remove].removeDomain(m.uuid);
      if (verdict.resume) await keep.run(['resume', m.uuid], 30_000);
      // The incoming copy is transient until libvirt finishes the move: kumo's instance outlives a stop.
      if (has(verdict.host === 'from' ? src : dst) && !(await domainPersistent(keep, m.uuid))) {
        const xml = await keep.dumpXml(m.uuid);
        if (xml) await keep.defineDomain(xml);
      }
      const host = m[verdict.host];
      if (ctx.instances.get(m.name)?.uuid === m.uuid) ctx.instances.updateHost(m.name, host);
      return host;
    }
    previous = key;
    if (Date.now() >= deadline) {
      throw new KumoError('LIBVIRT_ERROR',
        `the live migration of "${m.name}" from ${m.from} to ${m.to} did not come to an end within ${Math.round(waitMs / 1000)} s ` +
        `(source: ${src.state}${src.job ? ', a job running' : ''}; destination: ${dst.state}${dst.job ? ', a job running' : ''})`,
        'check both hosts\' libvirtd (`kumo host list`); the next kumo command looks again, and `kumo doctor` lists it until then');
    }
    await sleep(POLL_MS);
  }
}

onRecover(SETTLE_MIGRATION, async (ctx, a) => {
  await settleMigration(ctx, { name: a.name!, uuid: a.uuid!, from: a.from!, to: a.to! });
});
