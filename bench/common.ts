import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rm } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { local, type RunOptions } from '../src/exec/exec.js';
import { buildNetworkXml } from '../src/drivers/libvirt/network-xml.js';
import type { Virsh } from '../src/drivers/libvirt/virsh.js';
import { freeSubnet, runCli } from '../test/helpers/env.js';

/**
 * What every benchmark in bench/ shares: logging, commands and the CLI, clocks, medians,
 * cleanup, its own folder and network. The CLI runner, sleep and the free subnet are the tests'.
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
