import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Context } from './context.js';
import { SnapshotService } from './snapshots.js';
import { KumoError, invalid, notFound } from '../model/errors.js';
import { checkSize } from '../model/sizes.js';
import type { RuntimeState } from '../model/types.js';
import type { InstanceRecord } from '../store/instances.js';
import { machineActor } from '../model/actor.js';
import { reserve } from './scope.js';

/**
 * Grows the root disk (the overlay) of a stopped instance; the guest grows its root
 * filesystem on the next boot (cloud-init growpart, or the tiny image's resize2fs).
 */
export async function growRootDisk(ctx: Context, r: InstanceRecord, liveState: () => Promise<RuntimeState>, diskGiB: number): Promise<{ fromGiB: number; toGiB: number }> {
  const { name } = r;
  const size = checkSize('disk-size', diskGiB);
  const root = join(ctx.paths.instances, name, 'root.qcow2');
  if (!existsSync(root)) throw notFound(`the root disk of instance "${name}" (${root}) is gone`, `remove the instance: kumo instance delete ${name}`);
  const current = (await ctx.qemuImg.info(root)).virtualSize;
  const fromGiB = current / 1024 ** 3;
  if (size * 1024 ** 3 < current) {
    throw invalid(`the root disk of instance "${name}" is ${fromGiB} GiB: shrinking it to ${size} GiB would cut off the guest's filesystem`,
      `give --disk-size ${Math.ceil(fromGiB)} or more (root disks only grow)`);
  }
  const state = await liveState();
  if (state !== 'shut off') {
    throw new KumoError('IN_USE', `instance "${name}" is ${state}: its root disk can only be resized while it is stopped`,
      `stop it first: kumo instance stop ${name}`);
  }
  // Reverting to an older snapshot would bring the old disk size back behind kumo's record.
  // (The caller found the record in the actor's project: its snapshots are read in that project.)
  const snapshots = await new SnapshotService(ctx, machineActor(r.project)).list(name);
  if (snapshots.length) {
    throw new KumoError('IN_USE', `instance "${name}" has ${snapshots.length} snapshot(s); a revert would undo the resize`,
      `delete them first: ${snapshots.map((s) => `kumo snapshot delete ${name} ${s.name}`).join('; ')}`);
  }
  // The flavor stays recorded only while the sizes are still the flavor's.
  const flavor = r.flavor && ctx.flavors.get(r.flavor)?.diskGiB === size ? r.flavor : undefined;
  // The new size is recorded first, with the project's disk quota checked in the same transaction.
  reserve(ctx, r.project, { diskGiB: size - r.diskGiB }, () => ctx.instances.updateDiskSize(name, size, flavor));
  try {
    if (size * 1024 ** 3 > current) await ctx.qemuImg.resize(root, size);
  } catch (e) {
    ctx.instances.updateDiskSize(name, r.diskGiB, r.flavor);
    throw e;
  }
  return { fromGiB, toGiB: size };
}
