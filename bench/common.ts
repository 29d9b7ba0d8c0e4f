import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rm } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { local, type RunOptions } from '../src/exec/exec.js';
import { buildNetworkXml } from '../src/drivers/libvirt/network-xml.js';
import type { Virsh } from '../src/drivers/libvirt/virsh.js';
import { freeSubnet, runCli } from '../test/helpers/env.js';

/**
 * What every benchmark in bench/ shares: its options, logging, commands and the CLI, clocks,
 * medians, cleanup, its own folder and network. The CLI runner, sleep and the free subnet are the tests'.
 */

export { CLI, freeSubnet, runCli } from '../test/helpers/env.js';
export { sleep } from '../src/exec/process.js';
export { freePort } from '../test/helpers/lab.js';

/** The shared build cache (the tiny image is built once for every run). */
export const KUMO_CACHE = process.env.KUMO_CACHE ?? '/var/lib/kumo/cache';

export const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return (await local.run(cmd, args, { timeoutMs: 600_000, ...opts })).stdout;
}

/** `kumo ARGS` in the bench's home; its output, or a failure with its stderr. */
export async function kumo(cliEnv: NodeJS.ProcessEnv, args: string[], timeoutMs = 600_000): Promise<string> {
  return (await runCli(args, { env: cliEnv, timeoutMs })).stdout;
}

export const now = () => performance.now();

/** A number for a report's table, or a dash when there is none. */
export const fmt = (v: number | undefined, digits = 1, unit = '') => (v === undefined || Number.isNaN(v) ? '—' : `${v.toFixed(digits)}${unit}`);

/** Fails with the package hint when a tool the benchmark drives is not installed. */
export async function requireTools(tools: string[]): Promise<void> {
  for (const tool of tools) {
    const r = await local.run('sh', ['-c', 'command -v "$1"', 'sh', tool], { allowFailure: true });
    if (r.code !== 0) throw new Error(`${tool} is not installed (see bench/README.md for the packages)`);
  }
}

/** The 1-minute load average, recorded with each measurement. */
export const load1 = () => loadavg()[0]!;

/** The load averages, as a report shows them. */
export const loadNow = () => loadavg().map((l) => l.toFixed(2)).join(' ');

/** What every report says about the machine it ran on. */
export function machineFacts(): Record<string, string> {
  return { cpus: String(cpus().length), memory: `${Math.round(totalmem() / 2 ** 30)} GiB`, 'load at start': loadNow() };
}

export function median(xs: number[]): number | undefined {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Undo steps, run last-in first-out by cleanup(); each one is allowed to fail on its own. */
export const undo: { what: string; fn: () => Promise<unknown> }[] = [];
let cleanedUp: Promise<void> | undefined;

export function cleanup(): Promise<void> {
  cleanedUp ??= (async () => {
    while (undo.length) {
      const step = undo.pop()!;
      try {
        await step.fn();
      } catch (e) {
        log(`cleanup: ${step.what} failed: ${(e as Error).message.split('\n')[0]}`);
      }
    }
  })();
  return cleanedUp;
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    log(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

/**
 * The bench's own folder: a per-run prefix (`letters` + 4 hex digits), WORKDIR/kumo-bench-PREFIX
 * (removed by cleanup) with a private KUMO_HOME, and the CLI's environment over it.
 */
export async function benchFolder(letters: string, workdir: string): Promise<{ prefix: string; dir: string; home: string; cliEnv: NodeJS.ProcessEnv }> {
  const prefix = `${letters}${randomBytes(2).toString('hex')}`;
  await mkdir(workdir, { recursive: true });
  const dir = join(workdir, `kumo-bench-${prefix}`);
  await mkdir(dir);
  undo.push({ what: `remove ${dir}`, fn: () => rm(dir, { recursive: true, force: true }) });
  await chmod(dir, 0o755); // QEMU runs as libvirt-qemu and must reach the disks inside
  const home = join(dir, 'kumo-home');
  await mkdir(home, { mode: 0o755 });
  await chmod(home, 0o755);
  return { prefix, dir, home, cliEnv: { ...process.env, KUMO_HOME: home, KUMO_CACHE, LANG: 'C.UTF-8' } };
}

/**
 * An isolated libvirt network PREFIX-net on bridge PREFIXbr, on a free 192.168.2xx.0/24 with
 * DHCP .10-.250, removed by cleanup; kumo's own network XML (dnsmasq's no-ping, as every kumo network has).
 */
export async function isolatedNetwork(virsh: Virsh, prefix: string): Promise<{ network: string; bridge: string; third: number }> {
  const network = `${prefix}-net`;
  const bridge = `${prefix}br`;
  const third = await freeSubnet(virsh);
  await virsh.defineNetwork(buildNetworkXml({
    name: network, mode: 'isolated', bridge,
    ipv4: { address: `192.168.${third}.1`, prefix: 24, dhcp: { start: `192.168.${third}.10`, end: `192.168.${third}.250` } },
  }));
  undo.push({ what: `remove network ${network}`, fn: () => virsh.removeNetwork(network) });
  await virsh.startNetwork(network);
  return { network, bridge, third };
}

// ---------------------------------------------------------------- options

/**
 * One command-line option of a bench script, by kind: a whole number from `min` to `max` (no
 * upper bound without one), a comma-separated list of them (`sort`: ascending; `none`: "" or
 * "none" is the empty list), free text, or a flag. `bare`: the value an option takes when it is
 * given without one (last, or right before another option), as `--json` alone names a default file.
 */
export type BenchOption =
  | { readonly kind: 'whole'; readonly min: number; readonly max?: number; readonly default?: number }
  | { readonly kind: 'wholes'; readonly min: number; readonly max?: number; readonly default?: readonly number[]; readonly sort?: boolean; readonly none?: boolean; readonly bare?: string }
  | { readonly kind: 'text'; readonly default?: string; readonly bare?: string }
  | { readonly kind: 'flag' };

/** A script's options by name, without the dashes (`'event-rounds'` is `--event-rounds`); `help` is every script's own. */
export type BenchSpec = { readonly [name: string]: BenchOption };

type BenchValue<O> = O extends { kind: 'whole' } ? number : O extends { kind: 'wholes' } ? number[] : O extends { kind: 'text' } ? string : boolean;

/** What benchOptions answers: each option's value; undefined only for a number, list or text that has no default and was not given. */
export type BenchValues<S extends BenchSpec> = {
  -readonly [K in keyof S]: S[K] extends { kind: 'flag' } | { default: unknown } ? BenchValue<S[K]> : BenchValue<S[K]> | undefined;
};

/** A mistake on a bench's command line; its message says what is wrong, then the script's usage. */
export class BenchArgsError extends Error {
  constructor(readonly problem: string, usage: string) {
    super(`${problem}\n${usage}`);
    this.name = 'BenchArgsError';
  }
}

const isWhole = (raw: string, min: number, max = Infinity) => {
  const n = raw.trim() === '' ? NaN : Number(raw);
  return Number.isInteger(n) && n >= min && n <= max ? n : undefined;
};
const bounds = (min: number, max?: number) => (max === undefined ? `of at least ${min}` : `from ${min} to ${max}`);

/**
 * The options of a bench script from its arguments (process.argv.slice(2)), read by node:util's
 * parseArgs in strict mode: an unknown option, an argument that is no option and a missing value
 * are mistakes, as is a number out of its bounds; every mistake is a BenchArgsError naming the
 * option, with the usage. 'help' when --help or -h was given (the script prints the usage).
 * `--name value` and `--name=value` are the same; a value may start with a dash only as a
 * negative number (`--warmup -1` is then out of bounds, not a missing value).
 */
export function benchOptions<const S extends BenchSpec>(argv: readonly string[], spec: S, usage: string): BenchValues<S> | 'help' {
  const fail = (problem: string): never => { throw new BenchArgsError(problem, usage); };
  if ('help' in spec) throw new Error('"help" is every bench script\'s own option');
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, o] of Object.entries(spec)) options[name] = { type: o.kind === 'flag' ? 'boolean' : 'string' };

  // What parseArgs cannot say on its own: a value that is a negative number, an option's bare value, and which option lacks one.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') { args.push(...argv.slice(i)); break; }
    const name = a.startsWith('--') && !a.includes('=') ? a.slice(2) : '';
    const o = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (!o || o.kind === 'flag') { args.push(a); continue; }
    const next = argv[i + 1];
    if (next !== undefined && (!next.startsWith('-') || /^-\d/.test(next))) { args.push(`${a}=${next}`); i++; }
    else if ('bare' in o && o.bare !== undefined) args.push(`${a}=${o.bare}`);
    else fail(`${a} needs a value`);
  }

  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args, options, strict: true, allowPositionals: false }));
  } catch (e) {
    const { code, message } = e as { code?: string; message: string };
    const quoted = /'([^']*)'/.exec(message)?.[1]?.replace(/ <value>$/, '') ?? '';
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') fail(`unknown option ${quoted}`);
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') fail(`unexpected argument "${quoted}"`);
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') fail(message.includes('does not take') ? `${quoted} takes no value` : `${quoted} needs a value`);
    throw e;
  }
  if (values.help) return 'help';

  const out: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(spec)) {
    const raw = values[name];
    const flag = `--${name}`;
    if (o.kind === 'flag') { out[name] = raw === true; continue; }
    if (raw === undefined || typeof raw === 'boolean') {
      out[name] = o.kind === 'wholes' && o.default ? [...o.default] : o.default;
      continue;
    }
    if (o.kind === 'text') {
      out[name] = raw === '' ? fail(`${flag} needs a value`) : raw;
    } else if (o.kind === 'whole') {
      out[name] = isWhole(raw, o.min, o.max) ?? fail(`${flag} must be a whole number ${bounds(o.min, o.max)}, got "${raw}"`);
    } else if (o.none && (raw.trim() === '' || raw.trim() === 'none')) {
      out[name] = [];
    } else {
      const list = raw.split(',').map((x) => isWhole(x, o.min, o.max) ?? fail(`${flag} must be a whole number ${bounds(o.min, o.max)}, got "${x}"`));
      out[name] = o.sort ? list.sort((x, y) => x - y) : list;
    }
  }
  return out as BenchValues<S>;
}

/**
 * A bench script's options from its command line, as benchOptions reads them, then `then`
 * (the script's own checks may throw a BenchArgsError too): with --help the usage is printed
 * and the script exits 0; after a mistake it prints what is wrong and the usage, and exits 2.
 */
export function scriptOptions<const S extends BenchSpec, T>(spec: S, usage: string, then: (v: BenchValues<S>) => T): T {
  try {
    const v = benchOptions(process.argv.slice(2), spec, usage);
    if (v === 'help') {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    }
    return then(v);
  } catch (e) {
    if (!(e instanceof BenchArgsError)) throw e;
    process.stderr.write(`${e.message}\n`);
    process.exit(2);
  }
}

/** The course page from a keep-alive HTTP/1.1 server: fast, so that a proxy's own cost shows (it reads any body, answers 200 to everything). */
const PAGE_BACKEND_JS = `
const http = require('node:http');
const page = '<h1>kumo course datacenter</h1>\\n<p>served by the instances from STG\\'s shared folder, through the load balancer.</p>\\n';
http.createServer((req, res) => { req.resume(); res.setHeader('Content-Type', 'text/html'); res.end(page); }).listen(Number(process.argv[1]), '127.0.0.1');
`;

/** Starts that backend on 127.0.0.1:PORT in the network namespace; the caller stops it (SIGKILL). */
export function startPageBackend(ns: string, port: number): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', PAGE_BACKEND_JS, String(port)], { stdio: 'ignore' });
}
