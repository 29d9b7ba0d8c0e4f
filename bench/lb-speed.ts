#!/usr/bin/env node
/**
 * HAProxy alone against direct access, and what each HAProxy setting costs: requests/s with wrk
 * against a fast keep-alive Node backend, directly and through HAProxy with kumo's generated
 * config and variants of it (the config before issue 17, one thread, connection reuse "always",
 * bigger buffers, without kumo's header rewriting), all side by side in one run, in rotating
 * order per round. Besides requests/s (which on a shared machine mostly measures who else runs),
 * it reads each process's CPU time from /proc: CPU microseconds per request of HAProxy, the
 * backend and wrk, which other users' load hardly changes.
 *
 *   node dist/bench/lb-speed.js [--rounds N] [--duration S] [--connections C] [--json FILE]
 *
 * Everything runs in one network namespace of the bench's own, on loopback, and is removed in a
 * finally block, pass or fail (also on Ctrl+C). See bench/README.md.
 */
import type { ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { buildHaproxyConfig, haproxyPaths } from '../src/drivers/daemons/haproxy/config.js';
import { LB_HEALTH } from '../src/service/loadbalancers.js';
import { runWrk, type WrkResult } from '../test/helpers/lab.js';
import { benchFolder, cleanup, fmt, load1, log, loadNow, machineFacts, median, requireTools, run, scriptOptions, sleep, undo, startPageBackend } from './common.js';

interface Options { rounds: number; durationS: number; connections: number; json?: string }

function usage(): string {
  return `usage: node dist/bench/lb-speed.js [options]
  --rounds N          rounds over every path, in rotating order (default 5); medians reported
  --duration S        wrk -d per measurement, seconds (default 5)
  --connections C     wrk -c, one thread (default 8)
  --json FILE         also write every raw measurement to FILE`;
}

const options = (): Options => scriptOptions({
  rounds: { kind: 'whole', min: 1, max: 30, default: 5 },
  duration: { kind: 'whole', min: 1, max: 60, default: 5 },
  connections: { kind: 'whole', min: 1, max: 256, default: 8 },
  json: { kind: 'text', bare: 'lb-speed.json' },
}, usage(), (v) => ({ rounds: v.rounds, durationS: v.duration, connections: v.connections, json: v.json === undefined ? undefined : resolve(v.json) }));

const BACKEND_PORT = 8080;
const HOST_HEADER = 'Host: www.kumo.example';

/** A variant of kumo's config: a text edit of what buildHaproxyConfig writes, which must change it. */
interface Variant { name: string; edit: (cfg: string) => string }
const global = (line: string) => (cfg: string) => cfg.replace('    maxconn 4096\n', `    maxconn 4096\n    ${line}\n`);
const inBackend = (line: string) => (cfg: string) => cfg.replace('    balance roundrobin\n', `    balance roundrobin\n    ${line}\n`);
const VARIANTS: Variant[] = [
  { name: 'kumo', edit: (c) => c },
  {
    name: 'before issue 17 (no L7 retries)', edit: (c) => c.replace('timeout connect 1s', 'timeout connect 5s').replace(/^ {4}retry-on .*\n/m, '')
      .replace(/^ {4}http-request disable-l7-retry .*\n/m, '').replace(' on-marked-down shutdown-sessions', ''),
  },
  { name: 'nbthread 1', edit: global('nbthread 1') },
  { name: 'http-reuse always', edit: inBackend('http-reuse always') },
  { name: 'tune.bufsize 65536', edit: global('tune.bufsize 65536') },
  { name: 'no header rewriting', edit: (c) => c.replace(/^ {4}http-response set-header X-Kumo-Backend .*\n/m, '').replace(/^ {4}option forwardfor .*\n/m, '') },
];

/** utime + stime of a process (all its threads), in seconds. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of proc(5), counted after the command's closing parenthesis (field 3 is index 0); USER_HZ is 100 on Linux.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface Target { name: string; port: number; pid?: number }
interface Measurement { round: number; target: string; wrk?: WrkResult; error?: string; load: number; cpuUsPerRequest?: { haproxy?: number; backend: number } }

async function startAll(ns: string, dir: string): Promise<{ targets: Target[]; backend: ChildProcess }> {
  const backend = startPageBackend(ns, BACKEND_PORT);
  undo.push({ what: 'stop the backend', fn: async () => backend.kill('SIGKILL') });
  const targets: Target[] = [{ name: 'direct', port: BACKEND_PORT }];
  for (const [i, v] of VARIANTS.entries()) {
    const port = 18081 + i;
    const paths = haproxyPaths(join(dir, `haproxy-${i}`));
    const base = buildHaproxyConfig({ name: 'front', frontend: { address: '127.0.0.1', port }, backends: [{ name: 'web1', address: '127.0.0.1', port: BACKEND_PORT }], health: LB_HEALTH }, paths);
    const text = v.edit(base);
    if (i > 0 && text === base) throw new Error(`variant "${v.name}" no longer changes kumo's config: update bench/lb-speed.ts`);
    await run('mkdir', ['-p', paths.dir]);
    await writeFile(paths.config, text);
    // Plain daemon mode (no master): the pid file names the one process whose CPU time is read.
    await run('ip', ['netns', 'exec', ns, 'haproxy', '-D', '-p', paths.pidFile, '-f', paths.config]);
    const pid = Number((await readFile(paths.pidFile, 'utf8')).trim());
    undo.push({ what: `stop HAProxy ${v.name}`, fn: async () => process.kill(pid, 'SIGKILL') });
    targets.push({ name: v.name, port, pid });
  }
  return { targets, backend };
}

async function measure(o: Options, ns: string, dir: string): Promise<Measurement[]> {
  const { targets, backend } = await startAll(ns, dir);
  for (const t of targets) {
    let answer = '';
    for (let k = 0; k < 50 && answer !== '200'; k++) {
      answer = (await run('ip', ['netns', 'exec', ns, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', `http://127.0.0.1:${t.port}/`], { allowFailure: true })).trim();
      if (answer !== '200') await sleep(200);
    }
    if (answer !== '200') throw new Error(`${t.name} on port ${t.port} answers ${answer || 'nothing'} before measuring`);
  }
  const out: Measurement[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    const order = targets.map((_, i) => targets[(i + round - 1) % targets.length]!);
    for (const t of order) {
      const m: Measurement = { round, target: t.name, load: load1() };
      const before = { backend: await cpuSeconds(backend.pid!), haproxy: t.pid ? await cpuSeconds(t.pid) : 0 };
      try {
        m.wrk = await runWrk(`http://127.0.0.1:${t.port}/`, { netns: ns, threads: 1, connections: o.connections, durationS: o.durationS, headers: [HOST_HEADER] });
        const perRequest = (s: number) => (s * 1e6) / m.wrk!.requests;
        m.cpuUsPerRequest = { backend: perRequest((await cpuSeconds(backend.pid!)) - before.backend) };
        if (t.pid) m.cpuUsPerRequest.haproxy = perRequest((await cpuSeconds(t.pid)) - before.haproxy);
        log(`  round ${round} ${t.name}: ${m.wrk.requestsPerSec.toFixed(0)} req/s, HAProxy ${fmt(m.cpuUsPerRequest.haproxy, 1)} µs CPU per request`);
      } catch (e) {
        m.error = (e as Error).message.split('\n')[0];
        log(`  round ${round} ${t.name}: FAILED ${m.error}`);
      }
      out.push(m);
      await sleep(500);
    }
  }
  return out;
}

function report(ms: Measurement[], o: Options, facts: Record<string, string>): string {
  const lines = ['', `## HAProxy against direct: wrk -t1 -c${o.connections} -d${o.durationS}s, ${o.rounds} round(s), medians`, '',
    '| path | requests/s | ratio to direct | per-round ratio (median, min…max) | p99 | HAProxy CPU µs/request | backend CPU µs/request | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|'];
  const ok = (t: string) => ms.filter((m) => m.target === t && m.wrk);
  const direct = median(ok('direct').map((m) => m.wrk!.requestsPerSec));
  for (const t of ['direct', ...VARIANTS.map((v) => v.name)]) {
    const rps = median(ok(t).map((m) => m.wrk!.requestsPerSec));
    const ratios = ok(t).flatMap((m) => {
      const d = ms.find((x) => x.target === 'direct' && x.round === m.round && x.wrk);
      return d ? [m.wrk!.requestsPerSec / d.wrk!.requestsPerSec] : [];
    });
    const bad = ms.filter((m) => m.target === t).reduce((n, m) => n + (m.error ? 1 : 0) + (m.wrk ? Object.values(m.wrk.socketErrors).reduce((x, y) => x + y, 0) + m.wrk.non2xx3xx : 0), 0);
    lines.push(`| ${t === 'kumo' ? '**HAProxy, kumo\'s config**' : t === 'direct' ? 'direct to the backend' : `HAProxy, kumo's + ${t}`} | ${fmt(rps, 0)} | ${rps && direct ? `${(rps / direct).toFixed(2)}×` : '—'} | `
      + `${fmt(median(ratios), 2, '×')} (${fmt(Math.min(...ratios), 2)}…${fmt(Math.max(...ratios), 2)}) | ${fmt(median(ok(t).map((m) => m.wrk!.latencyMs.p99)), 2, ' ms')} | `
      + `${fmt(median(ok(t).flatMap((m) => (m.cpuUsPerRequest?.haproxy === undefined ? [] : [m.cpuUsPerRequest.haproxy]))), 1)} | ${fmt(median(ok(t).map((m) => m.cpuUsPerRequest!.backend)), 1)} | ${bad} |`);
  }
  lines.push('', 'Per round (requests/s; ratio to that round\'s direct):', '', `| round | ${['direct', ...VARIANTS.map((v) => v.name)].join(' | ')} | load |`,
    `|---:|${'---:|'.repeat(VARIANTS.length + 1)}---:|`);
  for (let r = 1; r <= o.rounds; r++) {
    const d = ms.find((m) => m.round === r && m.target === 'direct')?.wrk?.requestsPerSec;
    const cells = ['direct', ...VARIANTS.map((v) => v.name)].map((t) => {
      const w = ms.find((m) => m.round === r && m.target === t)?.wrk;
      return w ? `${w.requestsPerSec.toFixed(0)}${d && t !== 'direct' ? `; ${(w.requestsPerSec / d).toFixed(2)}×` : ''}` : 'FAILED';
    });
    lines.push(`| ${r} | ${cells.join(' | ')} | ${ms.find((m) => m.round === r)!.load.toFixed(2)} |`);
  }
  lines.push('', ...Object.entries(facts).map(([k, v]) => `- ${k}: ${v}`));
  return lines.join('\n');
}

async function main(): Promise<number> {
  const o = options();
  const facts: Record<string, string> = { ...machineFacts() };
  try {
    await requireTools(['haproxy', 'wrk', 'curl', 'ip']);
    facts.versions = [(await run('haproxy', ['-v'])).split('\n')[0]!, (await run('wrk', ['--version'], { allowFailure: true })).split('\n')[0]!, `node ${process.version}`].join('; ');
    const { prefix, dir } = await benchFolder('kls', '/var/tmp');
    const ns = `${prefix}ns`;
    undo.push({ what: `delete namespace ${ns}`, fn: () => run('ip', ['netns', 'del', ns], { allowFailure: true }) });
    await run('ip', ['netns', 'add', ns]);
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    log(`run ${prefix}: direct and ${VARIANTS.length} HAProxy configs, ${o.rounds} round(s) of ${o.durationS} s each`);
    const ms = await measure(o, ns, dir);
    facts['load at end'] = loadNow();
    console.log(report(ms, o, facts));
    if (o.json) await writeFile(o.json, JSON.stringify({ options: o, facts, measurements: ms }, null, 2));
    return ms.every((m) => m.wrk) ? 0 : 1;
  } catch (e) {
    log(`error: ${(e as Error).message}`);
    return 1;
  } finally {
    log('cleaning up');
    await cleanup();
  }
}

process.exitCode = await main();
