import { chmodSync, chownSync, mkdirSync, readFileSync, readdirSync, statSync, type Stats } from 'node:fs';
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/**
 * The modes of kumo's own state. KUMO_HOME holds every root password hash (kumo.db), every
 * seed (password hashes, ssh keys, user-data) and every guest's disk: nothing in it is for
 * other local users. QEMU still has to reach the disks, so the folders on its way are
 * root:QEMU-group 0710 (it may walk through, not list), and the files are 0600: libvirt's
 * dynamic ownership (qemu.conf's default) hands each disk to QEMU's user while it runs.
 */
export const HOME_MODE = 0o711; // QEMU (and the lab's daemons) walk through to their own folders
export const PRIVATE_FILE_MODE = 0o600;

/** private: root only; qemu-traverse: QEMU walks through to its disks; qemu-write: QEMU creates its VNC socket there. */
export type FolderKind = 'private' | 'qemu-traverse' | 'qemu-write';

const FOLDER_MODES: Record<FolderKind, number> = { private: 0o700, 'qemu-traverse': 0o710, 'qemu-write': 0o730 };

export interface QemuGroup { name: string; gid: number }

let cachedGroup: QemuGroup | null | undefined;

/**
 * The group the system libvirtd runs QEMU in: qemu.conf's `group`, else the distribution's
 * default (libvirt-qemu on Debian, qemu on Fedora). The lab's libvirtds copy /etc/libvirt, so
 * theirs is the same. Undefined when none exists here.
 */
export function qemuGroup(conf = '/etc/libvirt/qemu.conf', groupFile = '/etc/group'): QemuGroup | undefined {
  if (cachedGroup !== undefined && conf === '/etc/libvirt/qemu.conf' && groupFile === '/etc/group') return cachedGroup ?? undefined;
  const read = (f: string) => { try { return readFileSync(f, 'utf8'); } catch { return ''; } };
  const configured = /^\s*group\s*=\s*"([^"]+)"/m.exec(read(conf))?.[1];
  const groups = new Map(read(groupFile).split('\n').map((l) => l.split(':')).filter((f) => f.length >= 3).map((f) => [f[0]!, Number(f[2])]));
  const numeric = configured && /^\+(\d+)$/.exec(configured);
  let found: QemuGroup | undefined;
  if (numeric) found = { name: configured, gid: Number(numeric[1]) };
  else {
    const name = [configured, 'libvirt-qemu', 'qemu'].find((n) => n !== undefined && groups.has(n));
    if (name) found = { name, gid: groups.get(name)! };
  }
  if (conf === '/etc/libvirt/qemu.conf' && groupFile === '/etc/group') cachedGroup = found ?? null;
  return found;
}

/** The mode a folder of this kind gets; without a QEMU group, traversal is left to everyone (the files stay 0600). */
function folderMode(kind: FolderKind, group: QemuGroup | undefined): number {
  if (kind === 'private' || group) return FOLDER_MODES[kind];
  return kind === 'qemu-traverse' ? 0o711 : 0o700;
}

/**
 * Makes a folder closed from the first moment: created 0700 (nobody else can enter while it
 * is set up), then given the QEMU group and its final mode. Fails if it exists, unless recursive.
 */
export async function makeFolder(path: string, kind: FolderKind, opts: { recursive?: boolean } = {}): Promise<void> {
  await mkdir(path, { mode: 0o700, ...(opts.recursive ? { recursive: true } : {}) });
  const group = qemuGroup();
  if (kind !== 'private' && group) await chown(path, 0, group.gid);
  await chmod(path, folderMode(kind, group));
}

/**
 * Creates an empty 0600 file for a tool to fill (qemu-img create, genisoimage keep an existing
 * file's mode): never readable by others, not even for a moment. O_EXCL: refuses an existing
 * file or a planted link.
 */
export async function createPrivateFile(path: string): Promise<void> {
  await writeFile(path, '', { flag: 'wx', mode: PRIVATE_FILE_MODE });
}

/** Where kumo's state lives (the parts whose modes kumo owns). */
export interface HomeLayout {
  home: string;
  /** Folders QEMU walks through to disks, kernels and seeds: images, instances, volumes. */
  qemuFolders: string[];
  /** Folders with one instance's (or volume's) files each: instances. */
  perInstance: string[];
  /** Folders whose files are each a private disk: volumes. */
  privateFiles: string[];
  /** Root-only folders: the build cache when it lives in KUMO_HOME. */
  privateFolders: string[];
}

/** A mode kumo could not set, or a folder above KUMO_HOME it may not change, with the fix. */
export interface ModeProblem { path: string; problem: string; fix: string }

const octal = (m: number) => `0${(m & 0o7777).toString(8)}`;

/**
 * Brings KUMO_HOME to the modes above (fix: true, at every start: installs made before keep
 * working, closed), or only reports what is off (fix: false, for `kumo host info`).
 * Returns what is still off, each with the path and the fix.
 */
export function secureHome(layout: HomeLayout, opts: { fix: boolean }): ModeProblem[] {
  const problems: ModeProblem[] = [];
  const group = qemuGroup();
  const want = (path: string, mode: number, gid?: number): void => {
    let st: Stats;
    try { st = statSync(path); } catch { return; }
    const modeOff = (st.mode & 0o7777) !== mode;
    const groupOff = gid !== undefined && st.gid !== gid;
    if (!modeOff && !groupOff) return;
    if (opts.fix) {
      try {
        if (groupOff) chownSync(path, st.uid, gid);
        chmodSync(path, mode);
        return;
      } catch { /* reported below */ }
    }
    problems.push({
      path, problem: `${path} is ${octal(st.mode)} (group ${st.gid}); kumo keeps it ${octal(mode)}${gid !== undefined ? ` (group ${gid})` : ''}`,
      fix: `run \`kumo host info\` as root (kumo fixes the modes of its own files on start), or: ${groupOff ? `chgrp ${gid} ${path} && ` : ''}chmod ${octal(mode)} ${path}`,
    });
  };
  if (opts.fix) mkdirSync(layout.home, { recursive: true, mode: HOME_MODE });
  want(layout.home, HOME_MODE);
  const qemuMode = folderMode('qemu-traverse', group);
  for (const dir of layout.qemuFolders) {
    if (opts.fix) mkdirSync(dir, { recursive: true, mode: 0o700 });
    want(dir, qemuMode, group?.gid);
  }
  for (const dir of layout.privateFolders) {
    if (opts.fix) mkdirSync(dir, { recursive: true, mode: 0o700 });
    want(dir, 0o700);
  }
  const entries = (dir: string) => { try { return readdirSync(dir, { withFileTypes: true }); } catch { return []; } };
  // Files keep their owner (a running disk belongs to QEMU's user) and lose every bit for others.
  const closeFile = (path: string) => {
    try { want(path, statSync(path).mode & 0o600); } catch { /* gone meanwhile */ }
  };
  for (const dir of layout.perInstance) {
    for (const inst of entries(dir).filter((e) => e.isDirectory())) {
      const idir = join(dir, inst.name);
      want(idir, qemuMode, group?.gid);
      for (const f of entries(idir).filter((e) => e.isFile())) closeFile(join(idir, f.name));
    }
  }
  for (const dir of layout.privateFiles) for (const f of entries(dir).filter((e) => e.isFile())) closeFile(join(dir, f.name));
  problems.push(...openAncestors(layout.home));
  return problems;
}

/**
 * What keeps QEMU from opening kumo's closed files: no QEMU group to give the folders, or
 * qemu.conf's dynamic_ownership turned off (libvirt would not hand the 0600 disks to QEMU).
 */
export function qemuAccessProblems(conf = '/etc/libvirt/qemu.conf'): ModeProblem[] {
  const out: ModeProblem[] = [];
  let text = '';
  try { text = readFileSync(conf, 'utf8'); } catch { /* libvirt's defaults */ }
  if (/^\s*dynamic_ownership\s*=\s*0/m.test(text)) {
    out.push({ path: conf, problem: `${conf} sets dynamic_ownership = 0: QEMU cannot open kumo's disks, which are 0600 root`, fix: `remove that line (libvirt's default is 1) and restart libvirtd` });
  }
  if (!qemuGroup(conf)) {
    out.push({ path: conf, problem: 'no group for QEMU found (qemu.conf group, libvirt-qemu or qemu): kumo\'s folders stay open for everyone to walk through (0711)', fix: `set group = "GROUP" in ${conf} to the group QEMU runs in` });
  }
  return out;
}

/** A folder above KUMO_HOME that others may write without the sticky bit lets them swap KUMO_HOME itself. */
function openAncestors(home: string): ModeProblem[] {
  const out: ModeProblem[] = [];
  for (let dir = dirname(home); ; dir = dirname(dir)) {
    try {
      const st = statSync(dir);
      if ((st.mode & 0o022) && !(st.mode & 0o1000)) {
        out.push({ path: dir, problem: `${dir}, above KUMO_HOME, is ${octal(st.mode)}: others may write there and replace ${home}`, fix: `chmod go-w ${dir}, or move KUMO_HOME` });
      }
    } catch { /* not there: nothing to say */ }
    if (dir === dirname(dir)) break;
  }
  return out;
}
