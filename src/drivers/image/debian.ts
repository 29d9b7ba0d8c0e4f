import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Executor, local } from '../../exec/exec.js';
import { waitingFor } from '../../exec/waits.js';
import { KumoError, invalid } from '../../model/errors.js';
import { DEFAULT_SIZE_GIB, checkImageSize, parsePackages } from '../../model/image-build.js';
import { debianMirrorLines, mirrorState, readHostAptSources } from './debian-apt.js';
import { MBR_BOOT_CODE, makeBootableDisk, removeBuildDir, removeStaleBuilds } from './debian-disk.js';
import { buildDirName, guestAssetDir, hashAssets, listFiles, publishBuild, readManifestFile } from './recipe.js';
import { requireTools } from '../host/which.js';

/**
 * A genuine Debian cloud image, built on this machine from the Debian mirror its apt already
 * uses (real cloud images cannot be downloaded here): mmdebstrap bootstraps Debian with the
 * kernel, cloud-init (NoCloud), growpart and openssh-server into a folder, the folder becomes
 * an ext4 root partition on an MBR disk that boots from its own extlinux (BIOS), like the
 * GenericCloud images, and the result is a compressed qcow2.
 *
 * No identity is baked in: /etc/machine-id is empty (systemd makes one on first boot), there are
 * no ssh host keys (cloud-init makes them), and the hostname is "localhost" until the seed names
 * the instance.
 *
 * Kernel: Debian's generic `linux-image-amd64`, not the `-cloud-` flavour: the cloud kernel has
 * no AHCI driver, so it would not see the NoCloud seed on the SATA cdrom libvirt attaches it as.
 */
export const DEBIAN_RECIPES = {
  'debian-12': { suite: 'bookworm', os: 'Debian 12 (bookworm)' },
} as const;
export type DebianRecipe = keyof typeof DEBIAN_RECIPES;

export interface DebianImage {
  recipe: DebianRecipe;
  os: string;
  disk: string;           // compressed qcow2, partitioned, boots from its own boot loader
  key: string;            // cache key (sha256 over the inputs)
  sizeGiB: number;        // virtual size
  packages: string[];     // the extra packages asked for
  kernelVersion: string;
  buildSeconds: number;   // how long the build that made it took
  built: boolean;         // true if built now, false if taken from the cache
}

export interface BuildDebianImageOptions {
  cacheDir: string;
  recipe?: DebianRecipe;
  sizeGiB?: number;
  /** Extra Debian packages to install (e.g. nginx). */
  packages?: string[];
  exec?: Executor;
  onProgress?: (step: string) => void;
  force?: boolean;
  /** Where apt's sources and lists are read from (tests may point elsewhere). */
  aptDir?: string;
  listsDir?: string;
}

/** Bump when the build steps change in a way the inputs below do not show. */
const RECIPE = 1;
/**
 * On top of Debian's "important" priority (what a normal Debian install has: systemd, apt,
 * ifupdown, less, vim-tiny, ...).
 */
const BASE_PACKAGES = [
  'linux-image-amd64',          // kernel (+ initramfs-tools); see above for why not -cloud-
  'cloud-init',                 // NoCloud seed: hostname, password, keys, user-data
  'cloud-guest-utils',          // growpart: the root partition grows to the instance's disk
  'e2fsprogs', 'fdisk',         // resize2fs, sfdisk (growpart's tools)
  'openssh-server',
  'locales',                    // en_US.UTF-8, cloud-init's default locale on Debian
  'sudo',                       // cloud-init's default user gets sudo rights
  'qemu-guest-agent',           // answers libvirt's guest-ping: `--wait-for agent`
  'nfs-common',                 // mount.nfs4: instances mount their datacenter's shares
  'netplan.io', 'systemd-resolved', // network config as on Debian 12's cloud images (systemd-networkd)
];
/** The last console= is /dev/console: boot messages and systemd's status go to the serial log. */
export const DEBIAN_CMDLINE = 'console=tty0 console=ttyS0,115200';
/** cloud-init's default locale on Debian (distros/debian.py); generated at build time. */
const LOCALE = 'en_US.UTF-8';

/** Builds the image into `${cacheDir}/debian/<key>/`, or returns the one already there. */
export async function buildDebianImage(opts: BuildDebianImageOptions): Promise<DebianImage> {
  const exec = opts.exec ?? local;
  const progress = opts.onProgress ?? (() => undefined);
  const recipeName = opts.recipe ?? 'debian-12';
  const recipe = DEBIAN_RECIPES[recipeName];
  if (!recipe) throw invalid(`unknown recipe "${String(recipeName)}"`, `available: ${Object.keys(DEBIAN_RECIPES).join(', ')}`);
  const sizeGiB = checkImageSize(opts.sizeGiB ?? DEFAULT_SIZE_GIB);
  const extra = parsePackages(opts.packages ?? []);
  await checkBuildHost(exec, recipeName);

  progress('reading the host\'s Debian mirror from /etc/apt');
  const mirrors = debianMirrorLines(await readHostAptSources(opts.aptDir), recipe.suite);
  const packages = [...BASE_PACKAGES, ...extra.filter((p) => !BASE_PACKAGES.includes(p))];
  const assets = await guestAssetDir('debian-guest', 'extlinux.conf', 'Debian image');
  const { key, variant } = await debianKey(exec, { suite: recipe.suite, sizeGiB, extra, packages, mirrors, assets, listsDir: opts.listsDir });

  const cacheRoot = join(resolve(opts.cacheDir), 'debian');
  const finalDir = join(cacheRoot, key);
  const cached = await readManifest(finalDir);
  if (cached && !opts.force) {
    progress('using the cached image');
    return { ...cached, built: false };
  }

  await mkdir(cacheRoot, { recursive: true });
  await removeStaleBuilds(exec, cacheRoot);
  const started = Date.now();
  const tmp = join(cacheRoot, buildDirName(key));
  const out = join(tmp, 'out');
  await mkdir(out, { recursive: true });
  try {
    const kernelVersion = await buildDisk(exec, { suite: recipe.suite, sizeGiB, packages, mirrors, assets, tmp, out }, progress);
    const buildSeconds = Math.round((Date.now() - started) / 1000);
    const manifest: Manifest = {
      key, variant, recipe: recipeName, os: osLabel(recipe.os, extra), disk: 'disk.qcow2', sizeGiB, packages: extra,
      kernelVersion, mirrors, buildSeconds, builtAt: new Date().toISOString(),
    };
    await writeFile(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    await publishBuild(cacheRoot, key, out, { replace: async () => true, complete: async (dir) => !!(await readManifest(dir)) });
    // Older builds of the same variant are of no further use: registered images hold their
    // disks by hard link or copy.
    for (const entry of await readdir(cacheRoot)) {
      if (entry === key || entry.startsWith('.')) continue;
      if ((await readManifestFile<Manifest>(join(cacheRoot, entry)))?.variant === variant) {
        await rm(join(cacheRoot, entry), { recursive: true, force: true });
      }
    }
    progress(`done in ${buildSeconds} s`);
    const result = await readManifest(finalDir);
    if (!result) throw new KumoError('COMMAND_FAILED', `the Debian image in ${finalDir} is incomplete`);
    return { ...result, built: true };
  } finally {
    await removeBuildDir(exec, tmp);
  }
}

/** Root and the tools the build runs. */
async function checkBuildHost(exec: Executor, recipeName: DebianRecipe): Promise<void> {
  // mmdebstrap's root mode (chroot, mounts) and losetup/mount need root.
  if (process.getuid?.() !== 0) {
    throw new KumoError('COMMAND_FAILED', 'building a Debian image needs root (mmdebstrap, losetup and mount)',
      `run it as root: sudo kumo image build ${recipeName}`);
  }
  await requireTools(exec, 'building a Debian image', {
    mmdebstrap: 'mmdebstrap', sfdisk: 'fdisk', mke2fs: 'e2fsprogs', losetup: 'mount', mount: 'mount',
    umount: 'mount', extlinux: 'extlinux', chroot: 'coreutils', 'qemu-img': 'qemu-utils',
  });
  if (!existsSync(MBR_BOOT_CODE)) {
    throw new KumoError('MISSING_DEPENDENCY', `${MBR_BOOT_CODE} (the MBR boot code) is missing`,
      'apt-get install --no-install-recommends extlinux');
  }
}

/** One variant = one (release, size, packages); its key also covers what may change under it. */
async function debianKey(exec: Executor, k: {
  suite: string; sizeGiB: number; extra: string[]; packages: string[]; mirrors: string[]; assets: string; listsDir: string | undefined;
}): Promise<{ key: string; variant: string }> {
  const assetFiles = await listFiles(k.assets);
  const tools = (await exec.run('dpkg-query', ['-W', '-f', '${Package} ${Version}\n', 'mmdebstrap', 'extlinux', 'e2fsprogs'],
    { allowFailure: true })).stdout;
  const variant = sha256({ suite: k.suite, sizeGiB: k.sizeGiB, extra: k.extra });
  const keyHash = createHash('sha256');
  keyHash.update(JSON.stringify({
    recipe: RECIPE, variant, suite: k.suite, sizeGiB: k.sizeGiB, packages: k.packages, mirrors: k.mirrors, cmdline: DEBIAN_CMDLINE, locale: LOCALE,
    mirrorState: await mirrorState(k.mirrors, k.listsDir), tools,
  }));
  await hashAssets(keyHash, k.assets, assetFiles);
  return { key: keyHash.digest('hex'), variant };
}

/**
 * Bootstraps Debian into tmp/root, configures it, makes the bootable disk from it and writes
 * the compressed qcow2 to out/disk.qcow2. Returns the installed kernel's version.
 */
async function buildDisk(exec: Executor, b: {
  suite: string; sizeGiB: number; packages: string[]; mirrors: string[]; assets: string; tmp: string; out: string;
}, progress: (step: string) => void): Promise<string> {
  const root = join(b.tmp, 'root');
  const fsUuid = randomUUID();
  // fstab is there before the packages: initramfs-tools reads it to put fsck for the root
  // filesystem's type into the initramfs.
  await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(join(root, 'etc', 'fstab'), `# <file system> <mount point> <type> <options> <dump> <pass>\nUUID=${fsUuid} / ext4 rw,discard,errors=remount-ro 0 1\n`);

  progress(`installing Debian ${b.suite} with ${b.packages.length} packages and their dependencies from ${b.mirrors[0]!.split(' ')[1]} (mmdebstrap; takes minutes)`);
  const t0 = Date.now();
  await waitingFor(`mmdebstrap to install Debian ${b.suite}`, () => exec.run('mmdebstrap', [
    '--mode=root', '--variant=important', '--format=directory', '--skip=check/empty',
    `--include=${b.packages.join(',')}`, b.suite, root, ...b.mirrors,
  ], { timeoutMs: 3_600_000 }));
  progress(`  installed in ${seconds(t0)} s`);

  progress('configuring the guest (cloud-init, locale, network, boot loader; removing host identity)');
  const kernelVersion = await configureTree(exec, root, b.assets, fsUuid);

  progress(`making the ${b.sizeGiB} GiB disk (partition, ext4, extlinux)`);
  const raw = join(b.tmp, 'disk.raw');
  await makeBootableDisk(exec, { tree: root, file: raw, sizeBytes: b.sizeGiB * 2 ** 30, fsUuid, work: b.tmp });
  // The tree is no longer needed: free its space before the qcow2 is written.
  await removeBuildDir(exec, root);

  progress('compressing the disk (qcow2)');
  await waitingFor('qemu-img to compress the disk', () => exec.run('qemu-img', ['convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', raw, join(b.out, 'disk.qcow2')],
    { timeoutMs: 1_800_000 }));
  await rm(raw, { force: true });
  return kernelVersion;
}

function osLabel(os: string, extra: string[]): string {
  return extra.length ? `${os} + ${extra.join(', ')}` : os;
}

/** What turns a bootstrapped Debian into a cloud image; returns the installed kernel's version. */
async function configureTree(exec: Executor, root: string, assets: string, fsUuid: string): Promise<string> {
  // cloud-init settings, neutral hostname/hosts, the system locale
  await cp(join(assets, 'rootfs'), root, { recursive: true, force: true });

  // The locale cloud-init sets by default, generated now so the first boot skips locale-gen.
  const localeGen = join(root, 'etc', 'locale.gen');
  const gen = existsSync(localeGen) ? await readFile(localeGen, 'utf8') : '';
  const line = `${LOCALE} UTF-8`;
  const enabled = gen.replace(new RegExp(`^#\\s*${LOCALE.replace('.', '\\.')} UTF-8\\s*$`, 'm'), line);
  await writeFile(localeGen, enabled.includes(`\n${line}`) || enabled.startsWith(line) ? enabled : `${enabled}${line}\n`);
  await exec.run('chroot', [root, 'locale-gen'], { timeoutMs: 600_000 });

  // netplan writes systemd-networkd's config; networkd must run for it to apply.
  await exec.run('chroot', [root, 'systemctl', 'enable', 'systemd-networkd.service'], { timeoutMs: 120_000 });

  // No identity of the build: each instance gets its own machine id, ssh host keys and name.
  await writeFile(join(root, 'etc', 'machine-id'), '');
  await rm(join(root, 'var', 'lib', 'dbus', 'machine-id'), { force: true });
  for (const f of await readdir(join(root, 'etc', 'ssh'))) {
    if (f.startsWith('ssh_host_')) await rm(join(root, 'etc', 'ssh', f), { force: true });
  }
  for (const d of ['var/lib/cloud', 'var/lib/dhcp', 'var/lib/systemd/random-seed']) await rm(join(root, d), { recursive: true, force: true });

  // The boot loader's configuration (extlinux itself goes in when the disk is made).
  for (const link of ['vmlinuz', 'initrd.img']) {
    if (!existsSync(join(root, link))) throw new KumoError('COMMAND_FAILED', `the bootstrapped tree has no /${link} (did the kernel install fail?)`);
  }
  const conf = (await readFile(join(assets, 'extlinux.conf'), 'utf8'))
    .replaceAll('@ROOT_UUID@', fsUuid).replaceAll('@CMDLINE@', DEBIAN_CMDLINE);
  await mkdir(join(root, 'boot', 'extlinux'), { recursive: true });
  await writeFile(join(root, 'boot', 'extlinux', 'extlinux.conf'), conf);

  const versions = (await readdir(join(root, 'usr', 'lib', 'modules'))).sort();
  if (!versions.length) throw new KumoError('COMMAND_FAILED', 'the bootstrapped tree has no kernel modules');
  return versions[versions.length - 1]!;
}

// ---------------------------------------------------------------- cache

interface Manifest {
  key: string;
  variant: string;
  recipe: DebianRecipe;
  os: string;
  disk: string;
  sizeGiB: number;
  packages: string[];
  kernelVersion: string;
  mirrors: string[];
  buildSeconds: number;
  builtAt: string;
}

async function readManifest(dir: string): Promise<Omit<DebianImage, 'built'> | undefined> {
  const m = await readManifestFile<Manifest>(dir);
  if (!m) return undefined;
  const disk = join(dir, m.disk);
  if (!(await stat(disk).catch(() => undefined))?.isFile()) return undefined;
  return {
    recipe: m.recipe, os: m.os, disk, key: m.key, sizeGiB: m.sizeGiB, packages: m.packages,
    kernelVersion: m.kernelVersion, buildSeconds: m.buildSeconds,
  };
}

function sha256(v: unknown): string {
  return createHash('sha256').update(JSON.stringify(v)).digest('hex');
}

const seconds = (since: number) => Math.round((Date.now() - since) / 1000);
