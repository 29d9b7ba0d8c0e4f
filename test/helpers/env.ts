import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { local, type RunOptions } from '../../src/exec/exec.js';
import { sleep } from '../../src/exec/process.js';
import { openContext, type Context } from '../../src/service/context.js';
import { buildNetworkXml } from '../../src/drivers/libvirt/network-xml.js';
import { Virsh } from '../../src/drivers/libvirt/virsh.js';

/**
 * A test's own world: a per-run name prefix, its own KUMO_HOME, and an isolated libvirt
 * network on a bridge it makes, so tests never touch anything they did not create.
 * The tiny image's build cache is shared across runs (KUMO_TEST_CACHE).
 */
export interface TestEnv {
  prefix: string;
  home: string;
  network: string;
  ctx: Context;
  /** Runs the CLI as a user would, in this environment. */
  /** `env`: variables added to the run's (a fault test's KUMO_TEST_DIE_AT). */
  cli(args: string[], opts?: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<{ code: number; stdout: string; stderr: string }>;
  cliEnv: NodeJS.ProcessEnv;
  cleanup(): Promise<void>;
}

/** The CLI as it ships (package.json's bin): the bundle `npm run build` makes (scripts/build-cli.mjs). */
export const CLI = join(import.meta.dirname, '../../bin/kumo.js');

/** Tests run what ships: a missing bundle is said, not quietly replaced by the file-by-file build. */
export function requireBundledCli(): void {
  if (!existsSync(CLI)) throw new Error(`the bundled CLI ${CLI} is missing: run npm run build (or npm run build:cli after tsc)`);
}
export const testCache = () => process.env.KUMO_TEST_CACHE ?? '/var/lib/kumo/cache';

/** Runs the built CLI as a user would (`node dist/bin/kumo.js ARGS`); tests and benchmarks alike. */
export function runCli(args: string[], opts: RunOptions = {}) {
  requireBundledCli();
  return local.run('node', [CLI, ...args], opts);
}

/**
 * A /24 in 192.168.200-249 that no route and no libvirt network on this machine uses (a
 * defined but inactive network has no route yet); tests and benchmarks alike.
 */
export async function freeSubnet(virsh = new Virsh('qemu:///system')): Promise<number> {
  const used = new Set<number>();
  const routes = (await local.run('ip', ['-4', 'route', 'show'])).stdout;
  for (const m of routes.matchAll(/192\.168\.(\d+)\./g)) used.add(Number(m[1]));
  for (const n of await virsh.listNetworks()) {
    const xml = (await virsh.networkXml(n.name)) ?? '';
    for (const m of xml.matchAll(/192\.168\.(\d+)\./g)) used.add(Number(m[1]));
  }
  const free = Array.from({ length: 50 }, (_, i) => 200 + i).filter((t) => !used.has(t));
  if (!free.length) throw new Error('no free 192.168.2xx.0/24 subnet (routes and libvirt networks use all of 200-249)');
  return free[Math.floor(Math.random() * free.length)]!;
}

/**
 * `mountHome`: puts a filesystem of the test's own on the home before anything is written there
 * (a small tmpfs that a test fills); what it returns unmounts it, at cleanup, before the home goes.
 */
export async function makeTestEnv(label: string, opts: { mountHome?: (home: string) => Promise<() => Promise<void>> } = {}): Promise<TestEnv> {
  requireBundledCli();
  const prefix = `kt${randomBytes(2).toString('hex')}${label}`.slice(0, 12);
  const home = await mkdtemp(`/tmp/kumo-test-${prefix}-`);
  const network = `${prefix}-net`;
  const virsh = new Virsh('qemu:///system');
  let unmount: (() => Promise<void>) | undefined;
  let ctx: Context | undefined;
  try {
    unmount = await opts.mountHome?.(home);
    await chmod(home, 0o755); // QEMU (libvirt-qemu) must reach the disks inside
    process.env.KUMO_CACHE = testCache();
    ctx = openContext({ home });
    const third = await freeSubnet();
    await virsh.defineNetwork(buildNetworkXml({
      name: network, mode: 'isolated', bridge: `${prefix}br`.slice(0, 15),
      ipv4: { address: `192.168.${third}.1`, prefix: 24, dhcp: { start: `192.168.${third}.10`, end: `192.168.${third}.200` } },
    }));
    await virsh.startNetwork(network);
  } catch (e) {
    // A set-up that failed half-way (libvirtd not running, say) leaves nothing of it behind either.
    ctx?.close();
    await virsh.removeNetwork(network).catch(() => undefined);
    await unmount?.().catch(() => undefined);
    await rm(home, { recursive: true, force: true });
    throw e;
  }
  const cliEnv = { ...process.env, KUMO_HOME: home, KUMO_CACHE: testCache(), LANG: 'C.UTF-8', LC_ALL: '' };
  return {
    prefix, home, network, ctx, cliEnv,
    async cli(args, opts = {}) {
      const r = await runCli(args, { env: { ...cliEnv, ...opts.env }, allowFailure: true, ...(opts.input !== undefined ? { input: opts.input } : {}), timeoutMs: opts.timeoutMs ?? 300_000 });
      return { code: r.code, stdout: r.stdout, stderr: r.stderr };
    },
    async cleanup() {
      // Everything this run made carries its prefix or lives in its home.
      for (const d of await virsh.listDomains().catch(() => [])) {
        if (d.name.startsWith(prefix)) await virsh.removeDomain(d.name).catch(() => undefined);
      }
      // Guests of this run whose libvirtd is gone (a lab daemon killed by a test) are ended directly.
      const ps = (await local.run('ps', ['-eo', 'pid=,args='])).stdout.split('\n');
      for (const line of ps.filter((l) => l.includes(`guest=${prefix}`) && l.includes('qemu-system'))) {
        const pid = Number(line.trim().split(/\s+/)[0]);
        if (pid > 1) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone already */ } }
      }
      for (const n of await virsh.listNetworks().catch(() => [])) {
        if (n.name.startsWith(prefix)) await virsh.removeNetwork(n.name).catch(() => undefined);
      }
      // Bridges and veths a test made itself (they carry the prefix), also OVS ones.
      const links = JSON.parse((await local.run('ip', ['-j', 'link', 'show'])).stdout) as { ifname: string }[];
      for (const l of links.filter((l) => l.ifname.startsWith(prefix))) {
        await local.run('ovs-vsctl', ['--if-exists', 'del-br', l.ifname], { allowFailure: true }).catch(() => undefined);
        await local.run('ip', ['link', 'del', l.ifname], { allowFailure: true });
      }
      for (const ns of (await local.run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0] ?? '')) {
        if (ns.startsWith(prefix)) await local.run('ip', ['netns', 'del', ns], { allowFailure: true });
      }
      ctx.close();
      await unmount?.();
      await rm(home, { recursive: true, force: true });
    },
  };
}

/** The one sleep of tests and benchmarks: src/exec's. */
export { sleep };

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(500);
  }
}
