#!/usr/bin/env node
/**
 * Planning a large datacenter: wall time of `kumo plan FILE` (the bundled CLI) for files of 50
 * instances on 5 hypervisors, 200 on 20 and 500 on 50, with the hosts' reads over kumo's
 * persistent protocol connections against the same plan on the virsh path
 * (KUMO_LIBVIRT_PROTOCOL=0), alternating in one run, plus `kumo --version` and `node -e 0` as
 * the floors every command pays (the ratio to `node -e 0` is what carries across machines). The hypervisors are libvirt's test driver behind ONE private libvirtd started
 * here (one fake node file per host, test+unix:///FILE?socket=SOCK); a tenth of the instances
 * exist already (records and running domains), so plan compares as well as creates.
 *
 *   node dist/bench/plan-scale.js [--runs N] [--sizes 50x5,200x20,500x50] [--workdir DIR] [--json FILE]
 *
 * Everything lives in one per-run folder (the daemon's state, node files, a KUMO_HOME per size)
 * and the daemon is stopped, pass or fail (also on Ctrl+C). See bench/README.md.
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { libvirtdSocket, startLibvirtd, stopLibvirtd } from '../src/drivers/daemons/libvirtd/namespace.js';
import { openContext } from '../src/service/context.js';
import { datacenterYaml, fakeHosts, groups, recordInstance, registerImage, writeNodeFiles } from '../test/helpers/fake-hypervisors.js';
import { BenchArgsError, benchFolder, cleanup, CLI, fmt, load1, log, machineFacts, median, now, run, scriptOptions, undo } from './common.js';

interface Options { runs: number; sizes: [number, number][]; workdir: string; json?: string }

function usage(): string {
  return `usage: node dist/bench/plan-scale.js [options]
  --runs N            timed plans per path and size, alternating (default 5; one untimed warm-up each); medians reported
  --sizes LIST        INSTANCESxHOSTS,... (default 50x5,200x20,500x50; at most 64 hosts)
  --workdir DIR       where the per-run folder is made (default /var/tmp)
  --json FILE         also write every raw measurement to FILE`;
}

const options = (): Options => scriptOptions({
  runs: { kind: 'whole', min: 1, max: 50, default: 5 },
  sizes: { kind: 'text', default: '50x5,200x20,500x50' },
  workdir: { kind: 'text', default: '/var/tmp' },
  json: { kind: 'text' },
}, usage(), (v) => {
  if (!/^\d+x\d+(,\d+x\d+)*$/.test(v.sizes)) throw new BenchArgsError(`--sizes must be INSTANCESxHOSTS,..., got "${v.sizes}"`, usage());
  const sizes = v.sizes.split(',').map((s) => s.split('x').map(Number) as [number, number]);
  if (sizes.some(([n, h]) => n < 1 || h < 1 || h > 64)) throw new BenchArgsError('--sizes: instances ≥ 1 and 1-64 hosts', usage());
  return { runs: v.runs, sizes, workdir: v.workdir, json: v.json };
});

/** One size's world: its own KUMO_HOME with the hosts registered (as root would), the records, the node files and the file. */
async function world(dir: string, socket: string, prefix: string, instances: number, hostCount: number): Promise<{ env: NodeJS.ProcessEnv; file: string }> {
  const home = join(dir, `home-${instances}x${hostCount}`);
  const nodes = join(dir, `nodes-${instances}x${hostCount}`);
  await mkdir(home, { recursive: true });
  await mkdir(nodes, { recursive: true });
  const ctx = openContext({ home });
  try {
    ctx.hosts.delete('local'); // only the file's hypervisors: plan reads every registered host's capacity
    registerImage(ctx, home);
    const hosts = fakeHosts(prefix, hostCount, nodes, socket);
    // Registered directly: the file's netns are not needed by plan (`kumo host add` would run a shell in each).
    for (const h of hosts) ctx.hosts.insert({ name: h.name, uri: h.uri, roles: ['hypervisor'], shell: { kind: 'netns', netns: h.netns }, createdAt: new Date().toISOString() });
    const counts = groups(prefix, instances);
    const members = Object.entries(counts).flatMap(([g, c]) => Array.from({ length: c }, (_, i) => `${g}-${i + 1}`));
    members.filter((_, i) => i % 10 === 0).forEach((name, i) => recordInstance(ctx, hosts[i % hosts.length]!, name, true));
    await writeNodeFiles(hosts, nodes);
    const file = join(nodes, 'datacenter.yaml');
    await writeFile(file, datacenterYaml(`${prefix}-dc`, hosts, counts));
    return { env: { ...process.env, KUMO_HOME: home, LANG: 'C.UTF-8', LC_ALL: '' }, file };
  } finally {
    ctx.close();
  }
}

async function wallMs(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const t0 = now();
  await run(process.execPath, [CLI, ...args], { env });
  return now() - t0;
}

/** How many virsh processes one plan runs: a PATH whose virsh records each call, then runs the real one. */
async function virshProcesses(dir: string, file: string, env: NodeJS.ProcessEnv): Promise<number> {
  const spy = join(dir, 'spy');
  const calls = join(dir, 'virsh-calls.log');
  await mkdir(spy, { recursive: true });
  await writeFile(join(spy, 'virsh'), `#!/bin/sh\necho "$*" >> ${calls}\nexec /usr/bin/virsh "$@"\n`);
  await chmod(join(spy, 'virsh'), 0o755);
  await writeFile(calls, '');
  await run(process.execPath, [CLI, 'plan', file], { env: { ...env, PATH: `${spy}:${env.PATH ?? ''}` } });
  return (await readFile(calls, 'utf8')).split('\n').filter(Boolean).length;
}

const spread = (xs: number[]) => `${fmt(median(xs), 0)} (${fmt(Math.min(...xs), 0)}–${fmt(Math.max(...xs), 0)})`;

async function measure(o: Options, dir: string, prefix: string, socket: string) {
  const rows: string[] = [];
  const results: Record<string, unknown> = {};
  for (const [instances, hostCount] of o.sizes) {
    const { env, file } = await world(dir, socket, `${prefix}s${instances}`, instances, hostCount);
    const virshEnv = { ...env, KUMO_LIBVIRT_PROTOCOL: '0' };
    const changes = (JSON.parse(await run(process.execPath, [CLI, 'plan', file, '--json'], { env })) as unknown[]).length;
    const viaVirsh = (JSON.parse(await run(process.execPath, [CLI, 'plan', file, '--json'], { env: virshEnv })) as unknown[]).length;
    if (viaVirsh !== changes) throw new Error(`the two paths planned ${changes} and ${viaVirsh} changes`);
    const times = { protocol: [] as number[], virsh: [] as number[], version: [] as number[], node: [] as number[] };
    for (let i = 0; i < o.runs; i++) {
      const t0 = now();
      await run(process.execPath, ['-e', '0']);
      times.node.push(now() - t0);
      times.version.push(await wallMs(['--version'], env));
      times.protocol.push(await wallMs(['plan', file], env));
      times.virsh.push(await wallMs(['plan', file], virshEnv));
    }
    const processes = { protocol: await virshProcesses(dir, file, env), virsh: await virshProcesses(dir, file, virshEnv) };
    results[`${instances}x${hostCount}`] = { instances, hosts: hostCount, changes, ...times, processes, load: load1() };
    rows.push(`| ${instances} | ${hostCount} | ${changes} | ${spread(times.protocol)} | ${spread(times.virsh)} | ${fmt(median(times.virsh)! / median(times.protocol)!, 1)}× | ` +
      `${processes.protocol} / ${processes.virsh} | ${spread(times.version)} | ${spread(times.node)} | ${fmt(median(times.protocol)! / median(times.node)!, 1)}× | ${load1().toFixed(1)} |`);
    log(rows[rows.length - 1]!);
  }
  return { rows, results };
}

async function main(): Promise<void> {
  const o = options();
  const { prefix, dir } = await benchFolder('kp', o.workdir);
  const stateDir = join(dir, 'libvirtd');
  undo.push({ what: 'stop the private libvirtd', fn: () => stopLibvirtd(stateDir) });
  await startLibvirtd({ name: `${prefix}-lv`, stateDir, maskKvm: true }); // the test driver runs no QEMU
  const { rows, results } = await measure(o, dir, prefix, libvirtdSocket(stateDir));
  const facts = { ...machineFacts(), node: process.version, runs: String(o.runs) };
  console.log(`\n${Object.entries(facts).map(([k, v]) => `${k}: ${v}`).join('; ')}`);
  console.log('\n| instances | hosts | changes | plan ms, protocol: median (min–max) | plan ms, virsh path | virsh / protocol | virsh processes per plan (protocol / virsh path) | kumo --version ms | node -e 0 ms | plan / node -e 0 | load |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);
  if (o.json) await writeFile(o.json, JSON.stringify({ options: o, facts, results }, null, 2));
}

main().then(() => cleanup(), async (e: unknown) => {
  log(`failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  await cleanup();
  process.exitCode = 1;
});
