import { missingToolsOn, requireTools } from '../host/which.js';
import { createHash } from 'node:crypto';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Executor, local } from '../../exec/exec.js';
import { KumoError } from '../../model/errors.js';
import {
  buildDirName, guestAssetDir, hashAssets, listFiles, publishBuild, readManifestFile, sha256File,
} from './recipe.js';
import { ensureDeb, packageInfo, resize2fsFiles, resolveDepends } from './tiny-debs.js';
import { prepareKernel } from './tiny-kernel.js';
import {
  INITRAMFS_ASYNC_MODULES, INITRAMFS_MODULES, readModules, ROOTFS_ALWAYS_LOAD, ROOTFS_MODULES,
} from './tiny-modules.js';
import { buildInitramfs, buildRootTree, onlyEntry, type TreeParts } from './tiny-tree.js';

/**
 * The "tiny" guest image: a CirrOS-like cloud image built on this machine from Debian packages
 * (a Debian kernel and busybox), because real cloud images cannot be downloaded here
 * (HOST-NOTES, "Guest images without internet"). It boots by direct kernel boot in a few
 * seconds under TCG and honours a NoCloud seed: hostname, root password, ssh keys,
 * write_files, runcmd; DHCP on every NIC; `busybox httpd` on port 8080 serving /var/www;
 * a login on ttyS0 and tty1; a clean power-off on the ACPI power button.
 *
 * Kernel: Debian's generic `linux-image-amd64`, not `linux-image-cloud-amd64`: the cloud
 * flavour is built without AHCI (CONFIG_SATA_AHCI is not set), so it cannot see the seed on a
 * SATA cdrom, which is how libvirt attaches it. The generic kernel's bzImage is xz-compressed,
 * which takes ~3 s to unpack under TCG; when `xz` is there the builder ships the unpacked ELF
 * `vmlinux` instead, which QEMU (and so libvirt's <kernel>) boots directly via its PVH entry.
 */
export interface TinyImage {
  disk: string;      // qcow2 root filesystem image (ext4 directly on the disk, no partition table), compressed
  kernel: string;    // the kernel for direct kernel boot (an ELF vmlinux with a PVH entry, or a bzImage)
  initrd: string;    // initramfs (cpio.gz)
  cmdline: string;   // kernel command line to use with direct kernel boot
  key: string;       // cache key (sha256 over the inputs: the resolved package versions and the guest asset files' contents)
  built: boolean;    // true if built now, false if taken from the cache
}

export interface BuildTinyImageOptions {
  cacheDir: string;
  exec?: Executor;
  onProgress?: (step: string) => void;
  force?: boolean;
}

/** The kernel command line for the tiny image: the last console= is /dev/console (the serial log). */
export const TINY_CMDLINE = 'console=tty0 console=ttyS0,115200 root=/dev/vda rw';

/** Bump when the build steps change in a way the inputs below do not show. */
const RECIPE = 1;
const KERNEL_META_PACKAGE = 'linux-image-amd64';
const BUSYBOX_PACKAGE = 'busybox-static';
const DISK_SIZE = '64M';

const MiB = 1024 * 1024;

type TinyRecipe = Awaited<ReturnType<typeof tinyRecipe>>;

/**
 * What a tiny image is made of, and the key naming its build: the same inputs give the same
 * key, so whether a registered image is current is known without building.
 */
export async function tinyRecipe(exec: Executor = local) {
  const haveXz = (await missingToolsOn(exec, ['xz'])).length === 0;
  const [kernelPackage, busyboxDeb] = await Promise.all([
    resolveDepends(exec, KERNEL_META_PACKAGE, /^linux-image-\d/), packageInfo(exec, BUSYBOX_PACKAGE),
  ]);
  const kernelDeb = await packageInfo(exec, kernelPackage);
  const packages = [kernelDeb, busyboxDeb];

  const assets = await guestAssetDir('tiny-guest', join('initramfs', 'init'), 'tiny image');
  const assetFiles = await listFiles(assets);
  const resize2fs = await resize2fsFiles(exec);

  const keyHash = createHash('sha256');
  keyHash.update(JSON.stringify({
    recipe: RECIPE, cmdline: TINY_CMDLINE, disk: DISK_SIZE, initramfsModules: INITRAMFS_MODULES,
    initramfsAsync: INITRAMFS_ASYNC_MODULES,
    rootfsModules: ROOTFS_MODULES, alwaysLoad: ROOTFS_ALWAYS_LOAD, kernel: haveXz ? 'pvh-elf' : 'bzimage', packages,
  }));
  await hashAssets(keyHash, assets, assetFiles);
  for (const f of resize2fs) keyHash.update(`\0host\0${f.guestPath}\0${await sha256File(f.hostPath)}`);
  const key = keyHash.digest('hex');
  return { haveXz, kernelDeb, busyboxDeb, packages, assets, assetFiles, resize2fs, key };
}

/** Builds the tiny image into `${cacheDir}/tiny/<key>/`, or returns the one already there. */
export async function buildTinyImage(opts: BuildTinyImageOptions): Promise<TinyImage> {
  const exec = opts.exec ?? local;
  const progress = opts.onProgress ?? (() => undefined);

  await requireTools(exec, 'building the tiny guest image', {
    'apt-get': 'apt', 'apt-cache': 'apt', 'dpkg-deb': 'dpkg', cpio: 'cpio', mke2fs: 'e2fsprogs',
    resize2fs: 'e2fsprogs', ldd: 'libc-bin', 'qemu-img': 'qemu-utils',
  });
  progress('resolving packages');
  const recipe = await tinyRecipe(exec);
  const { key } = recipe;

  const cacheDir = resolve(opts.cacheDir);
  const tinyRoot = join(cacheDir, 'tiny');
  const finalDir = join(tinyRoot, key);
  const cached = await readManifest(finalDir);
  if (cached && !opts.force) {
    progress('using the cached image');
    return { ...cached, built: false };
  }

  await mkdir(tinyRoot, { recursive: true });
  const tmp = join(tinyRoot, buildDirName(key));
  const work = join(tmp, 'work');
  const out = join(tmp, 'out');
  await mkdir(work, { recursive: true });
  await mkdir(out, { recursive: true });
  try {
    await buildInto(exec, join(cacheDir, 'debs'), recipe, work, out, progress);
    await publishBuild(tinyRoot, key, out, {
      replace: async (dir) => !!opts.force || !(await readManifest(dir)),
      complete: async (dir) => !!(await readManifest(dir)),
    });
    // Older builds are of no further use: registered images hold their files by hard link or copy.
    for (const entry of await readdir(tinyRoot)) {
      if (entry !== key && !entry.startsWith('.')) await rm(join(tinyRoot, entry), { recursive: true, force: true });
    }
    progress('done');
    const result = await readManifest(finalDir);
    if (!result) throw new KumoError('COMMAND_FAILED', `the tiny image in ${finalDir} is incomplete`);
    return { ...result, built: true };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** The build itself: the packages unpacked in work/, the image's files and manifest.json in out/. */
async function buildInto(exec: Executor, debsDir: string, recipe: TinyRecipe, work: string, out: string,
  progress: (step: string) => void): Promise<void> {
  const kernelFile = await ensureDeb(exec, debsDir, recipe.kernelDeb, progress);
  const busyboxFile = await ensureDeb(exec, debsDir, recipe.busyboxDeb, progress);

  progress('extracting packages');
  const kx = join(work, 'kernel');
  const bx = join(work, 'busybox');
  await exec.run('dpkg-deb', ['-x', kernelFile, kx], { timeoutMs: 300_000 });
  await exec.run('dpkg-deb', ['-x', busyboxFile, bx], { timeoutMs: 60_000 });
  const busybox = join(bx, 'bin', 'busybox');
  const kver = await onlyEntry(join(kx, 'lib', 'modules'), 'kernel modules folder');
  const applets = (await exec.run(busybox, ['--list-full'])).stdout.split('\n').map((s) => s.trim())
    .filter((s) => s.includes('/'));

  progress('selecting kernel modules');
  const mods = await readModules(join(kx, 'lib', 'modules', kver));
  const parts: TreeParts = { exec, busybox, applets, kver, mods, assets: recipe.assets, work };

  progress('building the initramfs');
  await buildInitramfs(parts, join(out, 'initrd.img'));

  progress('building the root filesystem');
  const { rootfs, modules } = await buildRootTree(parts, recipe.assetFiles, recipe.resize2fs,
    { key: recipe.key, busyboxVersion: recipe.busyboxDeb.version });
  const raw = join(work, 'disk.raw');
  await exec.run('mke2fs', ['-q', '-F', '-t', 'ext4', '-T', 'default', '-b', '4096', '-I', '256',
    '-L', 'root', '-E', 'root_owner=0:0', '-d', rootfs, raw, DISK_SIZE], { timeoutMs: 120_000 });
  progress('compressing the disk');
  await exec.run('qemu-img', ['convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', raw, join(out, 'disk.qcow2')],
    { timeoutMs: 300_000 });

  progress('preparing the kernel');
  const vmlinuz = join(kx, 'boot', `vmlinuz-${kver}`);
  const kernelName = await prepareKernel(exec, vmlinuz, work, out, recipe.haveXz);

  const manifest = {
    key: recipe.key, kernelVersion: kver, packages: recipe.packages, cmdline: TINY_CMDLINE, kernel: kernelName, initrd: 'initrd.img',
    disk: 'disk.qcow2', modules, builtAt: new Date().toISOString(),
  };
  await writeFile(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

// ---------------------------------------------------------------- cache

async function readManifest(dir: string): Promise<Omit<TinyImage, 'built'> | undefined> {
  const m = await readManifestFile<{ key: string; kernel: string; initrd: string; disk: string; cmdline: string }>(dir);
  if (!m) return undefined;
  try {
    const image = {
      disk: join(dir, m.disk), kernel: join(dir, m.kernel), initrd: join(dir, m.initrd), cmdline: m.cmdline, key: m.key,
    };
    for (const f of [image.disk, image.kernel, image.initrd]) if (!(await stat(f)).isFile()) return undefined;
    return image;
  } catch {
    return undefined;
  }
}

/** Sizes in MiB, for messages. */
export async function tinyImageSizes(image: TinyImage): Promise<{ disk: number; kernel: number; initrd: number }> {
  const mib = async (f: string) => Math.round(((await stat(f)).size / MiB) * 10) / 10;
  return { disk: await mib(image.disk), kernel: await mib(image.kernel), initrd: await mib(image.initrd) };
}
