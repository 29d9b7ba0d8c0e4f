import type { Executor } from './exec.js';

/**
 * Files on a host's own filesystem, through its executor (a remote storage node's NFS config,
 * a pid file in a namespace's daemon): fixed scripts, the path always a positional argument.
 */
export async function readHostFile(exec: Executor, path: string): Promise<string | undefined> {
  const r = await exec.run('cat', ['--', path], { allowFailure: true });
  return r.code === 0 ? r.stdout : undefined;
}

export async function writeHostFile(exec: Executor, path: string, text: string, mode = '644'): Promise<void> {
  await exec.run('sh', ['-c', 'set -e; mkdir -p -- "$(dirname -- "$1")"; cat > "$1.kumo-new"; chmod "$2" "$1.kumo-new"; mv -f -- "$1.kumo-new" "$1"', 'sh', path, mode], { input: text });
}

export async function removeHostPath(exec: Executor, path: string): Promise<void> {
  await exec.run('rm', ['-rf', '--', path]);
}
