import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, copyFile, lchown, lstat, mkdir, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KumoError, invalid } from '../../../model/errors.js';

/**
 * The private state folder of a lab libvirtd (see namespace.ts): filtered copies of the host's
 * libvirt folders, and the settings that make this hypervisor one of its own (host UUID, ports).
 */

/** The host folders that get a private copy, and where the copy lives under the state folder. */
export const BINDS = [
  { host: '/etc/libvirt', sub: 'etc' },
  { host: '/var/lib/libvirt', sub: 'lib' },
  { host: '/var/cache/libvirt', sub: 'cache' },
  { host: '/var/log/libvirt', sub: 'log' },
  { host: '/run/libvirt', sub: 'run' },
] as const;

/** What of the host's folder the private copy keeps (paths relative to that folder). */
function keep(sub: string, rel: string, isDir: boolean): boolean {
  const parts = rel.split('/');
  switch (sub) {
    case 'etc':
      // Config files stay; definitions of the host's domains, networks, pools and secrets
      // (and their autostart links) do not, so the new hypervisor starts empty.
      if (['qemu', 'storage', 'secrets', 'lxc', 'libxl', 'nodedev'].includes(parts[0]!)) return isDir && !parts.includes('autostart');
      return true;
    case 'lib':
      // Folders only, and none that belong to one of the host's domains.
      if (!isDir) return false;
      if (parts[0] === 'qemu') return parts.length === 1 || (parts.length === 2 && !parts[1]!.startsWith('domain-')) || rel === 'qemu/channel/target';
      return parts.length === 1;
    case 'cache':
      return true;
    case 'log':
      return isDir;
    default: // run: starts empty
      return false;
  }
}

export async function prepareState(stateDir: string): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o755 });
  // QEMU (libvirt-qemu) must be able to walk through to the guests' channel sockets and logs.
  await chmod(stateDir, 0o755);
  for (const b of BINDS) {
    const dst = join(stateDir, b.sub);
    if (existsSync(dst)) continue; // a restart keeps what this hypervisor defined
    const st = await lstat(b.host).catch(() => undefined);
    if (!st?.isDirectory()) {
      throw new KumoError('MISSING_DEPENDENCY', `${b.host} does not exist: libvirt is not installed (or never ran) here`,
        'run the README set-up command (scripts/up.sh)');
    }
    await copyTree(b.host, dst, '', (rel, isDir) => keep(b.sub, rel, isDir));
  }
}

/** Copies a tree keeping owners and modes (QEMU's folders belong to libvirt-qemu), filtered. */
async function copyTree(src: string, dst: string, rel: string, filter: (rel: string, isDir: boolean) => boolean): Promise<void> {
  const st = await lstat(src);
  await mkdir(dst, { recursive: true });
  for (const entry of await readdir(src, { withFileTypes: true })) {
    const r = rel ? `${rel}/${entry.name}` : entry.name;
    const s = join(src, entry.name);
    const d = join(dst, entry.name);
    if (entry.isDirectory()) {
      if (filter(r, true)) await copyTree(s, d, r, filter);
    } else if (entry.isFile()) {
      if (!filter(r, false)) continue;
      const fs = await lstat(s);
      await copyFile(s, d);
      await chown(d, fs.uid, fs.gid);
      await chmod(d, fs.mode & 0o7777);
    } else if (entry.isSymbolicLink()) {
      if (!filter(r, false)) continue;
      const ls = await lstat(s);
      await symlink(await readlink(s), d);
      await lchown(d, ls.uid, ls.gid);
    } // sockets and fifos belong to the host's running daemons
  }
  await chown(dst, st.uid, st.gid);
  await chmod(dst, st.mode & 0o7777);
}

/** Sets host_uuid (and a log file) in the private libvirtd.conf; returns the UUID in force. */
export async function writeHostUuid(stateDir: string, wanted?: string): Promise<string> {
  const file = join(stateDir, 'etc', 'libvirtd.conf');
  const text = await readFile(file, 'utf8').catch(() => '');
  const existing = /^\s*host_uuid\s*=\s*"([0-9a-f-]{36})"/m.exec(text)?.[1];
  if (wanted !== undefined && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(wanted)) {
    throw invalid(`host UUID "${wanted}" is not a UUID`);
  }
  const uuid = wanted ?? existing ?? randomUUID();
  const kept = text.split('\n').filter((l) => !/^\s*(host_uuid|log_outputs)\s*=/.test(l) && l !== '# kumo lab hypervisor');
  while (kept.length && kept[kept.length - 1] === '') kept.pop();
  kept.push('', '# kumo lab hypervisor', `host_uuid = "${uuid}"`, 'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"', '');
  await writeFile(file, kept.join('\n'), { mode: 0o644 });
  return uuid;
}

/** qemu.conf port ranges of their own (see LibvirtdOptions.portSlot). */
export async function writePortRanges(stateDir: string, slot: number): Promise<void> {
  if (!Number.isInteger(slot) || slot < 1 || slot > 9) throw invalid(`port slot ${slot} is not 1-9`);
  const file = join(stateDir, 'etc', 'qemu.conf');
  const text = await readFile(file, 'utf8').catch(() => '');
  const keys = /^\s*(remote_display_port_min|remote_display_port_max|migration_port_min|migration_port_max)\s*=/;
  const kept = text.split('\n').filter((l) => !keys.test(l) && l !== '# kumo lab hypervisor: ports of its own');
  while (kept.length && kept[kept.length - 1] === '') kept.pop();
  kept.push('', '# kumo lab hypervisor: ports of its own',
    `remote_display_port_min = ${5900 + slot * 100}`, `remote_display_port_max = ${5999 + slot * 100}`,
    `migration_port_min = ${49152 + slot * 64 + 64}`, `migration_port_max = ${49152 + slot * 64 + 127}`, '');
  await writeFile(file, kept.join('\n'), { mode: 0o644 });
}

/** The files of a migration certificate folder (QEMU's names): one CA, a server and a client pair. */
export const MIGRATION_TLS_FILES = ['ca-cert.pem', 'server-cert.pem', 'server-key.pem', 'client-cert.pem', 'client-key.pem'] as const;
/** Where a lab daemon's migration certificates live, as the daemon (and its QEMU) sees them. */
export const LAB_MIGRATION_TLS_DIR = '/etc/libvirt/pki/qemu';
const TLS_MARK = '# kumo lab hypervisor: migration certificates';

/**
 * Gives the daemon QEMU's migration certificates (`virsh migrate --tls`): copies `from`'s five
 * files into its private /etc/libvirt/pki/qemu (keys readable by QEMU's group only) and points
 * qemu.conf's migrate_tls_x509_cert_dir there (the last setting wins). Without `from`, kumo's
 * setting goes again.
 */
export async function writeMigrationTls(stateDir: string, from: string | undefined, qemuGid: number | undefined): Promise<void> {
  const dir = join(stateDir, 'etc', 'pki', 'qemu');
  const file = join(stateDir, 'etc', 'qemu.conf');
  const text = await readFile(file, 'utf8').catch(() => '');
  // Only kumo's own setting (the marked line) is replaced: a setting copied from the host stays, unless overridden.
  const lines = text.split('\n');
  const kept = lines.filter((l, i) => l !== TLS_MARK && lines[i - 1] !== TLS_MARK);
  while (kept.length && kept[kept.length - 1] === '') kept.pop();
  if (from !== undefined) {
    const missing = MIGRATION_TLS_FILES.filter((f) => !existsSync(join(from, f)));
    if (missing.length) throw invalid(`the migration certificate folder ${from} lacks ${missing.join(', ')}`, 'give each hypervisor a folder with the CA certificate and a server and a client certificate and key signed by it');
    await mkdir(join(stateDir, 'etc', 'pki'), { recursive: true, mode: 0o755 });
    await mkdir(dir, { recursive: true, mode: 0o750 });
    await chown(dir, 0, qemuGid ?? 0);
    await chmod(dir, qemuGid === undefined ? 0o755 : 0o750);
    for (const f of MIGRATION_TLS_FILES) {
      await copyFile(join(from, f), join(dir, f));
      // QEMU, not libvirtd, opens them: its group reads the keys, nobody else does.
      await chown(join(dir, f), 0, qemuGid ?? 0);
      await chmod(join(dir, f), f.endsWith('-key.pem') ? (qemuGid === undefined ? 0o644 : 0o640) : 0o644);
    }
    kept.push('', TLS_MARK, `migrate_tls_x509_cert_dir = "${LAB_MIGRATION_TLS_DIR}"`);
  }
  kept.push('');
  await writeFile(file, kept.join('\n'), { mode: 0o644 });
}

/**
 * Where the libvirtd reached at `uri` keeps its files, as paths on its machine: a lab daemon
 * (socket STATE/run/libvirt-sock) reads its private copies (STATE/etc for /etc/libvirt, …),
 * any other daemon the system's. `path` turns a path the daemon sees into one a shell on its
 * machine (which is not in the daemon's mount namespace) can open.
 */
export function libvirtdFiles(uri: string | undefined): { qemuConf: string; path(seenByDaemon: string): string } {
  const socket = uri ? /[?&]socket=([^&]+)/.exec(uri)?.[1] : undefined;
  const m = socket ? /^(\/.+)\/run\/libvirt-sock$/.exec(decodeURIComponent(socket)) : null;
  if (!m) return { qemuConf: '/etc/libvirt/qemu.conf', path: (p) => p };
  const stateDir = m[1]!;
  const path = (p: string) => {
    const b = BINDS.find((x) => p === x.host || p.startsWith(`${x.host}/`));
    return b ? join(stateDir, b.sub, p.slice(b.host.length)) : p;
  };
  return { qemuConf: path('/etc/libvirt/qemu.conf'), path };
}

/** Where libvirt's daemon finds its driver modules (libvirt_driver_*.so), on Debian and Fedora layouts. */
async function driverModuleDir(): Promise<string | undefined> {
  const dirs = ['/usr/lib64/libvirt/connection-driver'];
  for (const e of await readdir('/usr/lib', { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory()) dirs.push(join('/usr/lib', e.name, 'libvirt', 'connection-driver'));
  }
  return dirs.find((d) => existsSync(join(d, 'libvirt_driver_qemu.so')));
}

/**
 * STATE/drivers: links to every libvirt driver module but nwfilter, for a daemon that shares
 * the host's network namespace (it loads them through LIBVIRT_DRIVER_DIR). Two nwfilter drivers
 * in one network namespace write the same ebtables tables unsynchronised, and ebtables on
 * nf_tables loses commands under concurrent writers (decisions.md): the host's own libvirtd
 * keeps the filters, this one runs its guests without them. Removes the folder when `wanted`
 * is false. Returns the folder, or undefined.
 */
export async function prepareDriversWithoutNwfilter(stateDir: string, wanted: boolean): Promise<string | undefined> {
  const dir = join(stateDir, 'drivers');
  await rm(dir, { recursive: true, force: true });
  if (!wanted) return undefined;
  const modules = await driverModuleDir();
  if (!modules) throw new KumoError('MISSING_DEPENDENCY', 'libvirt\'s driver modules (libvirt_driver_qemu.so) were not found', 'install libvirt-daemon-system');
  await mkdir(dir, { mode: 0o755 });
  for (const f of await readdir(modules)) {
    if (f.startsWith('libvirt_driver_') && !f.startsWith('libvirt_driver_nwfilter')) await symlink(join(modules, f), join(dir, f));
  }
  return dir;
}

/** The folder prepareDriversWithoutNwfilter made for this state folder, if any (a restart keeps the choice). */
export function driversWithoutNwfilter(stateDir: string): string | undefined {
  const dir = join(stateDir, 'drivers');
  return existsSync(dir) ? dir : undefined;
}
