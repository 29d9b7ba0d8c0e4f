import { existsSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Executor } from '../../exec/exec.js';
import { processAlive, sleep } from '../../exec/process.js';
import { KumoError } from '../../model/errors.js';

/**
 * Turns a root filesystem folder into a partitioned disk that boots from its own boot loader,
 * the way GenericCloud images do (BIOS: MBR boot code, then extlinux from the root partition).
 *
 * These hosts make no partition nodes for loop devices (HOST-NOTES, "Disk images"), so nothing
 * here needs them: the filesystem is built from the folder by `mke2fs -d` straight into the
 * partition's place in the file (`-E offset=`), and the one step that needs a mounted
 * filesystem, `extlinux --install`, gets the partition alone as a loop device
 * (`losetup --offset --sizelimit`), mounted for a second and always detached again.
 */

/** Partition 1 starts at 1 MiB, like every partitioning tool today (alignment, room before it). */
export const PARTITION_OFFSET = 1024 * 1024;
/** syslinux's MBR boot code (package extlinux): finds the active partition and runs its boot sector. */
export const MBR_BOOT_CODE = '/usr/lib/EXTLINUX/mbr.bin';
/** The MBR's boot code area; the disk signature and partition table follow it. */
const MBR_CODE_BYTES = 440;

export interface BootableDisk {
  /** The finished root filesystem, with /boot/extlinux/extlinux.conf in it. */
  tree: string;
  /** The raw disk file to create. */
  file: string;
  sizeBytes: number;
  /** UUID for the root filesystem (the boot loader config and fstab name it). */
  fsUuid: string;
  /** A scratch folder for the mount point. */
  work: string;
}

export async function makeBootableDisk(exec: Executor, d: BootableDisk): Promise<void> {
  if (!existsSync(join(d.tree, 'boot', 'extlinux', 'extlinux.conf'))) {
    throw new KumoError('COMMAND_FAILED', `${d.tree} has no /boot/extlinux/extlinux.conf to boot from`);
  }
  const partBytes = d.sizeBytes - PARTITION_OFFSET;
  const fh = await open(d.file, 'w');
  try {
    await fh.truncate(d.sizeBytes); // sparse: only what is written takes space
  } finally {
    await fh.close();
  }
  // One primary partition over the rest of the disk, active (the MBR code boots the active one).
  // It ends at the end of the disk, so growpart can grow it when an instance's disk is larger.
  await exec.run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', d.file], {
    input: `label: dos\nstart=${PARTITION_OFFSET / 512}, type=83, bootable\n`,
  });
  const mke2fs = await exec.run('mke2fs', [
    '-q', '-F', '-t', 'ext4', '-U', d.fsUuid, '-E', `offset=${PARTITION_OFFSET},root_owner=0:0`,
    '-d', d.tree, d.file, `${partBytes / 1024}k`,
  ], { timeoutMs: 1_800_000, allowFailure: true });
  if (mke2fs.code !== 0) {
    const why = mke2fs.stderr.trim().split('\n').slice(-3).join('\n');
    throw new KumoError('COMMAND_FAILED', `the root filesystem does not fit on a ${d.sizeBytes / 2 ** 30} GiB disk (mke2fs: ${why})`,
      /space|allocate|full|blocks/i.test(why) ? 'pass a larger --size (e.g. --size 4G)' : undefined);
  }
  await installExtlinux(exec, d.file, partBytes, join(d.work, 'mnt'));
  // The MBR boot code goes into the first 440 bytes; the partition table sfdisk wrote stays.
  const code = await readFile(MBR_BOOT_CODE);
  if (code.length < MBR_CODE_BYTES) throw new KumoError('COMMAND_FAILED', `${MBR_BOOT_CODE} is not an MBR boot code file`);
  const disk = await open(d.file, 'r+');
  try {
    await disk.write(code, 0, MBR_CODE_BYTES, 0);
  } finally {
    await disk.close();
  }
}

/**
 * `extlinux --install` needs the filesystem mounted (it asks the kernel where ldlinux.sys lies
 * and writes those sectors into it). It reads the partition's offset from the loop device,
 * so the boot sector it writes knows where the partition starts on the whole disk.
 */
async function installExtlinux(exec: Executor, file: string, partBytes: number, mnt: string): Promise<void> {
  await mkdir(mnt, { recursive: true });
  const loop = (await exec.run('losetup', ['--find', '--show', '--offset', String(PARTITION_OFFSET),
    '--sizelimit', String(partBytes), file])).stdout.trim();
  let mounted = false;
  try {
    await exec.run('mount', ['-t', 'ext4', loop, mnt]);
    mounted = true;
    await exec.run('extlinux', ['--install', join(mnt, 'boot', 'extlinux')], { timeoutMs: 120_000 });
  } finally {
    if (mounted) await unmount(exec, mnt);
    await exec.run('losetup', ['--detach', loop], { allowFailure: true });
  }
}

/** Unmounts, retrying while the kernel still says busy, and detaching lazily as a last resort. */
async function unmount(exec: Executor, path: string): Promise<void> {
  for (let i = 0; i < 5; i++) {
    if ((await exec.run('umount', [path], { allowFailure: true })).code === 0) return;
    await sleep(500);
  }
  await exec.run('umount', ['--lazy', path], { allowFailure: true });
}

/** Mount points at or below dir, deepest first (from /proc/self/mountinfo). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const root = resolve(dir);
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const points = text.split('\n').map((l) => l.split(' ')[4]).filter((p): p is string => !!p)
    // mountinfo escapes space, tab, newline and backslash as octal
    .map((p) => p.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === root || p.startsWith(`${root}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Loop devices whose backing file lies below dir. */
async function loopsUnder(exec: Executor, dir: string): Promise<string[]> {
  const r = await exec.run('losetup', ['--list', '--json', '--output', 'NAME,BACK-FILE'], { allowFailure: true });
  if (r.code !== 0 || !r.stdout.trim()) return [];
  const j = JSON.parse(r.stdout) as { loopdevices?: { name: string; 'back-file'?: string | null }[] };
  const root = `${resolve(dir)}/`;
  return (j.loopdevices ?? []).filter((l) => (l['back-file'] ?? '').startsWith(root)).map((l) => l.name);
}

/**
 * Removes a build folder safely: first everything mounted below it (mmdebstrap mounts /proc,
 * /sys and /dev into the tree while it works; a build killed half-way leaves them there, and
 * deleting through such a mount would delete the host's own files) and every loop device on a
 * file in it. Refuses to delete while anything is still mounted.
 */
export async function removeBuildDir(exec: Executor, dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  for (const m of await mountsUnder(dir)) await unmount(exec, m);
  for (const l of await loopsUnder(exec, dir)) await exec.run('losetup', ['--detach', l], { allowFailure: true });
  const left = await mountsUnder(dir);
  if (left.length) {
    throw new KumoError('COMMAND_FAILED', `cannot remove ${dir}: ${left.join(', ')} ${left.length === 1 ? 'is' : 'are'} still mounted`,
      `unmount ${left.length === 1 ? 'it' : 'them'} (umount -R ${left[left.length - 1]}) and delete the folder by hand`);
  }
  await rm(dir, { recursive: true, force: true });
}

/** Build folders (".build-...-PID-...") of processes that are gone: a crash or a kill left them. */
export async function removeStaleBuilds(exec: Executor, parent: string): Promise<void> {
  if (!existsSync(parent)) return;
  for (const entry of await readdir(parent)) {
    const m = /^\.build-.*-(\d+)-[0-9a-f]+$/.exec(entry);
    if (!m) continue;
    if (!processAlive(Number(m[1]))) await removeBuildDir(exec, join(parent, entry)).catch(() => undefined);
  }
}
