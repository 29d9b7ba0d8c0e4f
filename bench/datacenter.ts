#!/usr/bin/env node
/**
 * The course datacenter benchmark:
 *  (a) `kumo apply` of examples/course-datacenter.yaml from nothing (no lab) until all 4
 *      instances answer through the load balancer from the outside namespace, split into kumo's
 *      own work and the guests' boot;
 *  (b) what the load balancer costs: requests/s and p99 latency with wrk through HAProxy alone
 *      and through nginx + ModSecurity (the WAF) + HAProxy, each as a ratio to direct access to
 *      the same backend, measured side by side in one run (kumo's own drivers and configs, in a
 *      network namespace of the bench's own).
 *
 *   node dist/bench/datacenter.js [--rounds N] [--duration S] [--connections C] [--skip-apply] [--skip-proxy] [--json FILE]
 *
 * Everything it makes carries a per-run prefix (lab, namespaces, instances) or lives in one
 * per-run folder, and is removed in a finally block, pass or fail (also on Ctrl+C). See bench/README.md.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { local } from '../src/exec/exec.js';
import { NetnsExecutor } from '../src/exec/netns.js';
import { COURSE_LAB } from '../src/model/lab.js';
import { libvirtdUri } from '../src/drivers/daemons/libvirtd/namespace.js';
import { Haproxy } from '../src/drivers/daemons/haproxy/haproxy.js';
import { NginxWaf } from '../src/drivers/daemons/nginx-waf/nginx-waf.js';
import { LB_HEALTH } from '../src/service/loadbalancers.js';
import { runWrk, type WrkResult } from '../test/helpers/lab.js';
import {
  benchFolder, cleanup, CLI, fmt, kumo, load1, log, loadNow, machineFacts, median, now, requireTools, run, scriptOptions, sleep, undo, startPageBackend } from './common.js';

// ---------------------------------------------------------------- options

interface Options {
  /** Rounds of (direct, HAProxy, WAF + HAProxy); medians reported. */
  rounds: number;
  /** wrk's -d per measurement (s). */
  durationS: number;
  /** wrk's -c (one thread). */
  connections: number;
  /** Longest wait for the datacenter to answer through the LB after apply started (s). */
  timeoutS: number;
  apply: boolean;
  proxy: boolean;
  workdir: string;
  json?: string;
}

const EXAMPLE = join(import.meta.dirname, '../../examples/course-datacenter.yaml');
const LB_URL = 'http://10.5.1.213/';
/** Ports inside the bench's own namespace: kumo's defaults (backend 8080, HAProxy behind the WAF 18080, public 80). */
const PORTS = { backend: 8080, haproxy: 18080, waf: 80 };
/** A name, not an address, in Host: a numeric Host is a CRS warning (920350) that nginx would log for every request. */
const HOST_HEADER = 'Host: www.kumo.example';

function usage(): string {
  return `usage: node dist/bench/datacenter.js [options]
  --rounds N          rounds of direct / HAProxy / WAF+HAProxy measurements (default 5); medians reported
  --duration S        wrk -d per measurement, seconds (default 10)
  --connections C     wrk -c, one thread (default 8)
  --timeout SECONDS   longest wait for the datacenter to answer through the LB (default 900)
  --skip-apply        leave out (a), the datacenter apply
  --skip-proxy        leave out (b), the load balancer's cost
  --workdir DIR       where the per-run folder is made (default /var/tmp)
  --json FILE         also write every raw measurement to FILE`;
}

const options = (): Options => scriptOptions({
  rounds: { kind: 'whole', min: 1, max: 20, default: 5 },
  duration: { kind: 'whole', min: 1, max: 60, default: 10 },
  connections: { kind: 'whole', min: 1, max: 64, default: 8 },
  timeout: { kind: 'whole', min: 60, max: 3_600, default: 900 },
  'skip-apply': { kind: 'flag' },
  'skip-proxy': { kind: 'flag' },
  workdir: { kind: 'text', default: '/var/tmp', bare: '.' },
  json: { kind: 'text', bare: 'bench.json' },
}, usage(), (v) => ({
  rounds: v.rounds, durationS: v.duration, connections: v.connections, timeoutS: v.timeout, apply: !v['skip-apply'], proxy: !v['skip-proxy'],
  workdir: resolve(v.workdir), json: v.json === undefined ? undefined : resolve(v.json),
}));

// ---------------------------------------------------------------- the bench's own world

interface World {
  prefix: string;
  dir: string;
  cliEnv: NodeJS.ProcessEnv;
}

async function makeWorld(o: Options): Promise<World> {
  const { prefix, dir, cliEnv } = await benchFolder('kd', o.workdir);
  return { prefix, dir, cliEnv };
}

/**
 * A namespace of the bench's own; returns its removal (whatever still runs in it is ended
 * first), which is also an undo step.
 */
async function makeNamespace(name: string): Promise<() => Promise<void>> {
  const remove = async () => {
    const pids = (await run('ip', ['netns', 'pids', name], { allowFailure: true })).split('\n').map(Number).filter((p) => p > 1);
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone already */ } }
    await run('ip', ['netns', 'del', name], { allowFailure: true });
  };
  undo.push({ what: `delete namespace ${name}`, fn: remove });
  await run('ip', ['netns', 'add', name]);
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return remove;
}

// ---------------------------------------------------------------- (a) the datacenter from nothing

interface ApplyTimes {
  ok: boolean;
  error?: string;
  /** Seconds from the start of `kumo apply`, per event. */
  labDoneS?: number;
  imageDoneS?: number;
  shareDoneS?: number;
  /** All 4 domains running (libvirt on kvm1 and kvm2, polled every 250 ms). */
  domainsRunningS?: number;
  /** apply prints the LB change once its own readiness wait for the guests (HTTP on 8080) is over. */
  guestsReadyS?: number;
  applyDoneS?: number;
  /** All 4 instances seen answering through the LB (X-Kumo-Backend) from the outside namespace. */
  allThroughLbS?: number;
  lines: { atS: number; line: string }[];
  load: number;
}

/** Names of running domains on each hypervisor of the lab (an empty list while its libvirtd is not up yet). */
async function runningDomains(home: string): Promise<string[]> {
  const names: string[] = [];
  for (const node of ['kvm1', 'kvm2']) {
    const r = await local.run('virsh', ['-c', libvirtdUri(join(home, 'lab', 'libvirt', node)), 'list', '--state-running', '--name'], { allowFailure: true, timeoutMs: 10_000 });
    if (r.code === 0) names.push(...r.stdout.split('\n').map((l) => l.trim()).filter(Boolean));
  }
  return names;
}

async function measureApply(w: World, o: Options): Promise<ApplyTimes> {
  const home = w.cliEnv.KUMO_HOME!;
  const dc = parse(await readFile(EXAMPLE, 'utf8')) as Record<string, unknown> & { instances: Record<string, unknown>; loadbalancers: Record<string, { instances: string }> };
  // The example as it is, with the lab and the instance group named for this run (as the datacenter test does).
  dc.name = w.prefix;
  dc.lab = { ...COURSE_LAB, name: w.prefix };
  const group = `${w.prefix}-web`;
  dc.instances = { [group]: dc.instances.web };
  dc.loadbalancers.front!.instances = group;
  const file = join(w.dir, 'datacenter.yaml');
  await writeFile(file, stringify(dc));
  const members = [1, 2, 3, 4].map((i) => `${group}-${i}`);
  // destroy removes what apply made; lab down catches what an interrupted apply left.
  undo.push({ what: 'kumo lab down', fn: () => kumo(w.cliEnv, ['lab', 'down'], 600_000) });
  undo.push({ what: 'kumo destroy', fn: () => kumo(w.cliEnv, ['destroy', file], 600_000) });

  const t: ApplyTimes = { ok: false, lines: [], load: load1() };
  const t0 = now();
  const at = () => (now() - t0) / 1000;
  const child: ChildProcess = spawn('node', [CLI, 'apply', file], { env: w.cliEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let partial = '';
  child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  // apply prints each change as it begins: its time is when the one before it ended.
  child.stdout!.on('data', (b: Buffer) => {
    const parts = (partial + b.toString()).split('\n');
    partial = parts.pop()!;
    for (const line of parts) if (line.trim()) t.lines.push({ atS: at(), line });
  });
  const exited = new Promise<number>((r) => child.on('close', (code) => r(code ?? 1)));
  let applyCode: number | undefined;
  void exited.then((c) => { applyCode = c; t.applyDoneS = at(); });
  try {
    // Domains: poll both lab hypervisors until all 4 run (or apply has ended).
    while (applyCode === undefined && t.domainsRunningS === undefined) {
      const running = await runningDomains(home);
      if (members.every((m) => running.includes(m))) t.domainsRunningS = at();
      else await sleep(250);
      if (at() > o.timeoutS) throw new Error(`the 4 domains did not all run within ${o.timeoutS} s`);
    }
    const code = await exited;
    if (code !== 0) throw new Error(`kumo apply exited ${code}: ${stderr.trim().split('\n').slice(-3).join(' ')}`);
    // Through the LB from the outside, until each instance has answered (HAProxy's X-Kumo-Backend).
    const seen = new Set<string>();
    const outside = new NetnsExecutor(`${w.prefix}-internet`);
    while (!members.every((m) => seen.has(m))) {
      if (at() > o.timeoutS) throw new Error(`only ${[...seen].join(', ') || 'none'} answered through the LB within ${o.timeoutS} s`);
      const r = await outside.run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %header{x-kumo-backend}', '--max-time', '3', LB_URL], { allowFailure: true });
      const [status, backend] = r.stdout.trim().split(' ');
      if (status === '200' && backend) seen.add(backend);
    }
    t.allThroughLbS = at();
    const after = (re: RegExp) => t.lines.find((l) => re.test(l.line))?.atS;
    t.labDoneS = after(/^\S+ \w+ image /);
    t.imageDoneS = after(/^\S+ \w+ share /);
    t.shareDoneS = after(/^\S+ \w+ instance /);
    t.guestsReadyS = after(/^\S+ \w+ loadbalancer /);
    t.ok = true;
  } catch (e) {
    t.error = (e as Error).message.split('\n').slice(0, 3).join(' ');
    child.kill('SIGTERM');
    await exited;
  }
  return t;
}

// ---------------------------------------------------------------- (b) what the LB costs

type Path = 'direct' | 'haproxy' | 'waf';
interface ProxyRun { path: Path; round: number; wrk?: WrkResult; error?: string; load: number }


async function measureProxies(w: World, o: Options): Promise<ProxyRun[]> {
  // Not "<prefix>-…": kumo's lab of the same name would take that for one of its own namespaces.
  const ns = `${w.prefix}px`;
  const removeNs = await makeNamespace(ns);
  const exec = new NetnsExecutor(ns);
  const backend = startPageBackend(ns, PORTS.backend);
  // kumo's own drivers and settings, as LoadBalancerService.sync uses them with the WAF on.
  const haproxy = new Haproxy(join(w.dir, 'lb', 'haproxy'), exec);
  const waf = new NginxWaf(join(w.dir, 'lb', 'waf'), exec);
  let teardown: Promise<void> | undefined;
  const stopAll = () => (teardown ??= (async () => {
    await waf.stop().catch((e: Error) => log(`stopping the WAF: ${e.message}`));
    await haproxy.stop().catch((e: Error) => log(`stopping HAProxy: ${e.message}`));
    backend.kill('SIGKILL');
    await removeNs();
  })());
  undo.push({ what: 'stop the proxies and the backend', fn: stopAll });
  try {
    return await wrkEachPath(ns, exec, haproxy, waf, o, w.prefix);
  } finally {
    await stopAll(); // gone before (a) starts, so that nothing of (b) runs next to it
  }
}

async function wrkEachPath(ns: string, exec: NetnsExecutor, haproxy: Haproxy, waf: NginxWaf, o: Options, prefix: string): Promise<ProxyRun[]> {
  const internal = { address: '127.0.0.1', port: PORTS.haproxy };
  await haproxy.apply({ name: 'front', frontend: internal, backends: [{ name: `${prefix}-web-1`, address: '127.0.0.1', port: PORTS.backend }], health: LB_HEALTH });
  await waf.apply({ name: 'front', listen: { address: '127.0.0.1', port: PORTS.waf }, upstream: internal, enabled: true, paranoia: 1 });
  const urls: Record<Path, string> = {
    direct: `http://127.0.0.1:${PORTS.backend}/`, haproxy: `http://127.0.0.1:${PORTS.haproxy}/`, waf: `http://127.0.0.1:${PORTS.waf}/`,
  };
  for (const path of Object.keys(urls) as Path[]) {
    const r = await exec.run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', HOST_HEADER, '--max-time', '5', urls[path]], { allowFailure: true });
    if (r.stdout !== '200') throw new Error(`${urls[path]} (${path}) answers ${r.stdout || 'nothing'} before measuring`);
  }
  const runs: ProxyRun[] = [];
  const paths: Path[] = ['direct', 'haproxy', 'waf'];
  for (let round = 1; round <= o.rounds; round++) {
    // Rotate the order every round, so no path always runs first or right after the heaviest one.
    const order = paths.map((_, i) => paths[(i + round - 1) % paths.length]!);
    for (const path of order) {
      const m: ProxyRun = { path, round, load: load1() };
      try {
        m.wrk = await runWrk(urls[path], { netns: ns, threads: 1, connections: o.connections, durationS: o.durationS, headers: [HOST_HEADER] });
        log(`  round ${round} ${path}: ${m.wrk.requestsPerSec.toFixed(0)} req/s, p99 ${m.wrk.latencyMs.p99.toFixed(2)} ms`);
      } catch (e) {
        m.error = (e as Error).message.split('\n')[0];
        log(`  round ${round} ${path}: FAILED ${m.error}`);
      }
      runs.push(m);
      await sleep(1_000);
    }
  }
  return runs;
}

// ---------------------------------------------------------------- report

function report(a: ApplyTimes | undefined, p: ProxyRun[], o: Options, facts: Record<string, string>): string {
  const lines: string[] = [];
  const row = (cells: (string | number)[]) => lines.push(`| ${cells.join(' | ')} |`);
  if (a) {
    lines.push('', '## (a) kumo apply of the course datacenter, from no lab to all 4 instances answering through the LB', '');
    if (!a.ok) lines.push(`FAILED: ${a.error ?? ''}`, '');
    const span = (from: number | undefined, to: number | undefined) => (from === undefined || to === undefined ? undefined : to - from);
    row(['phase', 'from → to', 'seconds']);
    row(['---', '---', '---:']);
    row(['kumo: lab up (namespaces, switch, 2 libvirtds, DHCP, hosts)', 'start → image', fmt(a.labDoneS)]);
    row(['kumo: tiny image (from the build cache)', '→ share', fmt(span(a.labDoneS, a.imageDoneS))]);
    row(['kumo: share on STG (NFS)', '→ first instance', fmt(span(a.imageDoneS, a.shareDoneS))]);
    row(['kumo: 4 instances created and started', '→ all 4 domains running', fmt(span(a.shareDoneS, a.domainsRunningS))]);
    row(['guests: boot until kumo\'s readiness check passes (HTTP on 8080)', '→ LB change begins', fmt(span(a.domainsRunningS, a.guestsReadyS))]);
    row(['kumo: load balancer (HAProxy + WAF) and access rules', '→ apply returns', fmt(span(a.guestsReadyS, a.applyDoneS))]);
    row(['through the LB from outside', '→ all 4 seen by X-Kumo-Backend', fmt(span(a.applyDoneS, a.allThroughLbS))]);
    row(['**total**', 'start → all 4 through the LB', `**${fmt(a.allThroughLbS)}**`]);
    lines.push('');
    row(['split', 'seconds']);
    row(['---', '---:']);
    row(['kumo\'s own work until all domains are started', fmt(a.domainsRunningS)]);
    row(['domains started → all 4 answering through the LB (guests\' boot, then LB + rules)', fmt(span(a.domainsRunningS, a.allThroughLbS))]);
    row(['of which kumo\'s LB + access rules', fmt(span(a.guestsReadyS, a.applyDoneS))]);
    lines.push('', 'apply\'s output with the time each line appeared:', '', '```', ...a.lines.map((l) => `${l.atS.toFixed(1).padStart(6)} s  ${l.line}`), '```');
  }
  if (p.length) {
    lines.push('', `## (b) the load balancer's cost: wrk -t1 -c${o.connections} -d${o.durationS}s, ${o.rounds} round(s), medians`, '');
    const med = (path: Path, f: (w: WrkResult) => number) => median(p.filter((r) => r.path === path && r.wrk).map((r) => f(r.wrk!)));
    const direct = { rps: med('direct', (w) => w.requestsPerSec), p99: med('direct', (w) => w.latencyMs.p99) };
    // Also the ratio within each round (measured a few seconds apart), whose median drifts less with other users' load.
    const roundRatio = (path: Path, f: (w: WrkResult) => number) => median(p.filter((r) => r.path === path && r.wrk).flatMap((r) => {
      const d = p.find((x) => x.path === 'direct' && x.round === r.round && x.wrk);
      return d ? [f(r.wrk!) / f(d.wrk!)] : [];
    }));
    row(['path', 'requests/s', 'ratio to direct', 'per-round ratio', 'p50', 'p99', 'p99 ratio to direct', 'per-round p99 ratio', 'errors / non-2xx']);
    row(['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']);
    const names: Record<Path, string> = { direct: 'direct to the backend', haproxy: 'HAProxy alone', waf: 'nginx + ModSecurity (CRS) + HAProxy' };
    for (const path of ['direct', 'haproxy', 'waf'] as const) {
      const rps = med(path, (w) => w.requestsPerSec);
      const p99 = med(path, (w) => w.latencyMs.p99);
      const bad = p.filter((r) => r.path === path).reduce((n, r) => n + (r.error ? 1 : 0) + (r.wrk ? Object.values(r.wrk.socketErrors).reduce((x, y) => x + y, 0) + r.wrk.non2xx3xx : 0), 0);
      row([names[path], fmt(rps, 0), rps !== undefined && direct.rps ? `${(rps / direct.rps).toFixed(2)}×` : '—',
        fmt(roundRatio(path, (w) => w.requestsPerSec), 2, '×'),
        fmt(med(path, (w) => w.latencyMs.p50), 2, ' ms'), fmt(p99, 2, ' ms'), p99 !== undefined && direct.p99 ? `${(p99 / direct.p99).toFixed(1)}×` : '—',
        fmt(roundRatio(path, (w) => w.latencyMs.p99), 1, '×'), bad]);
    }
    lines.push('', 'Every measurement:', '');
    row(['round', 'path', 'requests/s', 'p50', 'p99', 'max', 'load']);
    row(['---:', '---', '---:', '---:', '---:', '---:', '---:']);
    for (const r of p) {
      row([r.round, r.path, r.wrk ? fmt(r.wrk.requestsPerSec, 0) : `FAILED: ${r.error ?? ''}`, fmt(r.wrk?.latencyMs.p50, 2, ' ms'),
        fmt(r.wrk?.latencyMs.p99, 2, ' ms'), fmt(r.wrk?.latencyMs.max, 2, ' ms'), r.load.toFixed(2)]);
    }
  }
  lines.push('', ...Object.entries(facts).map(([k, v]) => `- ${k}: ${v}`));
  return lines.join('\n');
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const o = options();
  let applied: ApplyTimes | undefined;
  let proxies: ProxyRun[] = [];
  const started = new Date().toISOString();
  const facts: Record<string, string> = {
    ...machineFacts(),
  };
  try {
    await requireTools(['virsh', 'libvirtd', 'qemu-system-x86_64', 'haproxy', 'nginx', 'wrk', 'curl', 'ip']);
    facts.versions = [(await run('haproxy', ['-v'])).split('\n')[0]!, (await local.run('nginx', ['-v'])).stderr.trim(),
      (await local.run('wrk', ['--version'], { allowFailure: true })).stdout.split('\n')[0]!].join('; ');
    const w = await makeWorld(o);
    log(`run ${w.prefix} in ${w.dir}`);
    if (o.proxy) {
      // First, while nothing of (a) runs: the proxies get the machine to themselves (but for other users).
      log('(b) direct / HAProxy / WAF + HAProxy with wrk');
      proxies = await measureProxies(w, o);
    }
    if (o.apply) {
      log('(a) kumo apply of the course datacenter from nothing');
      applied = await measureApply(w, o);
      log(applied.ok ? `  all 4 through the LB after ${applied.allThroughLbS?.toFixed(1)} s (domains running after ${applied.domainsRunningS?.toFixed(1)} s)` : `  FAILED: ${applied.error}`);
    }
    facts['load at end'] = loadNow();
    console.log(report(applied, proxies, o, facts));
    if (o.json) await writeFile(o.json, JSON.stringify({ started, options: o, facts, apply: applied, proxies }, null, 2));
    return (applied?.ok ?? true) && proxies.every((p) => p.wrk) ? 0 : 1;
  } catch (e) {
    log(`error: ${(e as Error).message}`);
    if (applied || proxies.length) console.log(report(applied, proxies, o, facts));
    return 1;
  } finally {
    log('cleaning up');
    await cleanup();
  }
}

process.exitCode = await main();
