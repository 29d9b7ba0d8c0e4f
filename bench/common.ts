import { cpus, loadavg, totalmem } from 'node:os';
import { local, type RunOptions } from '../src/exec/exec.js';
import type { Virsh } from '../src/drivers/libvirt/virsh.js';

/** What every benchmark in bench/ shares: logging, commands, medians, cleanup, a free subnet. */

export const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return (await local.run(cmd, args, { timeoutMs: 600_000, ...opts })).stdout;
}

/** Fails with the package hint when a tool the benchmark drives is not installed. */
export async function requireTools(tools: string[]): Promise<void> {
  for (const tool of tools) {
    const r = await local.run('sh', ['-c', 'command -v "$1"', 'sh', tool], { allowFailure: true });
    if (r.code !== 0) throw new Error(`${tool} is not installed (see bench/README.md for the packages)`);
  }
}

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

/** A 192.168.2xx.0/24 that no route and no libvirt network on this machine uses. */
export async function freeSubnet(virsh: Virsh): Promise<number> {
  const used = new Set<number>();
  const routes = await run('ip', ['-4', 'route', 'show']);
  for (const m of routes.matchAll(/192\.168\.(\d+)\./g)) used.add(Number(m[1]));
  for (const n of await virsh.listNetworks()) {
    const xml = (await virsh.networkXml(n.name)) ?? '';
    for (const m of xml.matchAll(/192\.168\.(\d+)\./g)) used.add(Number(m[1]));
  }
  const free = Array.from({ length: 50 }, (_, i) => 200 + i).filter((t) => !used.has(t));
  if (!free.length) throw new Error('no free 192.168.2xx.0/24 subnet for the bench network');
  return free[Math.floor(Math.random() * free.length)]!;
}
