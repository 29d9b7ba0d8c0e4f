#!/usr/bin/env node
/**
 * CLI start-up benchmark: `node -e 0` (Node's own start, the yardstick) side by side with
 * `kumo --version`, `kumo --help` and `kumo instance list` (an empty KUMO_HOME), each from the
 * bundle that ships (dist/bin/kumo.js) and from the file-by-file build of the same sources
 * (dist/src/cli/main.js), and the same three of another build given with --baseline (an older
 * checkout's dist/src/cli/main.js, for a before/after).
 *
 *   node dist/bench/startup.js [--runs N] [--warmup W] [--baseline FILE] [--json FILE]
 *
 * Every round runs each command once, in an order that rotates per round, so a drift of the
 * machine's speed reaches them all alike; a command's ratio is taken round by round against
 * `node -e 0` of the same round. The per-run KUMO_HOME is removed at the end, pass or fail.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { cleanup, CLI, fmt, log, machineFacts, median, scriptOptions, undo } from './common.js';

interface Options { runs: number; warmup: number; baseline?: string; json?: string }

function usage(): string {
  return `usage: node dist/bench/startup.js [options]
  --runs N          measured rounds (default 30; medians and spread reported)
  --warmup W        rounds first run and not counted (default 3)
  --baseline FILE   another build's CLI entry to time too (e.g. an older checkout's dist/src/cli/main.js)
  --json FILE       also write every run to FILE`;
}

const options = (): Options => scriptOptions({
  runs: { kind: 'whole', min: 1, max: 1000, default: 30 },
  warmup: { kind: 'whole', min: 0, max: 100, default: 3 },
  baseline: { kind: 'text' },
  json: { kind: 'text' },
}, usage(), (v) => v);

interface Subject { label: string; args: string[] }

/** The file-by-file build of these sources: dist/bench/ → dist/src/cli/main.js. */
const FILE_BY_FILE = join(import.meta.dirname, '../src/cli/main.js');

function subjects(o: Options): Subject[] {
  const list: Subject[] = [{ label: 'node -e 0', args: ['-e', '0'] }];
  for (const [what, args] of [['--version', ['--version']], ['--help', ['--help']], ['instance list', ['instance', 'list']]] as const) {
    list.push({ label: `kumo ${what} (bundle)`, args: [CLI, ...args] });
    list.push({ label: `kumo ${what} (file by file)`, args: [FILE_BY_FILE, ...args] });
  }
  if (o.baseline) {
    for (const [what, args] of [['--version', ['--version']], ['--help', ['--help']], ['instance list', ['instance', 'list']]] as const) {
      list.push({ label: `kumo ${what} (baseline)`, args: [o.baseline, ...args] });
    }
  }
  return list;
}

/** One run's wall time in ms; a failed run stops the benchmark (a figure of an error is no figure). */
function timeOnce(s: Subject, env: NodeJS.ProcessEnv): number {
  const start = performance.now();
  const r = spawnSync(process.execPath, s.args, { env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 * 1024 * 1024 });
  const ms = performance.now() - start;
  if (r.status !== 0) throw new Error(`${s.label} exited ${r.status ?? r.signal}: ${String(r.stderr).trim().split('\n')[0]}`);
  return ms;
}

const spread = (xs: number[]) => `${fmt(Math.min(...xs), 2)}–${fmt(Math.max(...xs), 2)}`;
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

async function main(): Promise<void> {
  const o = options();
  for (const f of [CLI, FILE_BY_FILE, ...(o.baseline ? [o.baseline] : [])]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: run npm run build first`);
  }
  const home = await mkdtemp(join(tmpdir(), 'kumo-bench-startup-'));
  undo.push({ what: `remove ${home}`, fn: () => rm(home, { recursive: true, force: true }) });
  // libvirt's test driver: `instance list` of an empty home must not depend on a daemon.
  const env = { ...process.env, KUMO_HOME: home, KUMO_LIBVIRT_URI: 'test:///default', LANG: 'C.UTF-8' };
  const list = subjects(o);
  log(`${list.length} commands, ${o.warmup} warm-up + ${o.runs} measured rounds; ${Object.entries(machineFacts()).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  const ms = new Map(list.map((s) => [s.label, [] as number[]]));
  const ratios = new Map(list.map((s) => [s.label, [] as number[]]));
  for (let round = 0; round < o.warmup + o.runs; round++) {
    const times = new Map<string, number>();
    // Rotate the order: no command always runs first (or right after another one).
    for (let k = 0; k < list.length; k++) {
      const s = list[(k + round) % list.length]!;
      times.set(s.label, timeOnce(s, env));
    }
    if (round < o.warmup) continue;
    const yardstick = times.get('node -e 0')!;
    for (const [label, t] of times) {
      ms.get(label)!.push(t);
      ratios.get(label)!.push(t / yardstick);
    }
  }
  console.log(`\nCLI start-up, wall time, ${o.runs} rounds (each command once per round, order rotating); ratio = the command / node -e 0 of the same round\n`);
  console.log('| command | median ms | p10–p90 ms | ratio median | ratio min–max |');
  console.log('|---|---:|---:|---:|---:|');
  const report: Record<string, unknown> = { machine: machineFacts(), runs: o.runs, commands: {} };
  for (const s of list) {
    const t = ms.get(s.label)!;
    const r = ratios.get(s.label)!;
    console.log(`| ${s.label} | ${fmt(median(t), 0)} | ${fmt(quantile(t, 0.1), 0)}–${fmt(quantile(t, 0.9), 0)} | ${fmt(median(r), 2)}× | ${spread(r)} |`);
    (report.commands as Record<string, unknown>)[s.label] = { medianMs: median(t), ratioMedian: median(r), ms: t, ratios: r };
  }
  if (o.json) await writeFile(o.json, `${JSON.stringify(report, null, 2)}\n`);
}

main().then(() => cleanup(), async (e: Error) => {
  log(`failed: ${e.message}`);
  await cleanup();
  process.exitCode = 1;
});
