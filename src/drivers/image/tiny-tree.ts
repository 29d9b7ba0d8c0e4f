import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Executor } from '../../exec/exec.js';
import { KumoError } from '../../model/errors.js';
import type { HostFile } from './tiny-debs.js';
import {
  INITRAMFS_ASYNC_MODULES, INITRAMFS_MODULES, installModules, ROOTFS_ALWAYS_LOAD, ROOTFS_MODULES, type ModuleIndex,
} from './tiny-modules.js';

/** The tiny image's two trees, assembled from busybox, the kernel's modules and the guest asset files. */

/** What both trees are made from: the unpacked packages and the guest asset folder. */
export interface TreeParts {
  exec: Executor;
  /** The static busybox binary, and its applets' full paths (/bin/sh, /sbin/init, ...). */
  busybox: string;
  applets: string[];
  kver: string;
  mods: ModuleIndex;
  assets: string;
  /** Scratch folder the trees are made in. */
  work: string;
}

/** The initramfs (cpio, gzip) as `initrdFile`: busybox, init, and the modules that find the root disk and the seed. */
export async function buildInitramfs(p: TreeParts, initrdFile: string): Promise<void> {
  const initramfs = join(p.work, 'initramfs');
  await populateBusybox(initramfs, p.busybox, p.applets);
  for (const d of ['dev', 'proc', 'sys', 'newroot', 'etc', 'root', 'tmp']) await mkdir(join(initramfs, d), { recursive: true });
  await copyAsset(join(p.assets, 'initramfs', 'init'), join(initramfs, 'init'));
  const initramfsLoad = await installModules(p.exec, p.busybox, p.kver, p.mods,
    [...INITRAMFS_MODULES, ...INITRAMFS_ASYNC_MODULES], initramfs);
  const lines = (names: string[]) => names.filter((m) => initramfsLoad.includes(m)).map((m) => `${m}\n`).join('');
  await writeFile(join(initramfs, 'etc', 'modules'), lines(INITRAMFS_MODULES));
  await writeFile(join(initramfs, 'etc', 'modules.async'), lines(INITRAMFS_ASYNC_MODULES));
  const cpioFile = join(p.work, 'initramfs.cpio');
  await p.exec.run('cpio', ['--quiet', '-o', '-H', 'newc', '-R', '0:0', '-O', cpioFile], {
    cwd: initramfs, input: `${(await listTree(initramfs)).join('\n')}\n`, timeoutMs: 120_000,
  });
  await writeFile(initrdFile, gzipSync(await readFile(cpioFile), { level: 9 }));
}

/**
 * The root filesystem's tree in work/rootfs: busybox, the rootfs/ asset files, the modules,
 * resize2fs from the host, the usual folders and os-release. Returns the tree and the modules it carries.
 */
export async function buildRootTree(p: TreeParts, assetFiles: string[], resize2fs: HostFile[],
  release: { key: string; busyboxVersion: string }): Promise<{ rootfs: string; modules: string[] }> {
  const rootfs = join(p.work, 'rootfs');
  await populateBusybox(rootfs, p.busybox, p.applets);
  for (const f of assetFiles.filter((f) => f.startsWith('rootfs/'))) {
    await copyAsset(join(p.assets, f), join(rootfs, f.slice('rootfs/'.length)));
  }
  const rootfsLoad = await installModules(p.exec, p.busybox, p.kver, p.mods, ROOTFS_MODULES, rootfs);
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
    'NAME="kumo tiny"', 'ID=kumo-tiny', 'ID_LIKE=cirros', `VERSION_ID=${release.key.slice(0, 12)}`,
    `PRETTY_NAME="kumo tiny image (Linux ${p.kver}, busybox ${release.busyboxVersion})"`, '',
  ].join('\n'));
  return { rootfs, modules: rootfsLoad };
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

/** The one entry of a folder (the kernel package's lib/modules/KVER). */
export async function onlyEntry(dir: string, what: string): Promise<string> {
  const entries = existsSync(dir) ? await readdir(dir) : [];
  if (entries.length !== 1 || !entries[0]) {
    throw new KumoError('COMMAND_FAILED', `expected one ${what} in ${dir}, found ${entries.length}`);
  }
  return entries[0];
}
