import { constants } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import { join } from 'node:path';
import { KumoError } from '../../model/errors.js';

/**
 * Files in folders a guest can write to (a share's folder, exported read-write over NFS).
 * A guest may plant a symbolic link there (index.html -> /etc/nologin) for kumo to follow as
 * root, so kumo never follows one: the folder must be a real folder (lstat) and a file is
 * created with O_NOFOLLOW | O_EXCL, which fails on any entry already there, a link included,
 * even one planted between the look and the write.
 */
export type GuestEntry = 'missing' | 'file' | 'link' | 'other';

export async function guestEntry(dir: string, name: string): Promise<GuestEntry> {
  const st = await lstat(join(dir, name)).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  if (!st) return 'missing';
  return st.isSymbolicLink() ? 'link' : st.isFile() ? 'file' : 'other';
}

/** Names the entry and the fix; exported for the share kind's plan, which refuses the same. */
export const linkRefused = (path: string, what: string) => new KumoError('INVALID_INPUT',
  `${path} is ${what}, not a file kumo wrote: kumo does not follow links in a folder guests can write to`,
  `look at what a guest put there and remove it on the storage node (rm -- ${path}), then apply again`);

/**
 * Creates DIR/NAME with TEXT unless a plain file is there already (false: it is kept, never
 * overwritten); refuses a folder that is a link and a link or anything else at NAME.
 */
export async function createGuestFile(dir: string, name: string, text: string, mode = 0o644): Promise<boolean> {
  const st = await lstat(dir);
  if (!st.isDirectory()) throw linkRefused(dir, st.isSymbolicLink() ? 'a symbolic link' : 'not a folder');
  const path = join(dir, name);
  let handle;
  try {
    handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ELOOP') {
      const kind = await guestEntry(dir, name);
      if (kind === 'file') return false;
      throw linkRefused(path, kind === 'link' ? 'a symbolic link' : 'not a plain file');
    }
    throw e;
  }
  try {
    await handle.writeFile(text);
    await handle.chmod(mode); // the umask may have narrowed it
  } finally {
    await handle.close();
  }
  return true;
}
