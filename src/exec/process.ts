import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Executor } from './exec.js';
import { readHostFile } from './files.js';
import { waiting } from './waits.js';
import { KumoError } from '../model/errors.js';

/**
 * Daemons on a host, through its executor (the host may be a namespace or a remote machine):
 * finding one by its pid file, signalling it, waiting for a condition, stopping it for sure.
 */
export { sleep };

/**
 * Whether a process of THIS machine still runs (signal 0; EPERM means it exists). A zombie has
 * exited: PID 1 does not always reap here, so it counts as gone.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Polls `probe` until it gives a value; a TIMEOUT error naming `what` after `timeoutMs`. */
export async function waitUntil<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, fix?: string, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  const said = waiting(what);
  try {
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new KumoError('TIMEOUT', `${what} did not happen within ${timeoutMs} ms`, fix);
      await sleep(everyMs);
    }
  } finally {
    said.done();
  }
}

/**
 * The pid in a daemon's pid file, if that process is alive and is this daemon: its command line
 * (read through the executor, since the node may be remote) must contain `marker`. A zombie
 * has an empty command line and so counts as gone; a reused pid fails the marker test.
 */
export async function livePid(exec: Executor, pidFile: string, marker: string): Promise<number | undefined> {
  const pid = Number((await readHostFile(exec, pidFile))?.trim());
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  const cmdline = (await readHostFile(exec, `/proc/${pid}/cmdline`)) ?? '';
  return cmdline.replaceAll('\0', ' ').includes(marker) ? pid : undefined;
}

export type Signal = 'HUP' | 'USR1' | 'USR2' | 'QUIT' | 'TERM' | 'KILL';

export async function signal(exec: Executor, pid: number, sig: Signal): Promise<boolean> {
  return (await exec.run('kill', ['-s', sig, String(pid)], { allowFailure: true })).code === 0;
}

/**
 * Stops a daemon for sure: `first` (its graceful signal), then TERM after `graceMs`, then KILL;
 * `alive` tells whether it still runs. A TIMEOUT error if even KILL does not end it.
 */
export async function stopDaemon(exec: Executor, pid: number, alive: () => Promise<boolean>, what: string,
  opts: { first?: Signal; graceMs?: number } = {}): Promise<void> {
  const gone = async () => ((await alive()) ? undefined : true);
  await signal(exec, pid, opts.first ?? 'TERM');
  for (const [sig, ms] of [['TERM', opts.graceMs ?? 5000], ['KILL', 3000]] as const) {
    try {
      await waitUntil(`${what} stopping`, gone, ms);
      return;
    } catch {
      await signal(exec, pid, sig);
    }
  }
  await waitUntil(`${what} (pid ${pid}) ending`, gone, 3000, `kill -9 ${pid} on ${exec.description}`);
}
