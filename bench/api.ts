#!/usr/bin/env node
/**
 * API benchmark: GET /api/v1/instances with N instances (default 1,000) seeded straight into a
 * private KUMO_HOME's store, libvirt played by its test driver (test:///default, so no real
 * domains), served by `kumo serve` in its own process and loaded from this process over
 * loopback with a fixed number of keep-alive connections (closed loop: each connection sends
 * its next request when the last one answered). Also the wall time of `kumo instance list`
 * on the same state.
 *
 *   node dist/bench/api.js [--instances N] [--duration S] [--connections LIST] [--cli-runs R] [--json FILE]
 *
 * Everything lives in one per-run folder, removed in a finally block (also on Ctrl+C), and the
 * server process is ended. See bench/README.md.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { openContext } from '../src/service/context.js';
import { InstanceService } from '../src/service/instances.js';
import { cleanup, CLI, log, median, scriptOptions, sleep, undo } from './common.js';

interface Options { instances: number; durationS: number; connections: number[]; cliRuns: number; json?: string }

const URI = 'test:///default';

function usage(): string {
  return `usage: node dist/bench/api.js [options]
  --instances N        instance records seeded in the store (default 1000)
  --duration S         seconds of load per concurrency level (default 10)
  --connections LIST   concurrency levels, comma-separated (default 1,8)
  --cli-runs R         runs of \`kumo instance list\` (default 5; the median is reported)
  --json FILE          also write every figure to FILE`;
}

const options = (): Options => scriptOptions({
  instances: { kind: 'whole', min: 1, max: 100_000, default: 1000 },
  duration: { kind: 'whole', min: 1, max: 600, default: 10 },
  connections: { kind: 'wholes', min: 1, max: 256, default: [1, 8] },
  'cli-runs': { kind: 'whole', min: 1, max: 100, default: 5 },
  json: { kind: 'text' },
}, usage(), (v) => ({ instances: v.instances, durationS: v.duration, connections: v.connections, cliRuns: v['cli-runs'], json: v.json }));

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
};

function seed(home: string, n: number, prefix: string): void {
  const ctx = openContext({ home, libvirtUri: URI });
  try {
    // A stand-in image record: instances name their image (a foreign key); no file is needed to list them.
    ctx.images.upsert({ name: 'tiny', os: 'bench stand-in', disk: join(home, 'images', 'tiny', 'disk.qcow2'), format: 'qcow2', virtualSizeBytes: 64 * 1024 ** 2, source: 'bench', createdAt: new Date().toISOString() });
    const insert = ctx.db.transaction(() => {
      for (let i = 0; i < n; i++) {
        const mac = `52:54:00:${((i >> 16) & 0xff).toString(16).padStart(2, '0')}:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
        ctx.instances.insert({
          name: `${prefix}-i${String(i).padStart(5, '0')}`, uuid: randomUUID(), host: 'local', image: 'tiny', flavor: 'small',
          vcpus: 1, ramMiB: 1024, diskGiB: 10, networks: ['default'], nics: [{ mac, network: 'default' }], dataDisks: [], sshKeys: [],
          createdAt: new Date().toISOString(), project: 'default',
        });
      }
    });
    insert();
  } finally {
    ctx.close();
  }
}

/** `kumo serve` on 127.0.0.1, an ephemeral port, no collector; resolves with its address and admin token. */
function startServer(env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; base: string; token: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--monitor-interval', '0', '--log-level', 'warn'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`kumo serve did not start in 60 s:\n${out}\n${err}`)), 60_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const base = /kumo API on (http:\/\/[^\s/]+)/.exec(out)?.[1];
      // Not on a terminal, serve writes the admin token to a file only root can read and prints its path.
      const tokenFile = /admin token written to (\S+)/.exec(out)?.[1];
      const token = /admin token[^:]*: (kumo_\S+)/.exec(out)?.[1] ?? (tokenFile ? readFileSync(tokenFile, 'utf8').trim() : undefined);
      if (base && token) { clearTimeout(timer); resolve({ child, base, token }); }
    });
    child.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`kumo serve exited ${code}:\n${err}`)); });
  });
}

interface LoadResult { connections: number; requests: number; errors: number; seconds: number; rps: number; p50: number; p90: number; p99: number; max: number; bytes: number }

/** C keep-alive connections, each sending GET PATH again as soon as the last answer is read, for D seconds. */
async function load(base: string, path: string, token: string, c: number, durationS: number): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: c });
  const url = new URL(path, base);
  const lat: number[] = [];
  let errors = 0;
  let bytes = 0;
  const one = () => new Promise<void>((resolve) => {
    const t0 = performance.now();
    const req = request({ host: url.hostname, port: url.port, path: url.pathname, agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let n = 0;
      res.on('data', (d: Buffer) => { n += d.length; });
      res.on('end', () => {
        if (res.statusCode === 200) { lat.push(performance.now() - t0); bytes += n; } else errors++;
        resolve();
      });
    });
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.on('error', () => { errors++; resolve(); });
    req.end();
  });
  const start = performance.now();
  const end = start + durationS * 1000;
  await Promise.all(Array.from({ length: c }, async () => { while (performance.now() < end) await one(); }));
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    connections: c, requests: lat.length, errors, seconds: r(seconds), rps: r(lat.length / seconds),
    p50: r(pct(lat, 50)), p90: r(pct(lat, 90)), p99: r(pct(lat, 99)), max: r(Math.max(...lat)), bytes: lat.length ? Math.round(bytes / lat.length) : 0,
  };
}

/** Wall time of a command, in ms; fails on a non-zero exit. */
function wall(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
    child.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
    child.once('exit', (code) => {
      const ms = performance.now() - t0;
      if (code === 0) resolve({ ms, stdout: out });
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.slice(0, 400)}`));
    });
  });
}

async function main(): Promise<void> {
  const o = options();
  const prefix = `ka${randomBytes(2).toString('hex')}`;
  const home = await mkdtemp(`/var/tmp/kumo-bench-${prefix}-`);
  await chmod(home, 0o755);
  undo.push({ what: `remove ${home}`, fn: () => rm(home, { recursive: true, force: true }) });
  log(`run ${prefix}: seeding ${o.instances} instances into ${home} (libvirt ${URI})`);
  seed(home, o.instances, prefix);
  const env = { ...process.env, KUMO_HOME: home, KUMO_LIBVIRT_URI: URI, LANG: 'C.UTF-8', LC_ALL: '' };

  const server = await startServer(env);
  undo.push({ what: 'stop kumo serve', fn: async () => { if (server.child.exitCode === null) { server.child.kill('SIGTERM'); await sleep(500); if (server.child.exitCode === null) server.child.kill('SIGKILL'); } } });
  log(`kumo serve (pid ${server.child.pid}) at ${server.base}`);

  // Check the answer once, then warm up (JIT, SQLite page cache).
  const check = await fetch(`${server.base}/api/v1/instances`, { headers: { authorization: `Bearer ${server.token}` } });
  const list = (await check.json()) as { name: string; state: string }[];
  if (check.status !== 200 || list.length !== o.instances) throw new Error(`GET /api/v1/instances: ${check.status}, ${Array.isArray(list) ? list.length : '?'} instances`);
  log(`GET /api/v1/instances answers ${list.length} instances (state "${list[0]?.state}": test:///default has none of them)`);
  await load(server.base, '/api/v1/instances', server.token, 2, 3);

  const results: LoadResult[] = [];
  for (const c of o.connections) {
    const la = loadavg()[0]!.toFixed(2);
    const r = await load(server.base, '/api/v1/instances', server.token, c, o.durationS);
    results.push(r);
    log(`instances × ${c} connection(s): ${r.requests} answers in ${r.seconds} s = ${r.rps}/s, p50 ${r.p50} ms, p99 ${r.p99} ms, errors ${r.errors} (load ${la})`);
  }
  // The same server's floor: a route that reads nothing (health) at the highest concurrency.
  const cMax = Math.max(...o.connections);
  const health = await load(server.base, '/api/v1/health', server.token, cMax, Math.min(o.durationS, 5));
  log(`health × ${cMax}: ${health.rps}/s, p50 ${health.p50} ms, p99 ${health.p99} ms`);

  // What one listing costs in virsh calls against the test driver (kumo calls list + net-dhcp-leases).
  const virshList: number[] = [];
  for (let i = 0; i < o.cliRuns; i++) virshList.push((await wall('virsh', ['-q', '-c', URI, 'list', '--all'], env)).ms);

  // The service call behind the route, in this process (no HTTP, no schema): where the time goes.
  const svcMs: number[] = [];
  const ctx = openContext({ home, libvirtUri: URI });
  try {
    const svc = new InstanceService(ctx);
    await svc.list();
    for (let i = 0; i < Math.max(10, o.cliRuns); i++) {
      const t0 = performance.now();
      await svc.list();
      svcMs.push(performance.now() - t0);
    }
  } finally {
    ctx.close();
  }

  const cli: number[] = [];
  const cliJson: number[] = [];
  const version: number[] = [];
  await wall(process.execPath, [CLI, 'instance', 'list'], env); // warm the page cache
  for (let i = 0; i < o.cliRuns; i++) {
    const r = await wall(process.execPath, [CLI, 'instance', 'list'], env);
    const rows = r.stdout.split('\n').filter((l) => l.includes(`${prefix}-i`)).length;
    if (rows !== o.instances) throw new Error(`kumo instance list printed ${rows} rows, expected ${o.instances}`);
    cli.push(r.ms);
    cliJson.push((await wall(process.execPath, [CLI, 'instance', 'list', '--json'], env)).ms);
    version.push((await wall(process.execPath, [CLI, '--version'], env)).ms);
  }
  const m = (xs: number[]) => Math.round(median(xs)! * 10) / 10;
  const report = {
    run: prefix, instances: o.instances, libvirt: URI, cpus: cpus().length, loadavg: loadavg().map((x) => Number(x.toFixed(2))),
    api: results, health,
    cli: { instanceListMs: m(cli), instanceListJsonMs: m(cliJson), versionMs: m(version), runs: o.cliRuns, all: cli.map((x) => Math.round(x)) },
    virshListMs: m(virshList), serviceListMs: m(svcMs),
  };
  console.log('\n| connections | answers/s | p50 ms | p90 ms | p99 ms | max ms | errors | body bytes |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of [...results]) console.log(`| ${r.connections} | ${r.rps} | ${r.p50} | ${r.p90} | ${r.p99} | ${r.max} | ${r.errors} | ${r.bytes} |`);
  console.log(`| health × ${health.connections} | ${health.rps} | ${health.p50} | ${health.p90} | ${health.p99} | ${health.max} | ${health.errors} | ${health.bytes} |`);
  console.log(`\nkumo instance list (${o.instances} rows): median ${report.cli.instanceListMs} ms; --json ${report.cli.instanceListJsonMs} ms; ` +
    `kumo --version (Node start-up + imports) ${report.cli.versionMs} ms; virsh -c ${URI} list --all ${report.virshListMs} ms (medians of ${o.cliRuns}); ` +
    `InstanceService.list() in-process ${report.serviceListMs} ms (median of ${svcMs.length})`);
  const c1 = results.find((r) => r.connections === 1);
  if (c1) console.log(`CLI / API p50 at 1 connection: ${(report.cli.instanceListMs / c1.p50).toFixed(1)}×`);
  if (o.json) await writeFile(o.json, `${JSON.stringify(report, null, 2)}\n`);
}

main().then(() => cleanup(), async (e: Error) => {
  log(`failed: ${e.message}`);
  await cleanup();
  process.exitCode = 1;
});
