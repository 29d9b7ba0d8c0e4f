import type { Context } from './context.js';
import { domainOf } from './domains.js';
import { SnapshotDriver, writableDisks, type RevertTo, type SnapshotInfo } from '../drivers/libvirt/snapshots.js';
import { KumoError, invalid, notFound } from '../model/errors.js';
import { checkLabel } from '../model/names.js';
import type { RuntimeState } from '../model/types.js';
import { machineActor, type Actor } from '../model/actor.js';
import { sees } from './scope.js';
import { withUndo } from './undo.js';
import { assertRoom, noSpaceWhenShort } from './disk-full.js';

/** A name the user gives follows kumo's name rule (digits only, like libvirt's epoch names, are fine). */
function checkSnapshotName(name: string): void {
  try {
    checkLabel('snapshot', name, '"first_ss" or "before-upgrade"');
  } catch (e) {
    throw invalid((e as Error).message, 'pick a name such as "first-ss" or "before-upgrade", or leave it out to get the creation time in epoch seconds');
  }
}

export interface Snapshot extends SnapshotInfo {
  instance: string;
}

export interface RevertOptions {
  /** Leave the instance running or paused instead of in the state the snapshot was taken in. */
  to?: RevertTo;
  force?: boolean;
}

/**
 * Snapshots of an instance, the course's `virsh snapshot-*`: internal qcow2 snapshots of
 * its disks, with the memory when it runs. They live in the instance's own disk files, so
 * they survive stop/start and go when the instance is deleted.
 */
export class SnapshotService {
  /** `actor`: who asks; snapshots belong to their instance's project, seen by it only (root in `default` by default). */
  constructor(private readonly ctx: Context, private readonly actor: Actor = machineActor()) {}

  /** Snapshots live with the instance's domain, on whichever host it runs; `id` is its UUID, what virsh finds it by. */
  private driver(instance: string): { snaps: SnapshotDriver; id: string } {
    const { virsh, id } = domainOf(this.ctx, instance);
    return { snaps: new SnapshotDriver(virsh), id };
  }

  /** Without a name, libvirt names it after its creation time in epoch seconds, like `virsh snapshot-create`. */
  async create(instance: string, name?: string): Promise<Snapshot> {
    if (name !== undefined) checkSnapshotName(name);
    await this.domain(instance);
    const { snaps, id } = this.driver(instance);
    if (name !== undefined && (await snaps.names(id)).includes(name)) {
      throw new KumoError('ALREADY_EXISTS', `instance "${instance}" already has a snapshot named "${name}"`,
        `pick another name, or delete the old one: kumo snapshot delete ${instance} ${name}`);
    }
    const xml = await domainOf(this.ctx, instance).virsh.dumpXml(id);
    if (!xml) throw this.domainGone(instance);
    assertRoom(this.ctx.paths.home, `a snapshot of instance "${instance}"`);
    let made: string;
    try {
      made = await snaps.create(id, xml, name);
    } catch (e) {
      const full = await this.noRoom(instance, id, snaps, name, e);
      if (full) throw full;
      // Two unnamed snapshots within one second get the same epoch name.
      const dup = e instanceof KumoError ? /domain (?:moment|snapshot) (.+) already exists/.exec(e.message) : null;
      if (!dup) throw e;
      throw new KumoError('ALREADY_EXISTS', `instance "${instance}" already has a snapshot named "${dup[1]}"`,
        name === undefined ? 'wait a second and try again, or give the snapshot a name' : 'pick another name', { cause: e });
    }
    return { instance, ...(await snaps.info(id, made)) };
  }

  /**
   * A snapshot that ran out of room (it grows the disk files under KUMO_HOME; a running guest's
   * memory goes in too): NO_SPACE, after making sure no half snapshot stays listed.
   */
  private async noRoom(instance: string, id: string, snaps: SnapshotDriver, name: string | undefined, e: unknown): Promise<KumoError | undefined> {
    const ramMiB = this.ctx.instances.get(instance)?.ramMiB ?? 0;
    const full = noSpaceWhenShort(e, this.ctx.paths.home, `a snapshot of instance "${instance}"`, (ramMiB + 64) * 1024 ** 2, true);
    if (full && name !== undefined && (await snaps.names(id)).includes(name)) await snaps.delete(id, name);
    return full;
  }

  /** The instance's snapshots, oldest first. */
  async list(instance: string): Promise<Snapshot[]> {
    await this.domain(instance);
    const { snaps, id } = this.driver(instance);
    return (await snaps.list(id)).map((s) => ({ instance, ...s }));
  }

  /**
   * Puts the disks back, and for a snapshot of a running instance its memory too: processes
   * and files in RAM come back as they were. Returns the instance's state afterwards, which
   * is the snapshot's own (a snapshot taken shut off leaves the instance shut off) unless
   * `to` asks for running or paused.
   */
  async revert(instance: string, name: string, opts: RevertOptions = {}): Promise<RuntimeState> {
    await this.domain(instance);
    await this.existing(instance, name);
    await this.sameDisks(instance, name);
    const { snaps, id } = this.driver(instance);
    // One libvirt call that is all or nothing, and no record of kumo's changes: nothing to undo.
    // Journaled for its step boundaries only (the crash tests kill kumo before and after the call).
    return withUndo(this.ctx, `revert snapshot ${instance} ${name}`, async (_undo, step) => {
      step();
      try {
        await snaps.revert(id, name, opts.to ?? 'snapshot', opts.force ?? false);
      } catch (e) {
        if (e instanceof KumoError && /revert requires force/i.test(e.message)) {
          throw new KumoError('IN_USE', `reverting "${instance}" to "${name}" needs confirmation: ${e.message}`,
            `if you accept that, run: kumo snapshot revert ${instance} ${name} --force`, { cause: e });
        }
        throw e;
      }
      step();
      return domainOf(this.ctx, instance).virsh.domainState(id);
    });
  }

  async delete(instance: string, name: string): Promise<void> {
    await this.domain(instance);
    await this.existing(instance, name);
    const { snaps, id } = this.driver(instance);
    await snaps.delete(id, name);
  }

  /**
   * Deletes every snapshot of the instance; returns how many. Deleting an instance removes its
   * own disks and with them their snapshots, but an attached volume outlives the instance:
   * call this first so no snapshot data stays behind in the volume's qcow2 file.
   */
  async deleteAll(instance: string): Promise<number> {
    await this.domain(instance);
    const { snaps, id } = this.driver(instance);
    const names = await snaps.names(id);
    for (const n of names) await snaps.delete(id, n);
    return names.length;
  }

  /** The instance must be kumo's and its libvirt domain must still be there. */
  private async domain(instance: string): Promise<void> {
    const r = this.ctx.instances.get(instance);
    if (!r || !sees(this.actor, r.project)) throw notFound(`instance "${instance}" does not exist`, 'see `kumo instance list`');
    const { virsh, id } = domainOf(this.ctx, instance);
    if ((await virsh.domainState(id)) === 'missing') throw this.domainGone(instance);
  }

  private domainGone(instance: string): KumoError {
    return notFound(`libvirt has no domain "${instance}" any more (removed behind kumo's back), so it has no snapshots`,
      `remove kumo's record with: kumo instance delete ${instance}`);
  }

  /**
   * A revert brings back the domain definition of the snapshot's time with its disks: it
   * would silently detach a volume attached since, or attach one detached since (maybe now
   * in use elsewhere), behind kumo's volume records. Refuse unless the disks are the same.
   */
  private async sameDisks(instance: string, name: string): Promise<void> {
    const { snaps, id } = this.driver(instance);
    const then = (await snaps.info(id, name)).disks;
    const xml = await domainOf(this.ctx, instance).virsh.dumpXml(id);
    if (!xml) throw this.domainGone(instance);
    const now = writableDisks(xml);
    const gone = then.filter((f) => !now.includes(f));
    const added = now.filter((f) => !then.includes(f));
    if (!gone.length && !added.length) return;
    const changes = [...(added.length ? [`detach ${added.join(', ')}`] : []), ...(gone.length ? [`attach ${gone.join(', ')} again`] : [])];
    throw new KumoError('IN_USE', `instance "${instance}" has other disks than when snapshot "${name}" was taken: reverting would ${changes.join(' and ')} behind kumo's back`,
      `attach or detach volumes (kumo volume attach|detach) until the instance has the disks it had then, or delete the snapshot: kumo snapshot delete ${instance} ${name}`);
  }

  private async existing(instance: string, name: string): Promise<void> {
    const { snaps, id } = this.driver(instance);
    const names = await snaps.names(id);
    if (!names.includes(name)) {
      throw notFound(`instance "${instance}" has no snapshot named "${name}"`,
        names.length ? `its snapshots: ${names.join(', ')} (see kumo snapshot list ${instance})` : `take one with: kumo snapshot create ${instance} [NAME]`);
    }
  }
}
