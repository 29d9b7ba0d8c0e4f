#!/usr/bin/env node
/**
 * Host failure recovery benchmark (issue 18): the course lab with two HA instances on kvm1 and
 * one on kvm2 behind the LB, `kumo ha run --interval 1 --misses 3` watching. Each round kvm1
 * loses power (every process of its node SIGKILLed: libvirtd, virtlogd, the guests' QEMUs) while
 * the outside polls the website through the LB every 100 ms; measured from the kill: kvm1 DOWN,
 * fenced, its HA instances restarted on kvm2, their first HTTP answer (on their old addresses),
 * and the LB's failed requests. Then kvm1 comes back (`kumo lab up`), rejoins, and the
 * instances live-migrate back to it for the next round.
 *
 *   node dist/bench/ha-recovery.js [--rounds N] [--timeout SECONDS] [--json FILE]
 *
 * Everything it makes carries a per-run prefix (lab, namespaces, instances) or lives in one
 * per-run folder, and is removed at the end, pass or fail (also on Ctrl+C). See bench/README.md.
 */
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { COURSE_LAB } from '../src/model/lab.js';
import type { Instance } from '../src/model/types.js';
import { getInNetns, pollHttpInNetns, type PollStats } from '../test/helpers/lab.js';
import { firstAnswer, ms, powerOff, startWatcher, type HostHa } from '../test/helpers/ha.js';
import { benchFolder, cleanup, fmt, kumo, load1, log, loadNow, machineFacts, median, requireTools, scriptOptions, sleep, undo } from './common.js';

interface Options {
  rounds: number;
  /** Longest wait for the HA instances to answer again after a kill (s). */
  timeoutS: number;
  workdir: string;
  json?: string;
}

function usage(): string {
  return `usage: node dist/bench/ha-recovery.js [options]
  --rounds N          power losses of kvm1 (default 3); medians and spread reported
  --timeout SECONDS   longest wait for the HA instances to answer again after a kill (default 180)
  --workdir DIR       where the per-run folder is made (default /var/tmp)
  --json FILE         also write every raw measurement to FILE`;
}

const options = (): Options => scriptOptions({
  rounds: { kind: 'whole', min: 1, max: 20, default: 3 },
  timeout: { kind: 'whole', min: 30, max: 1_800, default: 180 },
  workdir: { kind: 'text', default: '/var/tmp', bare: '.' },
  json: { kind: 'text', bare: 'bench.json' },
}, usage(), (v) => ({ rounds: v.rounds, timeoutS: v.timeout, workdir: resolve(v.workdir), json: v.json === undefined ? undefined : resolve(v.json) }));

interface World {
  prefix: string;
  cliEnv: NodeJS.ProcessEnv;
  labFile: string;
  /** The HA instances on kvm1 (they move), and the one on kvm2 that keeps the site up. */
  movers: string[];
  stayer: string;
  /** Their backend addresses, which must not change. */
  ips: Map<string, string>;
}

interface Round {
  round: number;
  ok: boolean;
  error?: string;
  load: number;
  /** ms from the kill. */
  downMs?: number;
  fencedMs?: number;
  /** The later of the two restarts (kumo's record of the move). */
  restartedMs?: number;
  /** The later of the two instances' first answers on their old address. */
  answerMs?: number;
  lb?: PollStats;
  /** `kumo lab up` of kvm1 until kumo says it rejoined (ms). */
  rejoinMs?: number;
}

const ns = (w: World, node: string) => `${w.prefix}-${node}`;
const show = async <T>(w: World, what: string, name: string) => JSON.parse(await kumo(w.cliEnv, [what, 'show', name, '--json'])) as T;
const hostHa = async (w: World, name: string) => (await show<{ ha: HostHa }>(w, 'host', name)).ha;

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** The lab, the image, three HA instances (two on kvm1, one on kvm2), the LB in front of them. */
async function makeWorld(o: Options): Promise<World> {
  const { prefix, dir, cliEnv } = await benchFolder('kh', o.workdir);
  const labFile = join(dir, 'lab.yaml');
  await writeFile(labFile, stringify({ ...COURSE_LAB, name: prefix }));
  undo.push({ what: 'kumo lab down', fn: () => kumo(cliEnv, ['lab', 'down'], 600_000) });
  log(`run ${prefix} in ${dir}: kumo lab up, image build tiny`);
  await kumo(cliEnv, ['lab', 'up', labFile], 600_000);
  await kumo(cliEnv, ['image', 'build', 'tiny'], 1_800_000);
  const w: World = { prefix, cliEnv, labFile, movers: [`${prefix}-a1`, `${prefix}-a2`], stayer: `${prefix}-b`, ips: new Map() };
  for (const [name, host] of [[w.movers[0]!, 'kvm1'], [w.movers[1]!, 'kvm1'], [w.stayer, 'kvm2']] as const) {
    log(`kumo instance create ${name} --host ${host} --ha`);
    await kumo(cliEnv, ['instance', 'create', name, '--image', 'tiny', '--flavor', 'small', '--password', 'test123', '--network', 'backend', '--host', host, '--ha']);
  }
  for (const name of [...w.movers, w.stayer]) {
    await kumo(cliEnv, ['instance', 'wait', name, '--timeout', String(o.timeoutS)], (o.timeoutS + 60) * 1000);
    const i = await show<Instance>(w, 'instance', name);
    w.ips.set(name, i.nics.find((x) => x.network === 'backend')!.ipv4!);
  }
  await kumo(cliEnv, ['lb', 'create', 'front', '--host', 'lb', '--frontend', '10.5.1.213:80', '--network', 'backend',
    ...[...w.movers, w.stayer].flatMap((x) => ['--instance', x])]);
  await siteServedBy(w, [...w.movers, w.stayer], 60_000);
  return w;
}

/** GETs the site from the outside until each of `want` answered (HAProxy's X-Kumo-Backend). */
async function siteServedBy(w: World, want: string[], timeoutMs: number): Promise<void> {
  const seen = new Set<string>();
  await waitFor(`${want.join(', ')} through the LB`, async () => {
    const r = await getInNetns(ns(w, 'internet'), 'http://10.5.1.213/');
    if (r.status === 200) seen.add(r.backend);
    return want.every((x) => seen.has(x)) ? true : undefined;
  }, timeoutMs);
}

/** One power loss of kvm1 and its recovery, then kvm1 back and the movers home again. */
async function measureRound(w: World, o: Options, round: number): Promise<Round> {
  const r: Round = { round, ok: false, load: load1() };
  const poll = pollHttpInNetns(ns(w, 'internet'), 'http://10.5.1.213/', 100, 5_000);
  let polling = true;
  try {
    await siteServedBy(w, [...w.movers, w.stayer], 30_000);
    const { at } = await powerOff(ns(w, 'kvm1'), 'everything');
    const answers = await Promise.all(w.movers.map((name) => firstAnswer(ns(w, 'lb'), w.ips.get(name)!, name, o.timeoutS * 1000)));
    if (answers.some((a) => a === undefined)) throw new Error(`an HA instance did not answer within ${o.timeoutS} s`);
    r.answerMs = Math.max(...answers.map((a) => a! - at));
    const ha = await waitFor('kvm1 fenced', async () => { const h = await hostHa(w, 'kvm1'); return h.state === 'fenced' ? h : undefined; }, 60_000);
    r.downMs = ms(ha.downAt) - at;
    r.fencedMs = ms(ha.fencedAt) - at;
    r.restartedMs = Math.max(...ha.moved.filter((m) => ms(m.at) >= at - 1_000).map((m) => ms(m.at) - at));
    // The LB takes them back by itself (same addresses); then a few more seconds of polling.
    await siteServedBy(w, [...w.movers, w.stayer], 60_000);
    await sleep(3_000);
    r.lb = await poll.stop();
    polling = false;
    const t0 = Date.now();
    await kumo(w.cliEnv, ['lab', 'up', w.labFile], 600_000);
    await waitFor('kvm1 rejoined', async () => ((await hostHa(w, 'kvm1')).state === 'up' ? true : undefined), 120_000);
    r.rejoinMs = Date.now() - t0;
    for (const name of w.movers) await kumo(w.cliEnv, ['instance', 'migrate', name, '--to', 'kvm1'], 300_000);
    r.ok = true;
  } catch (e) {
    r.error = (e as Error).message.split('\n')[0];
  } finally {
    if (polling) r.lb = await poll.stop();
  }
  return r;
}

function report(rounds: Round[], facts: Record<string, string>): string {
  const lines: string[] = [];
  const row = (cells: unknown[]) => lines.push(`| ${cells.map(String).join(' | ')} |`);
  const good = rounds.filter((r) => r.ok);
  const stat = (f: (r: Round) => number | undefined) => {
    const xs = good.map(f).filter((x): x is number => x !== undefined).map((x) => x / 1000);
    return xs.length ? `${fmt(median(xs), 1, ' s')} (${fmt(Math.min(...xs), 1)}–${fmt(Math.max(...xs), 1)})` : '—';
  };
  lines.push(`Host failure recovery, ${good.length} of ${rounds.length} rounds measured (median, min–max, from the kill):`, '');
  row(['kill → DOWN', 'kill → fenced', 'kill → restarted on kvm2', 'kill → first HTTP answer', 'LB requests failed (total)', 'kvm1 lab up → rejoined']);
  row(['---:', '---:', '---:', '---:', '---:', '---:']);
  row([stat((r) => r.downMs), stat((r) => r.fencedMs), stat((r) => r.restartedMs), stat((r) => r.answerMs),
    `${rounds.reduce((n, r) => n + (r.lb?.failed ?? 0), 0)} of ${rounds.reduce((n, r) => n + (r.lb?.requests ?? 0), 0)}`, stat((r) => r.rejoinMs)]);
  lines.push('', 'Every round:', '');
  row(['round', 'DOWN', 'fenced', 'restarted', 'first answer', 'LB failed / requests', 'LB longest gap', 'rejoin', 'load']);
  row(['---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']);
  const s = (x: number | undefined) => fmt(x === undefined ? undefined : x / 1000, 1, ' s');
  for (const r of rounds) {
    row([r.round, r.ok ? s(r.downMs) : `FAILED: ${r.error ?? ''}`, s(r.fencedMs), s(r.restartedMs), s(r.answerMs),
      r.lb ? `${r.lb.failed} / ${r.lb.requests}` : '—', r.lb ? `${r.lb.longestGapMs} ms` : '—', s(r.rejoinMs), r.load.toFixed(2)]);
  }
  lines.push('', ...Object.entries(facts).map(([k, v]) => `- ${k}: ${v}`));
  return lines.join('\n');
}

async function main(): Promise<number> {
  const o = options();
  const rounds: Round[] = [];
  const started = new Date().toISOString();
  const facts: Record<string, string> = { ...machineFacts(), watcher: 'kumo ha run --interval 1 --misses 3', poll: 'GET http://10.5.1.213/ from the lab\'s internet node every 100 ms, 5 s timeout' };
  try {
    await requireTools(['virsh', 'libvirtd', 'qemu-system-x86_64', 'haproxy', 'curl', 'ip']);
    const w = await makeWorld(o);
    const watcher = startWatcher(w.cliEnv);
    undo.push({ what: 'stop kumo ha run', fn: () => watcher.stop() });
    await sleep(3_000);
    for (let i = 1; i <= o.rounds; i++) {
      log(`round ${i}: kvm1 loses power`);
      const r = await measureRound(w, o, i);
      rounds.push(r);
      log(r.ok ? `  DOWN ${s1(r.downMs)}, fenced ${s1(r.fencedMs)}, restarted ${s1(r.restartedMs)}, answered ${s1(r.answerMs)}; LB failed ${r.lb?.failed}/${r.lb?.requests}`
        : `  FAILED: ${r.error}\n${watcher.output().split('\n').slice(-20).join('\n')}`);
      if (!r.ok) break; // the lab is in an unknown state: the next round would measure that
    }
    facts['load at end'] = loadNow();
    console.log(report(rounds, facts));
    if (o.json) await writeFile(o.json, JSON.stringify({ started, options: o, facts, rounds }, null, 2));
    return rounds.length === o.rounds && rounds.every((r) => r.ok) ? 0 : 1;
  } catch (e) {
    log(`error: ${(e as Error).message}`);
    if (rounds.length) console.log(report(rounds, facts));
    return 1;
  } finally {
    log('cleaning up');
    await cleanup();
  }
}

const s1 = (x: number | undefined) => fmt(x === undefined ? undefined : x / 1000, 1, ' s');

process.exitCode = await main();
