import { dirname, join } from 'node:path';
import { buildSeed, writeSeedIso } from '../drivers/image/seed.js';
import { createPrivateFile, makeFolder } from '../drivers/host/private-files.js';
import type { Image } from '../model/types.js';
import type { InstanceRecord } from '../store/instances.js';
import type { Context } from './context.js';

/**
 * The instance's files in its (journaled) folder. The disks and the seed are two processes
 * (qemu-img, genisoimage) that need nothing of each other: they run side by side, and both
 * have ended before this returns or throws, so the undo never races a file still being written.
 */
export async function makeInstanceFiles(ctx: Context, dir: string, record: InstanceRecord, image: Image, files: { vncSocket: string; userData: string | undefined },
  onStep: (step: string) => void): Promise<{ root: string; dataFiles: string[]; seedIso: string }> {
  const root = join(dir, 'root.qcow2');
  const dataFiles = record.dataDisks.map((_, i) => join(dir, `data${i + 1}.qcow2`));
  const { vncSocket, userData } = files;
  const seedIso = join(dir, 'seed.iso');
  const disks = async () => {
    await createPrivateFile(root);
    await ctx.qemuImg.createOverlay(root, image.disk, image.format, record.diskGiB);
    for (const [i, size] of record.dataDisks.entries()) {
      await createPrivateFile(dataFiles[i]!);
      await ctx.qemuImg.createEmpty(dataFiles[i]!, size);
    }
    // QEMU makes its VNC socket there: only root (kumo's console proxy) can reach it.
    await makeFolder(dirname(vncSocket), 'qemu-write');
    onStep('seed');
  };
  const seed = async () => {
    await createPrivateFile(seedIso);
    await writeSeedIso(buildSeed({
      instanceId: record.uuid, hostname: record.name, sshKeys: record.sshKeys, nics: record.nics,
      ...(record.passwordHash ? { rootPasswordHash: record.passwordHash } : {}),
      ...(userData !== undefined ? { userData } : {}),
    }), seedIso, dir, ctx.exec);
  };
  const failed = (await Promise.allSettled([disks(), seed()])).find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  return { root, dataFiles, seedIso };
}
