import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import {
  chmod, copyFile, mkdir, readdir, readFile, realpath, rename, rm, stat, symlink, writeFile,
} from 'node:fs/promises';
import { basename, dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { type Executor, local } from '../../exec/exec.js';
import { KumoError } from '../../model/errors.js';

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

/**
 * Loaded by the initramfs: the root disk (virtio, ext4), the network card, and the seed's
 * cdrom (SATA, ISO 9660). Every module load waits for all pending asynchronous device probes,
 * so AHCI, whose port probe is slow under emulation, is loaded last and in the background.
 */
const INITRAMFS_MODULES = ['virtio_pci', 'virtio_blk', 'virtio_net', 'crc32c_generic', 'ext4', 'isofs', 'sr_mod', 'libahci'];
const INITRAMFS_ASYNC_MODULES = ['ahci'];
/**
 * Shipped in the root filesystem (with their dependencies, from each .ko's modinfo). rcS loads the
 * drivers of the devices present (PCI and virtio modaliases), the kernel loads filesystems
 * and charsets on mount, and ROOTFS_ALWAYS_LOAD is loaded on every boot.
 */
const ROOTFS_MODULES = [
  ...INITRAMFS_MODULES, ...INITRAMFS_ASYNC_MODULES,
  // network cards (virtio, and libvirt's other usual models)
  'virtio_net', 'e1000', '8139too',
  // the seed: SATA (AHCI) or IDE cdrom, virtio-scsi, ISO 9660 and vfat with their charsets
  'ahci', 'ata_piix', 'sr_mod', 'sd_mod', 'virtio_scsi', 'isofs', 'vfat', 'nls_ascii', 'nls_cp437', 'nls_utf8',
  // ACPI power button (virsh shutdown) as an input device
  'button', 'evdev',
  // libvirt's default extras
  'virtio_balloon', 'virtio_rng', 'virtio_console',
  // NFS client (the storage node's shared folder): the kernel loads them on `mount -t nfs4`
  'nfsv4', 'nfs',
  // the VNC screen: a PVH-booted kernel gets no VGA text mode, so the console needs the
  // framebuffer of the 'vga' (bochs) display
  'bochs',
];
/** Not bound to a device rcS can see (evdev), or wanted before a device shows up. */
const ROOTFS_ALWAYS_LOAD = ['button', 'evdev'];

const MiB = 1024 * 1024;

interface DebPackage {
  name: string;
  version: string;
  arch: string;
  sha256: string;
}

/**
 * What a tiny image is made of, and the key naming its build: the same inputs give the same
 * key, so whether a registered image is current is known without building.
 */
export async function tinyRecipe(exec: Executor = local) {
  const haveXz = (await missingTools(exec, ['xz'])).length === 0;
  const [kernelPackage, busyboxDeb] = await Promise.all([
    resolveDepends(exec, KERNEL_META_PACKAGE, /^linux-image-\d/), packageInfo(exec, BUSYBOX_PACKAGE),
  ]);
  const kernelDeb = await packageInfo(exec, kernelPackage);
  const packages = [kernelDeb, busyboxDeb];

  const assets = await assetDir();
  const assetFiles = await listFiles(assets);
  const resize2fs = await resize2fsFiles(exec);

  const keyHash = createHash('sha256');
  keyHash.update(JSON.stringify({
    recipe: RECIPE, cmdline: TINY_CMDLINE, disk: DISK_SIZE, initramfsModules: INITRAMFS_MODULES,
    initramfsAsync: INITRAMFS_ASYNC_MODULES,
    rootfsModules: ROOTFS_MODULES, alwaysLoad: ROOTFS_ALWAYS_LOAD, kernel: haveXz ? 'pvh-elf' : 'bzimage', packages,
  }));
  for (const f of assetFiles) {
    keyHash.update(`\0asset\0${f}\0`);
    keyHash.update(await readFile(join(assets, f)));
  }
  for (const f of resize2fs) keyHash.update(`\0host\0${f.guestPath}\0${await sha256File(f.hostPath)}`);
  const key = keyHash.digest('hex');
  return { haveXz, kernelDeb, busyboxDeb, packages, assets, assetFiles, resize2fs, key };
}

/** Builds the tiny image into `${cacheDir}/tiny/<key>/`, or returns the one already there. */
export async function buildTinyImage(opts: BuildTinyImageOptions): Promise<TinyImage> {
  const exec = opts.exec ?? local;
  const progress = opts.onProgress ?? (() => undefined);

  await requireTools(exec, {
    'apt-get': 'apt', 'apt-cache': 'apt', 'dpkg-deb': 'dpkg', cpio: 'cpio', mke2fs: 'e2fsprogs',
    resize2fs: 'e2fsprogs', ldd: 'libc-bin', 'qemu-img': 'qemu-utils',
  });
  progress('resolving packages');
  const { haveXz, kernelDeb, busyboxDeb, packages, assets, assetFiles, resize2fs, key } = await tinyRecipe(exec);

  const cacheDir = resolve(opts.cacheDir);
  const tinyRoot = join(cacheDir, 'tiny');
  const finalDir = join(tinyRoot, key);
  const cached = await readManifest(finalDir);
  if (cached && !opts.force) {
    progress('using the cached image');
    return { ...cached, built: false };
  }

  await mkdir(tinyRoot, { recursive: true });
  const tmp = join(tinyRoot, `.build-${key.slice(0, 12)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  const work = join(tmp, 'work');
  const out = join(tmp, 'out');
  await mkdir(work, { recursive: true });
  await mkdir(out, { recursive: true });
  try {
    const debsDir = join(cacheDir, 'debs');
    const kernelFile = await ensureDeb(exec, debsDir, kernelDeb, progress);
    const busyboxFile = await ensureDeb(exec, debsDir, busyboxDeb, progress);

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

    progress('building the initramfs');
    const initramfs = join(work, 'initramfs');
    await populateBusybox(initramfs, busybox, applets);
    for (const d of ['dev', 'proc', 'sys', 'newroot', 'etc', 'root', 'tmp']) await mkdir(join(initramfs, d), { recursive: true });
    await copyAsset(join(assets, 'initramfs', 'init'), join(initramfs, 'init'));
    const initramfsLoad = await installModules(exec, busybox, kver, mods,
      [...INITRAMFS_MODULES, ...INITRAMFS_ASYNC_MODULES], initramfs);
    const lines = (names: string[]) => names.filter((m) => initramfsLoad.includes(m)).map((m) => `${m}\n`).join('');
    await writeFile(join(initramfs, 'etc', 'modules'), lines(INITRAMFS_MODULES));
    await writeFile(join(initramfs, 'etc', 'modules.async'), lines(INITRAMFS_ASYNC_MODULES));
    const cpioFile = join(work, 'initramfs.cpio');
    await exec.run('cpio', ['--quiet', '-o', '-H', 'newc', '-R', '0:0', '-O', cpioFile], {
      cwd: initramfs, input: `${(await listTree(initramfs)).join('\n')}\n`, timeoutMs: 120_000,
    });
    await writeFile(join(out, 'initrd.img'), gzipSync(await readFile(cpioFile), { level: 9 }));

    progress('building the root filesystem');
    const rootfs = join(work, 'rootfs');
    await populateBusybox(rootfs, busybox, applets);
    for (const f of assetFiles.filter((f) => f.startsWith('rootfs/'))) {
      await copyAsset(join(assets, f), join(rootfs, f.slice('rootfs/'.length)));
    }
    const rootfsLoad = await installModules(exec, busybox, kver, mods, ROOTFS_MODULES, rootfs);
    const modulesToLoad = ROOTFS_ALWAYS_LOAD.filter((m) => rootfsLoad.includes(m));
    await writeFile(join(rootfs, 'etc', 'modules'), `${modulesToLoad.join('\n')}\n`);
    for (const f of resize2fs) {
      const dest = join(rootfs, f.guestPath);
      await mkdir(dirname(dest), { recursive: true });
      await copyFile(f.hostPath, dest);
      await chmod(dest, 0o755);
    }
    for (const d of ['dev', 'proc', 'sys', 'run', 'mnt', 'home', 'var/log', 'var/lib/cloud', 'var/www']) {
      await mkdir(join(rootfs, d), { recursive: true });
    }
    await mkdir(join(rootfs, 'root'), { recursive: true, mode: 0o700 });
    await chmod(join(rootfs, 'root'), 0o700);
    await mkdir(join(rootfs, 'tmp'), { recursive: true });
    await chmod(join(rootfs, 'tmp'), 0o1777);
    await symlink('/proc/mounts', join(rootfs, 'etc', 'mtab'));
    await symlink('/run', join(rootfs, 'var', 'run'));
    await writeFile(join(rootfs, 'etc', 'os-release'), [
      'NAME="kumo tiny"', 'ID=kumo-tiny', 'ID_LIKE=cirros', `VERSION_ID=${key.slice(0, 12)}`,
      `PRETTY_NAME="kumo tiny image (Linux ${kver}, busybox ${busyboxDeb.version})"`, '',
    ].join('\n'));

    const raw = join(work, 'disk.raw');
    await exec.run('mke2fs', ['-q', '-F', '-t', 'ext4', '-T', 'default', '-b', '4096', '-I', '256',
      '-L', 'root', '-E', 'root_owner=0:0', '-d', rootfs, raw, DISK_SIZE], { timeoutMs: 120_000 });
    progress('compressing the disk');
    await exec.run('qemu-img', ['convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', raw, join(out, 'disk.qcow2')],
      { timeoutMs: 300_000 });

    progress('preparing the kernel');
    const vmlinuz = join(kx, 'boot', `vmlinuz-${kver}`);
    const kernelName = await prepareKernel(exec, vmlinuz, work, out, haveXz);

    const manifest = {
      key, kernelVersion: kver, packages, cmdline: TINY_CMDLINE, kernel: kernelName, initrd: 'initrd.img',
      disk: 'disk.qcow2', modules: rootfsLoad, builtAt: new Date().toISOString(),
    };
    await writeFile(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);

    if (existsSync(finalDir) && (opts.force || !(await readManifest(finalDir)))) {
      const old = join(tinyRoot, `.old-${key.slice(0, 12)}-${randomBytes(4).toString('hex')}`);
      await rename(finalDir, old);
      await rm(old, { recursive: true, force: true });
    }
    try {
      await rename(out, finalDir);
    } catch (e) {
      // another build of the same inputs finished first: use it
      const other = await readManifest(finalDir);
      if (!other) throw e;
    }
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

// ---------------------------------------------------------------- host tools and packages

async function missingTools(exec: Executor, tools: string[]): Promise<string[]> {
  const r = await exec.run('sh', ['-c', 'for t; do command -v "$t" >/dev/null 2>&1 || echo "$t"; done', 'sh', ...tools],
    { env: { ...process.env, PATH: `${process.env.PATH ?? '/usr/bin:/bin'}:/usr/sbin:/sbin` } });
  return r.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
}

async function requireTools(exec: Executor, toolPackages: Record<string, string>): Promise<void> {
  const missing = await missingTools(exec, Object.keys(toolPackages));
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((t) => toolPackages[t] ?? t))];
  throw new KumoError('MISSING_DEPENDENCY',
    `building the tiny guest image needs ${missing.join(', ')} (Debian package${pkgs.length > 1 ? 's' : ''} ${pkgs.join(', ')})`,
    `apt-get install --no-install-recommends ${pkgs.join(' ')}`);
}

/** The package a meta-package currently points at (`apt-cache depends`). */
async function resolveDepends(exec: Executor, meta: string, pattern: RegExp): Promise<string> {
  const r = await exec.run('apt-cache', ['depends', meta], { allowFailure: true });
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*Depends:\s*(\S+)/.exec(line);
    if (m?.[1] && pattern.test(m[1])) return m[1];
  }
  throw new KumoError('NOT_FOUND', `apt does not know the Debian package ${meta}`,
    'run apt-get update (the Debian package lists are needed to build the tiny guest image)');
}

async function packageInfo(exec: Executor, name: string): Promise<DebPackage> {
  const r = await exec.run('apt-cache', ['show', '--no-all-versions', name], { allowFailure: true });
  const stanza = r.stdout.split(/\n\s*\n/)[0] ?? '';
  const field = (f: string) => new RegExp(`^${f}:\\s*(.+)$`, 'm').exec(stanza)?.[1]?.trim();
  const version = field('Version');
  const arch = field('Architecture');
  const sha256 = field('SHA256');
  if (r.code !== 0 || !version || !arch || !sha256) {
    throw new KumoError('NOT_FOUND', `apt has no installable version of the Debian package ${name}`,
      'run apt-get update (the Debian package lists are needed to build the tiny guest image)');
  }
  return { name, version, arch, sha256 };
}

/** The .deb in the debs cache (downloaded with `apt-get download` unless a verified copy is there). */
async function ensureDeb(exec: Executor, debsDir: string, p: DebPackage, progress: (s: string) => void): Promise<string> {
  const file = join(debsDir, `${p.name}_${p.version.replace(/:/g, '%3a')}_${p.arch}.deb`);
  if (existsSync(file) && (await sha256File(file)) === p.sha256) return file;
  progress(`downloading ${p.name} ${p.version}`);
  await mkdir(debsDir, { recursive: true });
  const tmp = join(debsDir, `.download-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp);
  try {
    const args = ['download', '-q'];
    // as root, apt would warn that its _apt user cannot write here
    if (process.getuid?.() === 0) args.push('-o', 'APT::Sandbox::User=root');
    args.push(`${p.name}=${p.version}`);
    await exec.run('apt-get', args, { cwd: tmp, timeoutMs: 900_000 });
    const got = (await readdir(tmp)).filter((f) => f.endsWith('.deb'));
    if (got.length !== 1 || !got[0]) {
      throw new KumoError('COMMAND_FAILED', `apt-get download ${p.name} left ${got.length} .deb files`);
    }
    const downloaded = join(tmp, got[0]);
    if ((await sha256File(downloaded)) !== p.sha256) {
      throw new KumoError('COMMAND_FAILED', `the downloaded ${p.name} ${p.version} does not match apt's checksum`,
        'run apt-get update and try again');
    }
    await rename(downloaded, file);
    return file;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

interface HostFile { hostPath: string; guestPath: string }

/** resize2fs and the shared libraries it needs (ldd), to grow the root filesystem in the guest. */
async function resize2fsFiles(exec: Executor): Promise<HostFile[]> {
  const where = await exec.run('sh', ['-c', 'command -v resize2fs'],
    { env: { ...process.env, PATH: `${process.env.PATH ?? '/usr/bin:/bin'}:/usr/sbin:/sbin` } });
  const bin = where.stdout.trim();
  const files: HostFile[] = [{ hostPath: await realpath(bin), guestPath: 'usr/sbin/resize2fs' }];
  const ldd = await exec.run('ldd', [bin]);
  for (const line of ldd.stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    const lib = m?.[1];
    if (!lib) continue;
    files.push({ hostPath: await realpath(lib), guestPath: lib.replace(/^\/+/, '') });
  }
  if (!files.some((f) => /ld-linux/.test(f.guestPath))) {
    throw new KumoError('COMMAND_FAILED', `ldd ${bin} did not name the dynamic loader`);
  }
  return files;
}

// ---------------------------------------------------------------- trees

/** The guest asset folder, from dist/src/drivers/image/ (compiled) or src/drivers/image/ (sources). */
async function assetDir(): Promise<string> {
  const candidates = [
    new URL('../../../../src/drivers/image/tiny-guest/', import.meta.url),
    new URL('./tiny-guest/', import.meta.url),
  ];
  for (const c of candidates) {
    const p = fileURLToPath(c);
    if (existsSync(join(p, 'initramfs', 'init'))) return p.replace(/\/$/, '');
  }
  throw new KumoError('NOT_FOUND', 'the tiny image guest files (src/drivers/image/tiny-guest) are missing',
    'reinstall kumo: the guest files ship with its sources');
}

/** Files under dir, as sorted relative paths with forward slashes. */
async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await readdir(join(dir, prefix), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...await listFiles(dir, rel));
    else if (e.isFile()) out.push(rel);
  }
  return out;
}

/** Everything under dir (folders, files, links) for cpio, parents first. */
async function listTree(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await readdir(join(dir, prefix), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    out.push(rel);
    if (e.isDirectory()) out.push(...await listTree(dir, rel));
  }
  return out;
}

/** Scripts (#!) are executable, /etc/shadow is private, the rest is readable. */
async function copyAsset(src: string, dest: string): Promise<void> {
  await mkdir(dirname(dest), { recursive: true });
  const body = await readFile(src);
  const mode = basename(dest) === 'shadow' ? 0o600 : body.subarray(0, 2).toString() === '#!' ? 0o755 : 0o644;
  await writeFile(dest, body);
  await chmod(dest, mode);
}

/** bin/busybox and a symlink for each applet (bin/sh, sbin/init, usr/bin/awk, ...). */
async function populateBusybox(tree: string, busybox: string, applets: string[]): Promise<void> {
  await mkdir(join(tree, 'bin'), { recursive: true });
  await copyFile(busybox, join(tree, 'bin', 'busybox'));
  await chmod(join(tree, 'bin', 'busybox'), 0o755);
  for (const a of applets) {
    const rel = a.replace(/^\/+/, '');
    if (rel === 'bin/busybox') continue;
    const dest = join(tree, rel);
    await mkdir(dirname(dest), { recursive: true });
    if (existsSync(dest)) continue;
    await symlink(posix.relative(posix.dirname(rel), 'bin/busybox'), dest);
  }
}

interface ModuleIndex {
  /** module name (with _) -> path relative to lib/modules/KVER */
  paths: Map<string, string>;
  modDir: string;
}

const modName = (p: string) => basename(p).replace(/\.ko(\.(xz|gz|zst))?$/, '').replace(/-/g, '_');

/** The kernel package's modules (built-in ones are not files: they are left out). */
async function readModules(modDir: string): Promise<ModuleIndex> {
  const paths = new Map<string, string>();
  for (const f of await listFiles(modDir)) if (/\.ko$/.test(f)) paths.set(modName(f), f);
  return { paths, modDir };
}

/** A module's dependencies, from the "depends=" entry of its ELF .modinfo section. */
function moduleDepends(ko: Buffer): string[] {
  if (ko.length < 64 || ko.readUInt32BE(0) !== 0x7f454c46 || ko[4] !== 2) return [];
  const shoff = Number(ko.readBigUInt64LE(0x28));
  const shentsize = ko.readUInt16LE(0x3a);
  const shnum = ko.readUInt16LE(0x3c);
  const shstrndx = ko.readUInt16LE(0x3e);
  const section = (i: number) => {
    const h = shoff + i * shentsize;
    return { name: ko.readUInt32LE(h), offset: Number(ko.readBigUInt64LE(h + 0x18)), size: Number(ko.readBigUInt64LE(h + 0x20)) };
  };
  const names = section(shstrndx);
  for (let i = 0; i < shnum; i++) {
    const sec = section(i);
    const start = names.offset + sec.name;
    const name = ko.subarray(start, ko.indexOf(0, start)).toString('latin1');
    if (name !== '.modinfo') continue;
    for (const entry of ko.subarray(sec.offset, sec.offset + sec.size).toString('latin1').split('\0')) {
      if (entry.startsWith('depends=')) return entry.slice(8).split(',').filter(Boolean).map(modName);
    }
    return [];
  }
  return [];
}

/**
 * Copies the wanted modules and their dependencies into tree/lib/modules/KVER and runs
 * depmod there. Built-in and absent modules are left out. Returns the names to load.
 */
async function installModules(exec: Executor, busybox: string, kver: string, index: ModuleIndex,
  wanted: string[], tree: string): Promise<string[]> {
  const load = wanted.filter((m) => index.paths.has(m));
  const dest = join(tree, 'lib', 'modules', kver);
  const done = new Set<string>();
  const visit = async (m: string): Promise<void> => {
    const path = index.paths.get(m);
    if (done.has(m) || !path) return;
    done.add(m);
    const ko = await readFile(join(index.modDir, path));
    await mkdir(dirname(join(dest, path)), { recursive: true });
    await writeFile(join(dest, path), ko);
    for (const d of moduleDepends(ko)) await visit(d);
  };
  for (const m of load) await visit(m);
  for (const f of ['modules.builtin', 'modules.builtin.modinfo', 'modules.order']) {
    if (existsSync(join(index.modDir, f))) await copyFile(join(index.modDir, f), join(dest, f));
  }
  await exec.run(busybox, ['depmod', '-b', tree, kver], { timeoutMs: 120_000 });
  return load;
}

async function onlyEntry(dir: string, what: string): Promise<string> {
  const entries = existsSync(dir) ? await readdir(dir) : [];
  if (entries.length !== 1 || !entries[0]) {
    throw new KumoError('COMMAND_FAILED', `expected one ${what} in ${dir}, found ${entries.length}`);
  }
  return entries[0];
}

// ---------------------------------------------------------------- kernel

/**
 * Copies the kernel to out/. An xz-compressed bzImage is unpacked to its ELF vmlinux when it
 * has a PVH entry (QEMU boots that directly, ~3 s sooner under TCG); else the bzImage is used.
 */
async function prepareKernel(exec: Executor, vmlinuz: string, work: string, out: string, haveXz: boolean): Promise<string> {
  const image = await readFile(vmlinuz);
  if (haveXz && image.length > 0x250 && image.readUInt32LE(0x202) === 0x53726448 /* "HdrS" */) {
    const setupSects = image[0x1f1] || 4;
    const start = (setupSects + 1) * 512 + image.readUInt32LE(0x248);
    const length = image.readUInt32LE(0x24c);
    const payload = image.subarray(start, start + length);
    if (payload.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) {
      // the kernel build appends the unpacked size (4 bytes) to the xz stream
      const xzFile = join(work, 'vmlinux.xz');
      await writeFile(xzFile, payload.subarray(0, payload.length - 4));
      const r = await exec.run('xz', ['-d', '-q', xzFile], { allowFailure: true, timeoutMs: 300_000 });
      const elf = join(work, 'vmlinux');
      if (r.code === 0 && existsSync(elf) && hasPvhEntry(await readFile(elf))) {
        await rename(elf, join(out, 'vmlinux'));
        return 'vmlinux';
      }
    }
  }
  await copyFile(vmlinuz, join(out, 'vmlinuz'));
  return 'vmlinuz';
}

/** Does this ELF64 carry a Xen PHYS32_ENTRY note (the PVH entry point QEMU looks for)? */
function hasPvhEntry(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2) return false;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + 56 > elf.length || elf.readUInt32LE(ph) !== 4 /* PT_NOTE */) continue;
    let off = Number(elf.readBigUInt64LE(ph + 8));
    const end = off + Number(elf.readBigUInt64LE(ph + 32));
    while (off + 12 <= end && end <= elf.length) {
      const namesz = elf.readUInt32LE(off);
      const descsz = elf.readUInt32LE(off + 4);
      const type = elf.readUInt32LE(off + 8);
      const name = elf.subarray(off + 12, off + 12 + namesz).toString('latin1').replace(/\0+$/, '');
      if (name === 'Xen' && type === 18 /* XEN_ELFNOTE_PHYS32_ENTRY */) return true;
      off += 12 + Math.ceil(namesz / 4) * 4 + Math.ceil(descsz / 4) * 4;
    }
  }
  return false;
}

// ---------------------------------------------------------------- cache

async function readManifest(dir: string): Promise<Omit<TinyImage, 'built'> | undefined> {
  try {
    const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as
      { key: string; kernel: string; initrd: string; disk: string; cmdline: string };
    const image = {
      disk: join(dir, m.disk), kernel: join(dir, m.kernel), initrd: join(dir, m.initrd), cmdline: m.cmdline, key: m.key,
    };
    for (const f of [image.disk, image.kernel, image.initrd]) if (!(await stat(f)).isFile()) return undefined;
    return image;
  } catch {
    return undefined;
  }
}

function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file).on('error', reject).on('data', (b) => h.update(b)).on('end', () => resolve(h.digest('hex')));
  });
}

/** Sizes in MiB, for messages. */
export async function tinyImageSizes(image: TinyImage): Promise<{ disk: number; kernel: number; initrd: number }> {
  const mib = async (f: string) => Math.round(((await stat(f)).size / MiB) * 10) / 10;
  return { disk: await mib(image.disk), kernel: await mib(image.kernel), initrd: await mib(image.initrd) };
}
