#!/usr/bin/env node
/**
 * Web firewall engines side by side, with the same rules and the same attack set: nginx +
 * ModSecurity v3 bare, Apache 2.4 (event MPM) + ModSecurity v2 bare, kumo's generated WAF config
 * in front of the same backend (and in front of HAProxy, as in the datacenter), variants of
 * kumo's config, and the direct path. Every engine loads a modsecurity.conf written by kumo's
 * own builder (Debian's recommended settings, SecRuleEngine On, the OWASP CRS from
 * modsecurity-crs at paranoia 1), so rules, thresholds and body settings are the same; before
 * measuring, the fixed attack set (test/helpers/waf-attacks.ts) goes to each and the answers
 * must be identical (and 403 for attacks, 200 for clean requests), or the run stops.
 * Then wrk (clean GETs) at -c8 and -c64, rotating order per round; requests/s, p50/p99 and the
 * CPU microseconds per request of the engine's processes (master and workers, from /proc).
 *
 *   node dist/bench/waf-engines.js [--rounds N] [--duration S] [--workers W] [--json FILE]
 *
 * Everything runs in one network namespace of the bench's own, on loopback, and is removed in a
 * finally block, pass or fail (also on Ctrl+C). See bench/README.md.
 */
import { chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { NetnsExecutor } from '../src/exec/netns.js';
import { buildHaproxyConfig, haproxyPaths } from '../src/drivers/daemons/haproxy/config.js';
import { type WafSpec, buildModsecConfig, buildNginxConfig, wafPaths } from '../src/drivers/daemons/nginx-waf/config.js';
import { discoverWafFiles } from '../src/drivers/daemons/nginx-waf/system-files.js';
import { local } from '../src/exec/exec.js';
import { LB_HEALTH } from '../src/service/loadbalancers.js';
import { runWrk, type WrkResult } from '../test/helpers/lab.js';
import { expectedBlocking, sendWafProbes } from '../test/helpers/waf-attacks.js';
import { benchFolder, cleanup, fmt, load1, log, loadNow, machineFacts, median, requireTools, run, scriptOptions, sleep, undo, startPageBackend } from './common.js';

interface Options { rounds: number; durationS: number; workers: number; connections: number[]; json?: string }

function usage(): string {
  return `usage: node dist/bench/waf-engines.js [options]
  --rounds N          rounds over every path at -c8 and -c64, in rotating order (default 3); medians reported
  --duration S        wrk -d per measurement, seconds (default 5)
  --workers W         nginx worker processes and Apache processes of the bare engines (default 2)
  --json FILE         also write every raw measurement to FILE`;
}

const options = (): Options => scriptOptions({
  rounds: { kind: 'whole', min: 1, max: 30, default: 3 },
  duration: { kind: 'whole', min: 1, max: 60, default: 5 },
  workers: { kind: 'whole', min: 1, max: 16, default: 2 },
  json: { kind: 'text', bare: 'waf-engines.json' },
}, usage(), (v) => ({
  rounds: v.rounds, durationS: v.duration, workers: v.workers, connections: [8, 64], json: v.json === undefined ? undefined : resolve(v.json),
}));

const BACKEND = { address: '127.0.0.1', port: 8080 };
const HAPROXY = { address: '127.0.0.1', port: 8000 };
const HOST_HEADER = 'Host: www.kumo.example';
const APACHE_MODULES = '/usr/lib/apache2/modules';
const WORKER_USER = 'www-data';

type Engine = 'nginx' | 'apache' | 'none';
interface Target { name: string; engine: Engine; port: number; master?: number }

/** A variant of kumo's nginx.conf: a text edit that must change it. */
interface Variant { name: string; upstream: typeof BACKEND; edit: (cfg: string) => string }
const VARIANTS: Variant[] = [
  { name: 'kumo → backend', upstream: BACKEND, edit: (c) => c },
  { name: 'kumo → HAProxy → backend', upstream: HAPROXY, edit: (c) => c },
  { name: 'kumo + access_log off → backend', upstream: BACKEND, edit: (c) => c.replace(/access_log [^;]+;/, 'access_log off;') },
  { name: 'kumo + buffered access log → backend', upstream: BACKEND, edit: (c) => c.replace(/access_log ([^; ]+);/, 'access_log $1 combined buffer=64k flush=1s;') },
  // SO_REUSEPORT: the kernel spreads new connections over the workers, instead of whichever wakes first taking them.
  { name: 'kumo + reuseport → backend', upstream: BACKEND, edit: (c) => c.replace(/listen ([^;]+) default_server;/, 'listen $1 default_server reuseport;') },
  // kumo's config before issue 17: a new connection to the upstream for every request.
  { name: 'kumo, a connection per request (before) → backend', upstream: BACKEND, edit: (c) => c.replace('proxy_pass http://$kumo_upstream;', 'proxy_pass http://upstream_once;') },
];

/** A minimal nginx + ModSecurity v3: one server, the rules, keep-alive to the backend, no access log. */
function bareNginxConfig(dir: string, port: number, module: string, rules: string, workers: number): string {
  return [
    `load_module ${module};`, `pid ${dir}/nginx.pid;`, `error_log ${dir}/error.log warn;`, `user ${WORKER_USER};`, `worker_processes ${workers};`,
    'events { worker_connections 1024; }',
    'http {', '    access_log off;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `    ${t}_temp_path ${dir}/tmp/${t};`),
    `    upstream backend { server ${BACKEND.address}:${BACKEND.port}; keepalive 32; }`,
    `    server { listen 127.0.0.1:${port}; modsecurity on; modsecurity_rules_file ${rules};`,
    '        location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; } }',
    '}', '',
  ].join('\n');
}

/** A minimal Apache 2.4 event MPM + ModSecurity v2: `workers` processes of 64 threads (-c64 never waits for a thread), the rules, a reverse proxy (keep-alive to the backend is mod_proxy's default). */
function bareApacheConfig(dir: string, port: number, rules: string, workers: number): string {
  const mods = ['mpm_event', 'authz_core', 'unique_id', 'proxy', 'proxy_http', 'security2'];
  return [
    'ServerName waf-bench', `Listen 127.0.0.1:${port}`, `PidFile ${dir}/httpd.pid`, `ErrorLog ${dir}/error.log`, 'LogLevel warn',
    `DefaultRuntimeDir ${dir}`, `Mutex file:${dir} default`, `User ${WORKER_USER}`, `Group ${WORKER_USER}`,
    ...mods.map((m) => `LoadModule ${m}_module ${APACHE_MODULES}/mod_${m}.so`),
    // Exactly `workers` processes, none started or stopped under load.
    `StartServers ${workers}`, `ServerLimit ${workers}`, 'ThreadLimit 64', 'ThreadsPerChild 64', `MaxRequestWorkers ${64 * workers}`,
    `MinSpareThreads ${64 * workers}`, `MaxSpareThreads ${64 * workers}`, 'MaxConnectionsPerChild 0',
    // nginx's keepalive_requests default.
    'KeepAlive On', 'MaxKeepAliveRequests 1000',
    `Include ${rules}`,
    'ProxyPreserveHost On', `ProxyPass / http://${BACKEND.address}:${BACKEND.port}/`, '',
  ].join('\n');
}

/** utime + stime of a process, in seconds (0 once it is gone). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (!stat) return 0;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of proc(5), counted after the command's closing parenthesis; USER_HZ is 100 on Linux.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The engine's master and its children (workers). */
async function engineCpu(master: number): Promise<number> {
  const kids = (await run('ps', ['-o', 'pid=', '--ppid', String(master)], { allowFailure: true })).split('\n').map(Number).filter((n) => n > 0);
  let total = 0;
  for (const pid of [master, ...kids]) total += await cpuSeconds(pid);
  return total;
}

/** The pid a daemon wrote (it may write it a moment after its start command returned), or its error log's tail. */
async function readPid(file: string, errorLog: string): Promise<number> {
  for (let k = 0; k < 100; k++) {
    const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (pid > 0) return pid;
    await sleep(100);
  }
  const why = (await readFile(errorLog, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' ');
  throw new Error(`no pid in ${file} after 10 s: ${why || 'nothing in ' + errorLog}`);
}

/** The rules every engine loads: kumo's modsecurity.conf builder, in the engine's own folder. */
async function writeRules(dir: string, spec: WafSpec): Promise<string> {
  const paths = wafPaths(dir);
  await mkdir(paths.modsecDir, { recursive: true });
  await mkdir(paths.tempDir, { recursive: true });
  await chown(paths.modsecDir, ...(await wwwData()));
  await writeFile(paths.modsecConfig, buildModsecConfig(spec, paths, await discoverWafFiles(local)));
  return paths.modsecConfig;
}

async function wwwData(): Promise<[number, number]> {
  const id = (flag: string) => run('id', [flag, WORKER_USER]).then((s) => Number(s.trim()));
  return [await id('-u'), await id('-g')];
}

async function startNginx(ns: string, dir: string, config: string): Promise<number> {
  await writeFile(join(dir, 'nginx.conf'), config);
  await run('ip', ['netns', 'exec', ns, 'nginx', '-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]);
  const pid = await readPid(join(dir, 'nginx.pid'), join(dir, 'error.log'));
  undo.push({ what: `stop nginx in ${dir}`, fn: () => run('kill', ['-TERM', String(pid)], { allowFailure: true }) });
  return pid;
}

async function startAll(ns: string, dir: string, workers: number): Promise<Target[]> {
  const backend = startPageBackend(ns, BACKEND.port);
  undo.push({ what: 'stop the backend', fn: async () => backend.kill('SIGKILL') });
  const hp = haproxyPaths(join(dir, 'haproxy'));
  await mkdir(hp.dir, { recursive: true });
  await writeFile(hp.config, buildHaproxyConfig({ name: 'front', frontend: HAPROXY, backends: [{ name: 'web1', ...BACKEND }], health: LB_HEALTH }, hp));
  await run('ip', ['netns', 'exec', ns, 'haproxy', '-D', '-p', hp.pidFile, '-f', hp.config]);
  const hpPid = await readPid(hp.pidFile, hp.config);
  undo.push({ what: 'stop HAProxy', fn: async () => process.kill(hpPid, 'SIGKILL') });

  const sys = await discoverWafFiles(local);
  const spec = (port: number, upstream = BACKEND): WafSpec => ({ name: 'bench', listen: { address: '127.0.0.1', port }, upstream, enabled: true, paranoia: 1 });
  const targets: Target[] = [{ name: 'direct', engine: 'none', port: BACKEND.port }];
  const nd = join(dir, 'nginx-bare');
  const nginxPort = 8101;
  const nginxRules = await writeRules(nd, spec(nginxPort));
  targets.push({ name: 'nginx + ModSecurity v3, bare', engine: 'nginx', port: nginxPort, master: await startNginx(ns, nd, bareNginxConfig(nd, nginxPort, sys.module, nginxRules, workers)) });

  const ad = join(dir, 'apache-bare');
  const apachePort = 8102;
  const apacheRules = await writeRules(ad, spec(apachePort));
  await writeFile(join(ad, 'httpd.conf'), bareApacheConfig(ad, apachePort, apacheRules, workers));
  await run('ip', ['netns', 'exec', ns, 'apache2', '-d', ad, '-f', join(ad, 'httpd.conf'), '-k', 'start']);
  const apachePid = await readPid(join(ad, 'httpd.pid'), join(ad, 'error.log'));
  undo.push({ what: 'stop Apache', fn: () => run('kill', ['-TERM', String(apachePid)], { allowFailure: true }) });
  targets.push({ name: 'Apache + ModSecurity v2, bare', engine: 'apache', port: apachePort, master: apachePid });

  for (const [i, v] of VARIANTS.entries()) {
    const vd = join(dir, `kumo-${i}`);
    const port = 8110 + i;
    const s = spec(port, v.upstream);
    const paths = wafPaths(vd);
    await writeRules(vd, s);
    const base = buildNginxConfig(s, paths, { module: sys.module, user: WORKER_USER });
    const text = v.edit(base);
    if (i > 1 && text === base) throw new Error(`variant "${v.name}" no longer changes kumo's config: update bench/waf-engines.ts`);
    targets.push({ name: v.name, engine: 'nginx', port, master: await startNginx(ns, vd, text) });
  }
  return targets;
}

/** The attack set to every WAF: identical answers, and the expected ones, or the run stops. */
async function checkBlocking(ns: string, targets: Target[]): Promise<Record<string, Record<string, string>>> {
  const exec = new NetnsExecutor(ns);
  const expected = expectedBlocking();
  const answers: Record<string, Record<string, string>> = {};
  for (const t of targets.filter((x) => x.engine !== 'none')) answers[t.name] = Object.fromEntries(await sendWafProbes(exec, `http://127.0.0.1:${t.port}`));
  const differences: string[] = [];
  for (const [probe, want] of expected) {
    const got = Object.entries(answers).filter(([, a]) => a[probe] !== want);
    if (got.length) differences.push(`"${probe}" should be ${want}: ${got.map(([t, a]) => `${t} answered ${a[probe]}`).join(', ')}`);
  }
  if (differences.length) throw new Error(`the engines do not block identically:\n  ${differences.join('\n  ')}`);
  return answers;
}

interface Measurement { round: number; connections: number; target: string; wrk?: WrkResult; error?: string; load: number; engineCpuUsPerRequest?: number }

async function waitAnswering(ns: string, t: Target): Promise<void> {
  let answer = '';
  for (let k = 0; k < 75 && answer !== '200'; k++) {
    answer = (await run('ip', ['netns', 'exec', ns, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', `http://127.0.0.1:${t.port}/`], { allowFailure: true })).trim();
    if (answer !== '200') await sleep(200);
  }
  if (answer !== '200') throw new Error(`${t.name} on port ${t.port} answers ${answer || 'nothing'} before measuring`);
}

async function measure(o: Options, ns: string, targets: Target[]): Promise<Measurement[]> {
  const out: Measurement[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    for (const c of o.connections) {
      const order = targets.map((_, i) => targets[(i + round - 1) % targets.length]!);
      for (const t of order) {
        const m: Measurement = { round, connections: c, target: t.name, load: load1() };
        const before = t.master ? await engineCpu(t.master) : 0;
        try {
          m.wrk = await runWrk(`http://127.0.0.1:${t.port}/`, { netns: ns, threads: 1, connections: c, durationS: o.durationS, headers: [HOST_HEADER] });
          if (t.master) m.engineCpuUsPerRequest = (((await engineCpu(t.master)) - before) * 1e6) / m.wrk.requests;
          log(`  round ${round} -c${c} ${t.name}: ${m.wrk.requestsPerSec.toFixed(0)} req/s, p50 ${m.wrk.latencyMs.p50.toFixed(2)} ms, engine ${fmt(m.engineCpuUsPerRequest, 0)} µs CPU per request`);
        } catch (e) {
          m.error = (e as Error).message.split('\n')[0];
          log(`  round ${round} -c${c} ${t.name}: FAILED ${m.error}`);
        }
        out.push(m);
        await sleep(500);
      }
    }
  }
  return out;
}

const errorsOf = (m: Measurement) => (m.error ? 1 : 0) + (m.wrk ? Object.values(m.wrk.socketErrors).reduce((x, y) => x + y, 0) + m.wrk.non2xx3xx : 0);

function table(ms: Measurement[], targets: Target[], c: number, o: Options): string[] {
  const lines = ['', `## wrk -t1 -c${c} -d${o.durationS}s, ${o.rounds} round(s), medians; ratios per round, then the median`, '',
    '| path | engine processes | requests/s | ratio to direct | ratio to bare nginx | ratio to bare Apache | p50 | p99 | engine CPU µs/request | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|'];
  const ok = (t: string) => ms.filter((m) => m.target === t && m.connections === c && m.wrk);
  const ratioTo = (t: string, ref: string) => median(ok(t).flatMap((m) => {
    const r = ms.find((x) => x.target === ref && x.round === m.round && x.connections === c && x.wrk);
    return r ? [m.wrk!.requestsPerSec / r.wrk!.requestsPerSec] : [];
  }));
  for (const t of targets) {
    const procs = t.engine === 'none' ? '—' : `${o.workers}`;
    lines.push(`| ${t.name} | ${procs} | ${fmt(median(ok(t.name).map((m) => m.wrk!.requestsPerSec)), 0)} | ${fmt(ratioTo(t.name, 'direct'), 3, '×')} | `
      + `${fmt(ratioTo(t.name, targets[1]!.name), 2, '×')} | ${fmt(ratioTo(t.name, targets[2]!.name), 2, '×')} | `
      + `${fmt(median(ok(t.name).map((m) => m.wrk!.latencyMs.p50)), 2, ' ms')} | ${fmt(median(ok(t.name).map((m) => m.wrk!.latencyMs.p99)), 2, ' ms')} | `
      + `${fmt(median(ok(t.name).flatMap((m) => (m.engineCpuUsPerRequest === undefined ? [] : [m.engineCpuUsPerRequest]))), 0)} | `
      + `${ms.filter((m) => m.target === t.name && m.connections === c).reduce((n, m) => n + errorsOf(m), 0)} |`);
  }
  const failures = ms.filter((m) => m.connections === c && errorsOf(m) > 0)
    .map((m) => `${m.target} round ${m.round}: ${m.error ?? `socket errors ${JSON.stringify(m.wrk!.socketErrors)}, non-2xx/3xx ${m.wrk!.non2xx3xx}`}`);
  if (failures.length) lines.push('', 'Errors (wrk counts a request that takes over 2 s as a timeout):', ...failures.map((f) => `- ${f}`));
  return lines;
}

function report(ms: Measurement[], targets: Target[], o: Options, facts: Record<string, string>): string {
  const lines = o.connections.flatMap((c) => table(ms, targets, c, o));
  lines.push('', 'Per round (requests/s):', '', `| round | -c | ${targets.map((t) => t.name).join(' | ')} | load |`, `|---:|---:|${'---:|'.repeat(targets.length)}---:|`);
  for (let r = 1; r <= o.rounds; r++) {
    for (const c of o.connections) {
      const cells = targets.map((t) => ms.find((m) => m.round === r && m.connections === c && m.target === t.name)?.wrk?.requestsPerSec.toFixed(0) ?? 'FAILED');
      lines.push(`| ${r} | ${c} | ${cells.join(' | ')} | ${ms.find((m) => m.round === r && m.connections === c)!.load.toFixed(2)} |`);
    }
  }
  lines.push('', ...Object.entries(facts).map(([k, v]) => `- ${k}: ${v}`));
  return lines.join('\n');
}

async function versions(): Promise<string> {
  const first = async (cmd: string, args: string[]) => (await local.run(cmd, args, { allowFailure: true })).stderr.split('\n').concat((await local.run(cmd, args, { allowFailure: true })).stdout.split('\n')).find((l) => l.trim()) ?? '?';
  const pkg = async (p: string) => (await run('dpkg-query', ['-W', '-f', '${Version}', p], { allowFailure: true })).trim() || 'not installed';
  return [await first('nginx', ['-v']), `libmodsecurity3 ${await pkg('libmodsecurity3')}`, await first('apache2', ['-v']),
    `libapache2-mod-security2 ${await pkg('libapache2-mod-security2')}`, `modsecurity-crs ${await pkg('modsecurity-crs')}`, await first('haproxy', ['-v'])].join('; ');
}

async function main(): Promise<number> {
  const o = options();
  const facts: Record<string, string> = { ...machineFacts() };
  try {
    await requireTools(['nginx', 'apache2', 'haproxy', 'wrk', 'curl', 'ip']);
    facts.versions = await versions();
    const { prefix, dir } = await benchFolder('kwe', '/var/tmp');
    const ns = `${prefix}ns`;
    undo.push({ what: `delete namespace ${ns}`, fn: () => run('ip', ['netns', 'del', ns], { allowFailure: true }) });
    await run('ip', ['netns', 'add', ns]);
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const targets = await startAll(ns, dir, o.workers);
    for (const t of targets) await waitAnswering(ns, t);
    const answers = await checkBlocking(ns, targets);
    const expected = [...expectedBlocking().values()];
    facts.blocking = `identical on all ${Object.keys(answers).length} WAF paths: ${expected.filter((s) => s === '403').length} attacks answered 403, ${expected.filter((s) => s === '200').length} clean requests 200 (test/helpers/waf-attacks.ts)`;
    facts.workers = `${o.workers} nginx workers (bare; kumo's "worker_processes auto" on this machine's ${facts.cpus} cores), ${o.workers} Apache processes × 64 threads`;
    log(`run ${prefix}: ${targets.length} paths, ${o.rounds} round(s) of ${o.durationS} s at -c${o.connections.join(' and -c')}`);
    const ms = await measure(o, ns, targets);
    facts['load at end'] = loadNow();
    console.log(report(ms, targets, o, facts));
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
