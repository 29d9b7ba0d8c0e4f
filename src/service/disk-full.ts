import { statfsSync } from 'node:fs';
import { KumoError } from '../model/errors.js';

/**
 * A full filesystem under KUMO_HOME, told as such. Disks, seeds, snapshots (inside the disk
 * files) and the store all live there, and each tool says it its own way: Node's ENOSPC, QEMU's
 * and libvirt's "No space left on device", SQLite's SQLITE_FULL ("database or disk is full").
 * Without this the user read a qemu-img command line, "libvirt refused", or an internal error.
 */
const FULL_TEXT = /No space left on device|database or disk is full|Disk quota exceeded/i;
const FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL']);

/** Whether `e` (or what caused it) is a write that found no room. */
export function isDiskFull(e: unknown): boolean {
  for (let c = e, depth = 0; c && depth < 5; c = (c as { cause?: unknown }).cause, depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string' && FULL_CODES.has(code)) return true;
    if (c instanceof Error && FULL_TEXT.test(c.message)) return true;
  }
  return false;
}

/** Free bytes on the filesystem of `path`, or undefined when it cannot be read. */
export function freeBytes(path: string): number | undefined {
  try {
    const s = statfsSync(path);
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}

/** Below this, the filesystem under KUMO_HOME is the one that ran full (not, say, /tmp). */
const NEARLY_FULL_BYTES = 64 * 1024 ** 2;

/**
 * The NO_SPACE error for a write that found no room while doing `what`, or undefined when `e` is
 * no such error. It names the filesystem (KUMO_HOME's when it is nearly full or the message names
 * a path in it) and what to do. `clean`: whether the operation's undo removed all it had made
 * (undefined: say nothing of it).
 */
export function noSpaceError(e: unknown, home: string, what: string, clean?: boolean): KumoError | undefined {
  if (e instanceof KumoError && e.code === 'NO_SPACE') return e;
  const free = freeBytes(home);
  // SQLite cannot grow its shared-memory file either, and says only "disk I/O error" then.
  const sqliteIo = typeof (e as { code?: unknown })?.code === 'string' && (e as { code: string }).code.startsWith('SQLITE_IOERR');
  if (!isDiskFull(e) && !(sqliteIo && free !== undefined && free < NEARLY_FULL_BYTES)) return undefined;
  const ours = (free !== undefined && free < NEARLY_FULL_BYTES) || (e instanceof Error && e.message.includes(home));
  return full(e, home, what, ours, free, clean);
}

/**
 * Like noSpaceError, for a write whose tool does not say "no space": QEMU saving a running guest's
 * memory into its disk file says "Input/output error". It is NO_SPACE when the filesystem under
 * KUMO_HOME has less room than the write needed (`needBytes`).
 */
export function noSpaceWhenShort(e: unknown, home: string, what: string, needBytes: number, clean?: boolean): KumoError | undefined {
  const told = noSpaceError(e, home, what, clean);
  if (told) return told;
  const free = freeBytes(home);
  return free !== undefined && free < needBytes && e instanceof KumoError && e.code === 'LIBVIRT_ERROR'
    ? full(e, home, what, true, free, clean) : undefined;
}

function full(e: unknown, home: string, what: string, ours: boolean, free: number | undefined, clean: boolean | undefined): KumoError {
  const where = ours ? `the filesystem under KUMO_HOME (${home}) is full` : 'a filesystem kumo writes to is full';
  const left = free === undefined ? '' : ` (${Math.floor(free / 1024)} KiB free under ${home})`;
  const after = clean === undefined ? '' : clean ? '; nothing of it was left behind'
    : '; what could not be undone yet is retried by the next kumo command (`kumo doctor` lists it)';
  return new KumoError('NO_SPACE', `${where}: ${what} could not be written${left}${after}`,
    `free space there (\`df -h ${home}\` shows it; delete unused instances, volumes, snapshots or images) or grow that filesystem, then run the command again`,
    { cause: e });
}

/**
 * Room the store needs for the writes of one operation (its journal entry, its record, and the
 * undo of both): SQLite may be unable to write even the undo once the filesystem has less.
 */
export const STORE_ROOM_BYTES = 256 * 1024;

/**
 * Refuses an operation that makes something before it begins, when the filesystem under
 * KUMO_HOME has no room left even for the store: nothing is made, not even a journal entry.
 * Only for operations that add data (a delete must stay possible on a full disk: it makes room).
 */
export function assertRoom(home: string, what: string): void {
  const free = freeBytes(home);
  if (free !== undefined && free < STORE_ROOM_BYTES) {
    throw full(new Error(`${free} bytes free`), home, what, true, free, true);
  }
}
