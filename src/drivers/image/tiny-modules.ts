import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Executor } from '../../exec/exec.js';
import { listFiles } from './recipe.js';

/** Which kernel modules the tiny image carries, and copying them (with their dependencies) into a tree. */

/**
 * Loaded by the initramfs: the root disk (virtio, ext4), the network card, and the seed's
 * cdrom (SATA, ISO 9660). Every module load waits for all pending asynchronous device probes,
 * so AHCI, whose port probe is slow under emulation, is loaded last and in the background.
 */
export const INITRAMFS_MODULES = ['virtio_pci', 'virtio_blk', 'virtio_net', 'crc32c_generic', 'ext4', 'isofs', 'sr_mod', 'libahci'];
export const INITRAMFS_ASYNC_MODULES = ['ahci'];
/**
 * Shipped in the root filesystem (with their dependencies, from each .ko's modinfo). rcS loads the
 * drivers of the devices present (PCI and virtio modaliases), the kernel loads filesystems
 * and charsets on mount, and ROOTFS_ALWAYS_LOAD is loaded on every boot.
 */
export const ROOTFS_MODULES = [
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
export const ROOTFS_ALWAYS_LOAD = ['button', 'evdev'];

export interface ModuleIndex {
  /** module name (with _) -> path relative to lib/modules/KVER */
  paths: Map<string, string>;
  modDir: string;
}

const modName = (p: string) => basename(p).replace(/\.ko(\.(xz|gz|zst))?$/, '').replace(/-/g, '_');

/** The kernel package's modules (built-in ones are not files: they are left out). */
export async function readModules(modDir: string): Promise<ModuleIndex> {
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
export async function installModules(exec: Executor, busybox: string, kver: string, index: ModuleIndex,
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
