import type { Executor } from '../../exec/exec.js';

/**
 * A folder bound over itself with nosuid (and nodev): whatever a guest leaves in it, the host
 * never runs a setuid program or opens a device node from it. A bind mount, not a filesystem
 * of its own, so the files stay where they are; mounts do not survive a reboot, so kumo makes
 * it again each time it serves the folder (idempotent).
 */
export async function mountOptions(exec: Executor, dir: string): Promise<string[] | undefined> {
  const r = await exec.run('findmnt', ['-n', '-o', 'OPTIONS', '--mountpoint', dir], { allowFailure: true });
  return r.code === 0 && r.stdout.trim() ? r.stdout.trim().split('\n').at(-1)!.split(',') : undefined;
}

export async function ensureNosuidBind(exec: Executor, dir: string): Promise<void> {
  const opts = await mountOptions(exec, dir);
  if (opts?.includes('nosuid') && opts.includes('nodev')) return;
  if (!opts) await exec.run('mount', ['--bind', '--', dir, dir]);
  await exec.run('mount', ['-o', 'remount,bind,nosuid,nodev', '--', dir]);
}

/**
 * Undoes it (nothing served from the folder any more). Only a bind of a subfolder (its root
 * within the filesystem is not "/"): a disk an admin mounted there is not kumo's to unmount.
 */
export async function releaseNosuidBind(exec: Executor, dir: string): Promise<void> {
  const r = await exec.run('findmnt', ['-n', '-o', 'FSROOT', '--mountpoint', dir], { allowFailure: true });
  const root = r.stdout.trim().split('\n').at(-1);
  if (r.code === 0 && root && root !== '/') await exec.run('umount', ['--', dir], { allowFailure: true });
}
