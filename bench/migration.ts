#!/usr/bin/env node
/**
 * Live migration benchmark: `kumo instance migrate` of the tiny guest between two hypervisors
 * on this one machine (this machine's libvirtd as "local", a second libvirtd in its own mount +
 * UTS namespace from kumo's lab driver), idle and while it serves a steady HTTP request stream;
 * then `kumo host evacuate` of N instances, N = 1, 2, 4, 8.
 *
 *   node dist/bench/migration.js [--runs N] [--sizes 1,2,4,8] [--rate R] [--json FILE]
 *
 * Everything it makes carries a per-run prefix (domains, the network and its bridge, the second
 * hypervisor's name) or lives in one per-run folder, and is removed in a finally block, pass or
 * fail (also on Ctrl+C). See bench/README.md.
 */
import { request } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { buildNetworkXml } from '../src/drivers/libvirt/network-xml.js';
import { Virsh } from '../src/drivers/libvirt/virsh.js';
import { startLibvirtd, stopLibvirtd } from '../src/drivers/daemons/libvirtd/namespace.js';
import { probeThisMachine } from '../src/service/host.js';
import {
  benchFolder, cleanup, fmt, isolatedNetwork, kumo, load1, log, loadNow, machineFacts, median, now, requireTools, run, runCli, scriptOptions, sleep, undo,
} from './common.js';

// ---------------------------------------------------------------- options

interface Options {
  runs: number;
  /** Instance counts for the evacuation measurements. */
  sizes: number[];
  /** Requests per second of the load stream. */
  rate: number;
  /** Longest wait for one answer of the load stream (ms). */
  requestTimeoutMs: number;
  /** `kumo host evacuate --parallel`; undefined = kumo's default. */
  parallel?: number;
  /** Longest wait for guests to answer HTTP after they were created (s). */
  timeoutS: number;
  workdir: string;
  json?: string;
}

const PASSWORD = 'test123';
const URI = 'qemu:///system';
/** The load stream runs this long before the migration starts and after it ended. */
const MARGIN_MS = 2_000;

function usage(): string {
  return `usage: node dist/bench/migration.js [options]
  --runs N            idle and loaded migrations of each kind (default 3); the median is reported
  --sizes LIST        instance counts to evacuate, comma-separated (default 1,2,4,8)
  --rate R            requests per second of the load stream (default 20)
  --request-timeout MS  longest wait for one answer of the load stream (default 2000)
  --parallel P        kumo host evacuate --parallel P (default: kumo's own default, 2)
  --timeout SECONDS   longest wait for created guests to answer HTTP (default 300)
  --workdir DIR       where the per-run folder is made (default /var/tmp)
  --json FILE         also write every raw measurement to FILE`;
}

const options = (): Options => scriptOptions({
  runs: { kind: 'whole', min: 1, max: 50, default: 3 },
  sizes: { kind: 'wholes', min: 1, max: 16, default: [1, 2, 4, 8], none: true, bare: '' },
  rate: { kind: 'whole', min: 1, max: 200, default: 20 },
  'request-timeout': { kind: 'whole', min: 100, max: 30_000, default: 2_000 },
  parallel: { kind: 'whole', min: 1, max: 16 },
  timeout: { kind: 'whole', min: 10, max: 3_600, default: 300 },
  workdir: { kind: 'text', default: '/var/tmp', bare: '.' },
  json: { kind: 'text', bare: 'bench.json' },
}, usage(), (v) => ({
  runs: v.runs, sizes: v.sizes, rate: v.rate, requestTimeoutMs: v['request-timeout'], timeoutS: v.timeout, workdir: resolve(v.workdir),
  parallel: v.parallel, json: v.json === undefined ? undefined : resolve(v.json),
}));

// ---------------------------------------------------------------- small helpers

const defined = <T>(xs: (T | undefined)[]): T[] => xs.filter((x): x is T => x !== undefined);

// ---------------------------------------------------------------- the bench's own world

interface World {
  prefix: string;
  dir: string;
  network: string;
  /** The second hypervisor's kumo host name. */
  kvm2: string;
  virsh: Virsh;
  virsh2: Virsh;
  cliEnv: NodeJS.ProcessEnv;
  passwordFile: string;
}

/** Removes every domain named with our prefix from one libvirtd. */
async function sweepDomains(virsh: Virsh, prefix: string): Promise<void> {
  for (const d of await virsh.listDomains()) {
    if (d.name.startsWith(`${prefix}-`)) await virsh.removeDomain(d.name);
  }
}

async function makeWorld(o: Options): Promise<World> {
  const virsh = new Virsh(URI);
  if (!(await virsh.ping())) throw new Error(`libvirt at ${URI} does not answer: start it (virtlogd -d; libvirtd -d)`);
  const { prefix, dir, cliEnv } = await benchFolder('km', o.workdir);
  const passwordFile = join(dir, 'password');
  await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });

  // The second hypervisor: kumo's lab driver (own mount + UTS namespace, own host_uuid).
  const kvm2 = `${prefix}-kvm2`;
  const stateDir = join(dir, 'kvm2');
  undo.push({ what: `stop the libvirtd ${kvm2}`, fn: () => stopLibvirtd(stateDir) });
  log(`starting a second libvirtd ${kvm2} in ${stateDir}`);
  const lab = await startLibvirtd({ name: kvm2, stateDir, maskKvm: (await probeThisMachine()).kvmMask });
  const virsh2 = new Virsh(lab.uri);

  // Domains first (LIFO): on both daemons, anything carrying our prefix.
  undo.push({ what: `remove domains on ${kvm2}`, fn: () => sweepDomains(virsh2, prefix) });
  undo.push({ what: 'remove domains on local', fn: () => sweepDomains(virsh, prefix) });

  const { network, bridge, third } = await isolatedNetwork(virsh, prefix);
  // kvm2 plugs its guests into the same Linux bridge (a bridge-mode network of the same name),
  // as two real hypervisors share a switch. Removed before its daemon stops (LIFO).
  undo.push({ what: `remove network ${network} on ${kvm2}`, fn: () => virsh2.removeNetwork(network) });
  await virsh2.defineNetwork(buildNetworkXml({ name: network, mode: 'bridge', bridge }));
  await virsh2.startNetwork(network);
  log(`network ${network}: isolated 192.168.${third}.0/24 on bridge ${bridge} (local), bridge mode on ${kvm2}; folder ${dir}`);

  const w: World = { prefix, dir, network, kvm2, virsh, virsh2, cliEnv, passwordFile };
  log('kumo image build tiny');
  await kumo(w.cliEnv, ['image', 'build', 'tiny'], 1_800_000);
  log(`kumo host add ${kvm2}`);
  await kumo(w.cliEnv, ['host', 'add', kvm2, '--uri', lab.uri, '--migration-address', '127.0.0.1'], 120_000);
  return w;
}

// ---------------------------------------------------------------- guests

async function createInstance(w: World, name: string, host: string): Promise<void> {
  await kumo(w.cliEnv, ['instance', 'create', name, '--image', 'tiny', '--flavor', 'small', '--password-file', w.passwordFile,
    '--network', w.network, '--host', host], 300_000);
}

/** `kumo instance wait`: the guest's address once it answers on 8080. */
async function waitInstance(w: World, name: string, timeoutS: number): Promise<string> {
  const out = await kumo(w.cliEnv, ['instance', 'wait', name, '--timeout', String(timeoutS)], (timeoutS + 60) * 1000);
  const ip = /answers at http:\/\/([\d.]+):8080/.exec(out)?.[1];
  if (!ip) throw new Error(`kumo instance wait ${name} printed no address: ${out.trim()}`);
  return ip;
}

async function deleteInstances(w: World, names: string[]): Promise<void> {
  if (names.length) await kumo(w.cliEnv, ['instance', 'delete', ...names], 300_000);
}

// ---------------------------------------------------------------- the load stream

/** One GET without connection reuse: whether an HTTP answer (below 500) arrived within timeoutMs. */
function httpGet(host: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolveGet) => {
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolveGet(ok);
    };
    const req = request({ host, port: 8080, path: '/', method: 'GET', agent: false, headers: { connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => finish((res.statusCode ?? 0) < 500));
      res.on('error', () => finish(false));
    });
    const timer = setTimeout(() => {
      req.destroy(new Error('timeout'));
      finish(false);
    }, timeoutMs);
    req.on('error', () => finish(false));
    req.end();
  });
}

interface StreamStats {
  requests: number;
  ok: number;
  failed: number;
  /** Longest time between two consecutive successful answers (ms). */
  longestGapMs: number;
  /** Slowest successful answer (ms from sending to the end of the body). */
  slowestMs: number;
}

/**
 * An open-loop request stream: a GET every 1000/rate ms, whether or not the earlier ones have
 * answered (at most 100 in flight), each bounded by timeoutMs. stop() ends it and waits for the
 * requests still in flight.
 */
function requestStream(host: string, rate: number, timeoutMs: number) {
  const answers: number[] = [];
  const latencies: number[] = [];
  let requests = 0;
  let failed = 0;
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  const started = now();
  const loop = (async () => {
    for (let k = 0; !stopped; k++) {
      if (inFlight.size < 100) {
        requests++;
        const t0 = now();
        const p: Promise<void> = httpGet(host, timeoutMs).then((ok) => {
          inFlight.delete(p);
          if (ok) {
            answers.push(now());
            latencies.push(now() - t0);
          } else failed++;
        });
        inFlight.add(p);
      } else failed++;
      // Fixed schedule from the start, so a slow event loop does not thin the stream.
      const next = started + ((k + 1) * 1000) / rate;
      await sleep(Math.max(0, next - now()));
    }
  })();
  return {
    async stop(): Promise<StreamStats> {
      stopped = true;
      await loop;
      await Promise.all([...inFlight]);
      const sorted = [...answers].sort((a, b) => a - b);
      let longestGapMs = 0;
      for (let i = 1; i < sorted.length; i++) longestGapMs = Math.max(longestGapMs, sorted[i]! - sorted[i - 1]!);
      return { requests, ok: answers.length, failed, longestGapMs, slowestMs: Math.max(0, ...latencies) };
    },
  };
}

// ---------------------------------------------------------------- measurements

interface Migration {
  kind: 'idle' | 'loaded';
  run: number;
  from: string;
  to: string;
  ok: boolean;
  error?: string;
  /** kumo's own number: `virsh migrate` start to finish, printed to 0.1 s. */
  durationS?: number;
  /** QEMU's "Total downtime" as kumo reports it. */
  downtimeMs?: number;
  /** The whole `kumo instance migrate` command (Node start, checks, migration, domjobinfo). */
  commandS?: number;
  stream?: StreamStats;
  load: number;
}

interface Evacuation {
  n: number;
  ok: boolean;
  error?: string;
  /** The whole `kumo host evacuate` command. */
  totalS?: number;
  downtimesMs: number[];
  moved: number;
  notMoved: number;
  /** Guests that answered HTTP right after the evacuation (each asked once, bounded). */
  answering?: number;
  /** Time from `instance create` of the first until all answered (setup, not measured). */
  setupS?: number;
  load: number;
}

async function migrateOnce(w: World, name: string, to: string): Promise<{ durationS: number; downtimeMs?: number; commandS: number }> {
  const t0 = now();
  const out = await kumo(w.cliEnv, ['instance', 'migrate', name, '--to', to, '--unsafe'], 420_000);
  const commandS = (now() - t0) / 1000;
  const m = /migrated \S+ \S+ -> \S+ in ([\d.]+) s \(downtime (\d+|\?) ms\)/.exec(out);
  if (!m) throw new Error(`unexpected output of kumo instance migrate: ${out.trim()}`);
  return { durationS: Number(m[1]), ...(m[2] !== '?' ? { downtimeMs: Number(m[2]) } : {}), commandS };
}

async function measureMigration(w: World, o: Options, name: string, ip: string, kind: Migration['kind'], runNo: number,
  from: string, to: string): Promise<Migration> {
  const m: Migration = { kind, run: runNo, from, to, ok: false, load: load1() };
  const stream = kind === 'loaded' ? requestStream(ip, o.rate, o.requestTimeoutMs) : undefined;
  try {
    if (stream) await sleep(MARGIN_MS);
    const r = await migrateOnce(w, name, to);
    m.durationS = r.durationS;
    m.commandS = r.commandS;
    if (r.downtimeMs !== undefined) m.downtimeMs = r.downtimeMs;
    m.ok = true;
  } catch (e) {
    m.error = (e as Error).message.split('\n').slice(0, 3).join(' ');
  } finally {
    if (stream) {
      await sleep(MARGIN_MS);
      m.stream = await stream.stop();
    }
  }
  return m;
}

async function measureEvacuation(w: World, o: Options, n: number): Promise<Evacuation> {
  const e: Evacuation = { n, ok: false, downtimesMs: [], moved: 0, notMoved: 0, load: 0 };
  const names = Array.from({ length: n }, (_, i) => `${w.prefix}-e${n}-${i + 1}`);
  const made: string[] = [];
  try {
    const t0 = now();
    for (const name of names) {
      await createInstance(w, name, w.kvm2);
      made.push(name);
    }
    const ips = await Promise.all(names.map((name) => waitInstance(w, name, o.timeoutS)));
    e.setupS = (now() - t0) / 1000;
    log(`  ${n} guest(s) on ${w.kvm2} answer (set-up ${e.setupS.toFixed(1)} s); settling 5 s`);
    await sleep(5_000); // let the boots' CPU burst pass
    e.load = load1();
    const t1 = now();
    const r = await runCli(['host', 'evacuate', w.kvm2, '--unsafe', ...(o.parallel ? ['--parallel', String(o.parallel)] : [])],
      { env: w.cliEnv, timeoutMs: 900_000, allowFailure: true });
    e.totalS = (now() - t1) / 1000;
    for (const line of r.stdout.split('\n')) {
      const ok = /^(\S+) -> (\S+) \(downtime (\d+|\?) ms\)/.exec(line);
      if (ok) {
        e.moved++;
        if (ok[3] !== '?') e.downtimesMs.push(Number(ok[3]));
      } else if (/: NOT moved: /.test(line)) e.notMoved++;
    }
    const answered = await Promise.all(ips.map((ip) => httpGet(ip, 5_000)));
    e.answering = answered.filter(Boolean).length;
    e.ok = r.code === 0 && e.moved === n;
    if (!e.ok) e.error = `kumo host evacuate exited ${r.code}: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}`;
  } catch (err) {
    e.error = (err as Error).message.split('\n').slice(0, 3).join(' ');
  } finally {
    await deleteInstances(w, made).catch((err: Error) => log(`  delete failed: ${err.message.split('\n')[0]}`));
  }
  return e;
}

// ---------------------------------------------------------------- report

function report(ms: Migration[], es: Evacuation[], o: Options, facts: Record<string, string>): string {
  const lines: string[] = [];
  const row = (cells: (string | number)[]) => lines.push(`| ${cells.join(' | ')} |`);
  lines.push('', '## Live migration (medians)', '');
  row(['', 'runs ok', 'duration (kumo)', 'QEMU downtime', 'whole command', 'longest HTTP gap', 'failed requests', 'slowest answer']);
  row(['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:']);
  for (const kind of ['idle', 'loaded'] as const) {
    const ok = ms.filter((m) => m.kind === kind && m.ok);
    const streams = defined(ok.map((m) => m.stream));
    row([kind, `${ok.length}/${ms.filter((m) => m.kind === kind).length}`,
      fmt(median(defined(ok.map((m) => m.durationS))), 1, ' s'),
      fmt(median(defined(ok.map((m) => m.downtimeMs))), 0, ' ms'),
      fmt(median(defined(ok.map((m) => m.commandS))), 2, ' s'),
      kind === 'loaded' ? fmt(median(streams.map((s) => s.longestGapMs)), 0, ' ms') : '—',
      kind === 'loaded' ? `${median(streams.map((s) => s.failed)) ?? '—'} (of ${fmt(median(streams.map((s) => s.requests)), 0)})` : '—',
      kind === 'loaded' ? fmt(median(streams.map((s) => s.slowestMs)), 0, ' ms') : '—']);
  }
  lines.push('', '## Every migration', '');
  row(['kind', 'run', 'direction', 'duration', 'downtime', 'command', 'requests ok/failed', 'longest gap', 'slowest', 'load']);
  row(['---', '---:', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:']);
  for (const m of ms) {
    row([m.kind, m.run, `${m.from} → ${m.to}`, m.ok ? fmt(m.durationS, 1, ' s') : `FAILED: ${m.error}`, fmt(m.downtimeMs, 0, ' ms'),
      fmt(m.commandS, 2, ' s'), m.stream ? `${m.stream.ok}/${m.stream.failed}` : '—',
      m.stream ? fmt(m.stream.longestGapMs, 0, ' ms') : '—', m.stream ? fmt(m.stream.slowestMs, 0, ' ms') : '—', m.load.toFixed(2)]);
  }
  if (es.length) {
    lines.push('', `## Evacuation (kumo host evacuate --unsafe${o.parallel ? ` --parallel ${o.parallel}` : ', kumo\'s default --parallel 2'}), once per N`, '');
    row(['N', 'moved', 'total (whole command)', 'slowest downtime', 'median downtime', 'answering after', 'load']);
    row(['---:', '---:', '---:', '---:', '---:', '---:', '---:']);
    for (const e of es) {
      row([e.n, `${e.moved}/${e.n}${e.ok ? '' : ` FAILED: ${e.error ?? ''}`}`, fmt(e.totalS, 1, ' s'),
        fmt(e.downtimesMs.length ? Math.max(...e.downtimesMs) : undefined, 0, ' ms'), fmt(median(e.downtimesMs), 0, ' ms'),
        e.answering === undefined ? '—' : `${e.answering}/${e.n}`, e.load.toFixed(2)]);
    }
  }
  lines.push('', ...Object.entries(facts).map(([k, v]) => `- ${k}: ${v}`));
  return lines.join('\n');
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const o = options();
  const migrations: Migration[] = [];
  const evacuations: Evacuation[] = [];
  const started = new Date().toISOString();
  const facts: Record<string, string> = {
    ...machineFacts(), accel: 'TCG (libvirt domain type qemu; no KVM)',
    'load stream': `${o.rate} GET/s open loop, ${o.requestTimeoutMs} ms timeout per request, from ${MARGIN_MS / 1000} s before to ${MARGIN_MS / 1000} s after the migration`,
  };
  try {
    await requireTools(['virsh', 'libvirtd', 'virtlogd', 'unshare', 'qemu-system-x86_64', 'qemu-img']);
    const w = await makeWorld(o);
    facts.versions = (await run('virsh', ['-c', URI, 'version'])).split('\n').filter((l) => /library|hypervisor/i.test(l)).map((l) => l.trim()).join('; ');

    // ---- one guest, migrated back and forth
    const guest = `${w.prefix}-m`;
    log(`kumo instance create ${guest} --host local`);
    await createInstance(w, guest, 'local');
    const ip = await waitInstance(w, guest, o.timeoutS);
    log(`${guest} answers at ${ip}; warm-up migration there and back (not measured)`);
    let where = 'local';
    const other = () => (where === 'local' ? w.kvm2 : 'local');
    for (let i = 0; i < 2; i++) {
      await migrateOnce(w, guest, other());
      where = other();
    }
    await sleep(2_000);
    for (let i = 1; i <= o.runs; i++) {
      // Alternate the order (and so the direction) so neither kind always goes the same way.
      const kinds = i % 2 ? (['idle', 'loaded'] as const) : (['loaded', 'idle'] as const);
      for (const kind of kinds) {
        log(`run ${i}/${o.runs}: ${kind} ${where} -> ${other()}`);
        const m = await measureMigration(w, o, guest, ip, kind, i, where, other());
        migrations.push(m);
        if (!m.ok) {
          log(`  FAILED: ${m.error}`);
          // kumo leaves the guest where it was on failure; ask where that is.
          const onKvm2 = (await w.virsh2.listDomains()).some((d) => d.name === guest);
          where = onKvm2 ? w.kvm2 : 'local';
          continue;
        }
        where = m.to;
        const s = m.stream;
        log(`  ${m.durationS} s, downtime ${m.downtimeMs ?? '?'} ms, command ${m.commandS?.toFixed(2)} s` +
          (s ? `; ${s.ok} ok / ${s.failed} failed, longest gap ${s.longestGapMs.toFixed(0)} ms, slowest ${s.slowestMs.toFixed(0)} ms` : ''));
        await sleep(2_000);
      }
    }
    log(`deleting ${guest}`);
    await deleteInstances(w, [guest]);

    // ---- evacuations
    for (const n of o.sizes) {
      log(`evacuation of ${n}: creating ${n} guest(s) on ${w.kvm2}`);
      const e = await measureEvacuation(w, o, n);
      evacuations.push(e);
      log(e.ok ? `  ${e.moved} moved in ${e.totalS?.toFixed(1)} s, slowest downtime ${Math.max(...e.downtimesMs, 0)} ms, ${e.answering}/${n} answer`
        : `  FAILED: ${e.error}`);
    }
    facts['load at end'] = loadNow();
    const text = report(migrations, evacuations, o, facts);
    console.log(text);
    if (o.json) await writeFile(o.json, JSON.stringify({ started, options: o, facts, migrations, evacuations }, null, 2));
    return migrations.every((m) => m.ok) && evacuations.every((e) => e.ok) ? 0 : 1;
  } catch (e) {
    log(`error: ${(e as Error).message}`);
    if (migrations.length || evacuations.length) console.log(report(migrations, evacuations, o, facts));
    return 1;
  } finally {
    log('cleaning up');
    await cleanup();
  }
}

process.exitCode = await main();
