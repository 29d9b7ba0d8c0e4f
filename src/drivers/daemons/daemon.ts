import type { Executor, RunOptions, RunResult } from '../../exec/exec.js';
import { readHostFile, writeHostFile } from '../../exec/files.js';
import { type Signal, livePid, signal, stopDaemon, waitUntil } from '../../exec/process.js';
import { runTool } from '../host/which.js';
import { KumoError } from '../../model/errors.js';

/**
 * The life cycle every daemon kumo runs shares (HAProxy, the nginx WAF, nfs-ganesha, dnsmasq,
 * the lab's libvirtd): found by its pid file, started and waited for until it is ready, its
 * config staged next to the live one, checked by the daemon itself and only then swapped in,
 * reloaded with the previous config put back when the daemon refuses the new one, stopped for
 * sure. Everything goes through the host's executor, so the same code drives a daemon here, in
 * a network namespace or over ssh. What differs between daemons is given as parameters or hooks.
 */
export interface DaemonSpec {
  /** How messages name it, e.g. "HAProxy", "the NFS server". */
  what: string;
  /** The program on the host. */
  binary: string;
  pidFile: string;
  /** What the command line of the pid file's process contains, so a reused pid is not taken for it. */
  marker: string;
  /** The error when the binary is missing; without it, the executor's own "not installed" error. */
  notInstalled?: { message: string; fix: string };
  /** Its graceful stop signal (default TERM) and how long it gets before TERM, then KILL. */
  stopSignal?: Signal;
  graceMs?: number;
  /** Removed after it stopped (default: the pid file); [] for a daemon that cleans up itself. */
  leftovers?: string[];
  /** Finds the pid another way than `livePid(pidFile, marker)` through the executor. */
  findPid?: () => Promise<number | undefined>;
  /** Ends it another way than signals through the executor (`graceMs` as given to stop()). */
  terminate?: (pid: number, graceMs: number) => Promise<void>;
}

/** Polling until the daemon is ready (or has settled after a reload). */
export interface Readiness {
  /** Named in the TIMEOUT error: "WHAT did not happen within N ms". */
  what: string;
  /** A value when ready, undefined while not yet; throws when it can no longer become ready. */
  probe: () => Promise<unknown>;
  timeoutMs: number;
  fix?: string;
  everyMs?: number;
  /** The error to throw instead of the generic TIMEOUT one. */
  timedOut?: () => Promise<KumoError> | KumoError;
}

export interface StartSteps {
  args: string[];
  /** Run this instead of the binary (a wrapper that enters namespaces first); no "not installed" mapping then. */
  command?: string;
  timeoutMs: number;
  /** Files of an earlier run that would mislead the readiness check, removed first. */
  clear?: string[];
  /** Maps a failed start command to the daemon's own error; without it the command's error is thrown. */
  refused?: (r: RunResult) => KumoError;
  ready: Readiness;
}

/**
 * One config file: `text` is what gets checked; `live`, when given, is what goes in place
 * instead (when the staged text names other staged files).
 */
export interface ConfigFile {
  path: string;
  text: string;
  mode: string;
  live?: string;
}

/** Where a config file waits while the daemon checks it. */
export const stagedPath = (path: string): string => `${path}.next`;

export class ManagedDaemon {
  constructor(readonly exec: Executor, readonly spec: DaemonSpec) {}

  /** Its pid, if it runs (and is this daemon). */
  pid(): Promise<number | undefined> {
    return this.spec.findPid ? this.spec.findPid() : livePid(this.exec, this.spec.pidFile, this.spec.marker);
  }

  /** Runs the daemon's binary (a check, a start), with the daemon's own "not installed" error. */
  async run(args: string[], options: RunOptions = {}): Promise<RunResult> {
    const missing = this.spec.notInstalled;
    return missing ? runTool(this.exec, this.spec.binary, args, options, { says: missing.message, fix: missing.fix })
      : this.exec.run(this.spec.binary, args, options);
  }

  /** Starts it and waits until it is ready. */
  async start(steps: StartSteps): Promise<void> {
    if (steps.clear?.length) await this.exec.run('rm', ['-f', '--', ...steps.clear]);
    const options = { timeoutMs: steps.timeoutMs, ...(steps.refused ? { allowFailure: true } : {}) };
    const r = steps.command === undefined ? await this.run(steps.args, options) : await this.exec.run(steps.command, steps.args, options);
    if (steps.refused && r.code !== 0) throw steps.refused(r);
    await this.waitFor(steps.ready);
  }

  /** Polls `ready.probe` until it gives a value; a probe's own error ends the wait at once. */
  async waitFor(ready: Readiness): Promise<void> {
    let probeFailed = false;
    const probe = async () => {
      try {
        return await ready.probe();
      } catch (e) {
        probeFailed = true;
        throw e;
      }
    };
    try {
      await waitUntil(ready.what, probe, ready.timeoutMs, ready.fix, ready.everyMs);
    } catch (e) {
      if (!probeFailed && ready.timedOut) throw await ready.timedOut();
      throw e;
    }
  }

  /**
   * Puts config files in place. With a `check`, they are staged first (PATH.next), the daemon's
   * own check runs on the staged paths, and only accepted files replace the live ones; a refused
   * set is removed and the live config stays untouched. Without a check each file is written in
   * place (writeHostFile replaces a file at once).
   */
  async installConfig(files: ConfigFile[], check?: (staged: string[]) => Promise<KumoError | undefined>): Promise<void> {
    if (!check) {
      for (const f of files) await writeHostFile(this.exec, f.path, f.text, f.mode);
      return;
    }
    const staged = files.map((f) => stagedPath(f.path));
    for (const f of files) await writeHostFile(this.exec, stagedPath(f.path), f.text, f.mode);
    const refused = await check(staged);
    if (refused) {
      await this.exec.run('rm', ['-f', '--', ...staged]);
      throw refused;
    }
    for (const f of files) {
      if (f.live === undefined) {
        await this.exec.run('mv', ['-f', '--', stagedPath(f.path), f.path]);
      } else {
        await writeHostFile(this.exec, f.path, f.live, f.mode);
        await this.exec.run('rm', ['-f', '--', stagedPath(f.path)]);
      }
    }
  }

  /**
   * Installs a new config and reloads the running daemon with it. When the reload fails, the
   * daemon keeps serving the previous config: the files go back to saying what runs, so that a
   * restart does not bring up the config the daemon just refused.
   */
  async reloadWithRollback(configFiles: { path: string; mode: string }[], install: () => Promise<void>, reload: () => Promise<void>): Promise<void> {
    const serving = await Promise.all(configFiles.map(async (f) => ({ ...f, text: await readHostFile(this.exec, f.path) })));
    await install();
    try {
      await reload();
    } catch (e) {
      for (const f of serving) if (f.text !== undefined) await writeHostFile(this.exec, f.path, f.text, f.mode).catch(() => undefined);
      throw e;
    }
  }

  /** A reload by signal: sent to the running master, then `settled` is waited for. */
  async signalAndWait(master: number, sig: Signal, settled: Readiness): Promise<void> {
    await signal(this.exec, master, sig);
    await this.waitFor(settled);
  }

  /** Stops it for sure (graceful signal, TERM, KILL) and removes what it leaves behind; nothing if it does not run. */
  async stop(graceMs = this.spec.graceMs ?? 5000): Promise<void> {
    const pid = await this.pid();
    if (pid === undefined) return;
    if (this.spec.terminate) {
      await this.spec.terminate(pid, graceMs);
    } else {
      await stopDaemon(this.exec, pid, async () => (await this.pid()) !== undefined, this.spec.what, { first: this.spec.stopSignal ?? 'TERM', graceMs });
    }
    const leftovers = this.spec.leftovers ?? [this.spec.pidFile];
    if (leftovers.length) await this.exec.run('rm', ['-f', '--', ...leftovers]);
  }

  /** The IN_USE error for a start while it runs already. */
  async refuseIfRunning(message: string, fix: string): Promise<void> {
    if (await this.pid()) throw new KumoError('IN_USE', message, fix);
  }
}
