import { createServer } from 'node:net';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { local } from '../../src/exec/exec.js';

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export interface PollStats {
  requests: number;
  ok: number;
  failed: number;
  /** Longest time between two successful answers (ms). */
  longestGapMs: number;
  /** When the last successful answer arrived (epoch ms), if any. */
  lastOkAt?: number;
  firstOkAt?: number;
}

/**
 * GETs a URL every `intervalMs` (each request bounded by `requestTimeoutMs`) until stop() is
 * called, and measures the longest gap between successful answers whose body matches `expect`.
 */
export function pollHttp(url: string, opts: { intervalMs?: number; requestTimeoutMs?: number; expect?: RegExp } = {}) {
  const intervalMs = opts.intervalMs ?? 100;
  const stats: PollStats = { requests: 0, ok: 0, failed: 0, longestGapMs: 0 };
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const t0 = Date.now();
      stats.requests++;
      let good = false;
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(opts.requestTimeoutMs ?? 1_000) });
        const body = await res.text();
        good = res.ok && (!opts.expect || opts.expect.test(body));
      } catch {
        good = false;
      }
      const now = Date.now();
      if (good) {
        stats.ok++;
        if (stats.lastOkAt !== undefined) stats.longestGapMs = Math.max(stats.longestGapMs, now - stats.lastOkAt);
        stats.firstOkAt ??= now;
        stats.lastOkAt = now;
      } else {
        stats.failed++;
      }
      const wait = intervalMs - (Date.now() - t0);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  })();
  return {
    stats,
    async stop(): Promise<PollStats> {
      stopped = true;
      await loop;
      return stats;
    },
  };
}

/** Lines of `ps` that mention `needle` (never this test's own ps/grep). */
export async function processesMentioning(needle: string): Promise<string[]> {
  const out = (await local.run('ps', ['-eo', 'pid,stat,args'])).stdout;
  return out.split('\n').filter((l) => l.includes(needle) && !/\sZ/.test(l.slice(0, 14)));
}

/** Mount points (in any process's mount namespace) whose source or target mentions `needle`. */
export async function mountsMentioning(needle: string): Promise<string[]> {
  const found = new Set<string>();
  const seen = new Set<string>();
  for (const pid of (await readdir('/proc')).filter((e) => /^\d+$/.test(e))) {
    const ns = await readlink(`/proc/${pid}/ns/mnt`).catch(() => '');
    if (!ns || seen.has(ns)) continue;
    seen.add(ns);
    const info = await readFile(`/proc/${pid}/mountinfo`, 'utf8').catch(() => '');
    for (const l of info.split('\n')) if (l.includes(needle)) found.add(`${ns} ${l}`);
  }
  return [...found];
}

/** pollHttp run inside a network namespace (a lab node reaching its own networks). */
export function pollHttpInNetns(netns: string, url: string, intervalMs = 100, requestTimeoutMs = 1000) {
  const child = spawn('nsenter', [`--net=/run/netns/${netns}`, '--', process.execPath, join(import.meta.dirname, 'poll-main.js'), url, String(intervalMs), String(requestTimeoutMs)],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return {
    async stop(): Promise<PollStats> {
      child.kill('SIGTERM');
      await exited;
      return JSON.parse(out) as PollStats;
    },
  };
}
