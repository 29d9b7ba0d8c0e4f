import { createServer } from 'node:net';
import { NetnsExecutor } from '../../src/exec/netns.js';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { local } from '../../src/exec/exec.js';
import { sleep } from '../../src/exec/process.js';
import { Virsh } from '../../src/drivers/libvirt/virsh.js';
import { startLibvirtd, stopLibvirtd, type NamespacedLibvirtd } from '../../src/drivers/daemons/libvirtd/namespace.js';
import { needsKvmMask } from '../../src/drivers/host/accel-probe.js';
import { buildNetworkXml, parseNetworkXml } from '../../src/drivers/libvirt/network-xml.js';
import type { TestEnv } from './env.js';

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
  /** The first failures (at most 10), each with its time and what it got: `HTTP 503` or the error. */
  failures: string[];
  /** When each failed request was sent (epoch ms). */
  failedAt: number[];
}

/**
 * GETs a URL every `intervalMs` (each request bounded by `requestTimeoutMs`) until stop() is
 * called, and measures the longest gap between successful answers whose body matches `expect`.
 */
export function pollHttp(url: string, opts: { intervalMs?: number; requestTimeoutMs?: number; expect?: RegExp } = {}) {
  const intervalMs = opts.intervalMs ?? 100;
  const stats: PollStats = { requests: 0, ok: 0, failed: 0, longestGapMs: 0, failures: [], failedAt: [] };
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const t0 = Date.now();
      stats.requests++;
      let good = false;
      let why = '';
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(opts.requestTimeoutMs ?? 1_000) });
        const body = await res.text();
        good = res.ok && (!opts.expect || opts.expect.test(body));
        why = res.ok ? 'an unexpected body' : `HTTP ${res.status} ${body.slice(0, 60).trim()}`;
      } catch (e) {
        const cause = (e as { cause?: { code?: string } }).cause?.code;
        why = `${(e as Error).name}: ${(e as Error).message}${cause ? ` (${cause})` : ''}`;
      }
      const now = Date.now();
      if (!good && stats.failures.length < 10) stats.failures.push(`${new Date(t0).toISOString()} after ${now - t0} ms: ${why}`);
      if (good) {
        stats.ok++;
        if (stats.lastOkAt !== undefined) stats.longestGapMs = Math.max(stats.longestGapMs, now - stats.lastOkAt);
        stats.firstOkAt ??= now;
        stats.lastOkAt = now;
      } else {
        stats.failed++;
        stats.failedAt.push(t0);
      }
      const wait = intervalMs - (Date.now() - t0);
      if (wait > 0) await sleep(wait);
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

/** What wrk (4.1) printed: throughput, latency and every kind of failure it counts. */
/** One GET from inside a namespace (e.g. a lab's "internet"): status, body, and the instance HAProxy says answered. */
export async function getInNetns(netns: string, url: string, timeoutS = 3): Promise<{ status: number; backend: string; body: string }> {
  const r = await new NetnsExecutor(netns).run('curl', ['-s', '-g', '-w', '\n%header{x-kumo-backend}\n%{http_code}', '--max-time', String(timeoutS), url], { allowFailure: true });
  const lines = r.stdout.trimEnd().split('\n');
  const status = Number(lines.pop());
  const backend = lines.pop() ?? '';
  return { status, backend, body: lines.join('\n').trim() };
}

export interface WrkResult {
  requests: number;
  requestsPerSec: number;
  latencyMs: { avg: number; max: number; p50: number; p75: number; p90: number; p99: number };
  /** wrk prints these only when one is not zero. */
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  non2xx3xx: number;
}

/** "720.00us", "1.23ms", "2.00s", "1.50m" → milliseconds. */
function wrkMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text);
  if (!m) throw new Error(`wrk printed a time "${text}" in an unknown unit`);
  const unit = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'us' | 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * unit;
}

/** Parses wrk's report (run with --latency). */
export function parseWrk(out: string): WrkResult {
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? 0);
  const lat = /^\s*Latency\s+(\S+)\s+\S+\s+(\S+)/m.exec(out);
  const pct = (p: number) => {
    const m = new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(out);
    if (!m) throw new Error(`wrk printed no ${p}% latency (run it with --latency): ${out}`);
    return wrkMs(m[1]!);
  };
  const requests = /(\d+) requests in /.exec(out);
  if (!lat || !requests) throw new Error(`unexpected wrk output: ${out}`);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requests: Number(requests[1]),
    requestsPerSec: num(/Requests\/sec:\s+([\d.]+)/),
    latencyMs: { avg: wrkMs(lat[1]!), max: wrkMs(lat[2]!), p50: pct(50), p75: pct(75), p90: pct(90), p99: pct(99) },
    socketErrors: { connect: Number(errors?.[1] ?? 0), read: Number(errors?.[2] ?? 0), write: Number(errors?.[3] ?? 0), timeout: Number(errors?.[4] ?? 0) },
    non2xx3xx: num(/Non-2xx or 3xx responses:\s+(\d+)/),
  };
}

/**
 * `wrk -t T -c C -d Ds --latency URL`, inside a network namespace when one is given. Bounded by
 * its duration (and the few connections asked for); resolves with the parsed report.
 */
/** wrk for `durationS`, or until `stop` aborts: wrk stops on SIGINT and still prints its summary. */
export function runWrk(url: string, o: { netns?: string; threads: number; connections: number; durationS: number; timeoutS?: number; headers?: string[]; stop?: AbortSignal }): Promise<WrkResult> {
  const args = ['-t', String(o.threads), '-c', String(o.connections), '-d', `${o.durationS}s`, ...(o.timeoutS ? ['--timeout', `${o.timeoutS}s`] : []),
    ...(o.headers ?? []).flatMap((h) => ['-H', h]), '--latency', url];
  const [cmd, argv] = o.netns ? ['ip', ['netns', 'exec', o.netns, 'wrk', ...args]] as const : ['wrk', args] as const;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    // wrk stops itself after -d; this only guards against a hang.
    const guard = setTimeout(() => child.kill('SIGKILL'), (o.durationS + 60) * 1000);
    o.stop?.addEventListener('abort', () => child.kill('SIGINT'), { once: true });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(guard);
      if (code !== 0) reject(new Error(`wrk exited with ${code}: ${err.trim() || out.trim()}`));
      else {
        try { resolve(parseWrk(out)); } catch (e) { reject(e as Error); }
      }
    });
  });
}

/** Pass or fail: a second libvirtd a test started, every domain still on it, and its state folder. */
export async function removeHypervisor(lab: NamespacedLibvirtd | undefined, stateDir: string | undefined): Promise<void> {
  if (lab) {
    const dest = new Virsh(lab.uri);
    for (const d of await dest.listDomains().catch(() => [])) await dest.removeDomain(d.name).catch(() => undefined);
  }
  if (stateDir) {
    await stopLibvirtd(stateDir);
    await rm(stateDir, { recursive: true, force: true });
  }
}


/**
 * A second hypervisor for a test: a libvirtd of its own in its own namespace (never the machine's,
 * so a test may kill or stop it), whose guests plug into the test's bridge through a bridge network
 * of the same name, as real hypervisors share a switch. Registering it as a host is the test's.
 * A start that fails removes what it made; otherwise removeHypervisor(lab, stateDir) does.
 */
export async function startSecondHypervisor(env: TestEnv, name: string): Promise<{ lab: NamespacedLibvirtd; stateDir: string }> {
  const stateDir = await mkdtemp(`/tmp/kumo-lab-${env.prefix}-`);
  let lab: NamespacedLibvirtd | undefined;
  try {
    lab = await startLibvirtd({ name, stateDir, maskKvm: needsKvmMask(await env.ctx.accel()) });
    const bridge = parseNetworkXml((await env.ctx.virsh.networkXml(env.network))!).bridge!;
    const v = new Virsh(lab.uri);
    await v.defineNetwork(buildNetworkXml({ name: env.network, mode: 'bridge', bridge }));
    await v.startNetwork(env.network);
    return { lab, stateDir };
  } catch (e) {
    await removeHypervisor(lab, stateDir);
    throw e;
  }
}
