import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { CLI, makeTestEnv, sleep, waitFor, type TestEnv } from '../helpers/env.js';
import { assertNoDebris, debris, type Debris } from '../helpers/debris.js';
import { FAULT_ENV, walkKills } from '../helpers/faults.js';
import { removeHypervisor, startSecondHypervisor } from '../helpers/lab.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { local } from '../../src/exec/exec.js';
import { Virsh } from '../../src/drivers/libvirt/virsh.js';
import { parseDomainXml } from '../../src/drivers/libvirt/domain-xml.js';
import type { NamespacedLibvirtd } from '../../src/drivers/daemons/libvirtd/namespace.js';

/**
 * kill -9 of kumo at every step of a live migration, a snapshot revert and a volume attach
 * (issue 21), and during the migration call itself (its virsh child migrating on): the next kumo
 * command leaves kumo's record on the host that runs the domain, one domain in all, nothing else.
 */
let env: TestEnv;
let lab: NamespacedLibvirtd | undefined;
let stateDir: string | undefined;
const kvm2 = () => `${env.prefix}-kvm2`;
const vm = () => `${env.prefix}-m`;
const other = () => `${env.prefix}-s`;
const vol = () => `${env.prefix}-v`;
/** The lab's own daemons stay the whole run; a virsh still migrating is debris (it names the lab's socket). */
const debrisOpts = () => ({ uris: ['qemu:///system', lab!.uri], ignoreProcess: /\b(libvirtd|virtlogd|unshare)\b|NAMESPACE|sh -c/ });

before(async () => {
  env = await makeTestEnv('fkv');
  await new ImageService(env.ctx).buildTiny();
  ({ lab, stateDir } = await startSecondHypervisor(env, kvm2()));
  const added = await env.cli(['host', 'add', kvm2(), '--uri', lab.uri, '--migration-address', '127.0.0.1']);
  assert.equal(added.code, 0, added.stderr);
  const svc = new InstanceService(env.ctx);
  await svc.create({ name: vm(), image: 'tiny', flavor: 'small', ramMiB: 256, password: 'x', networks: [env.network], host: 'local' });
  await svc.create({ name: other(), image: 'tiny', flavor: 'small', ramMiB: 256, password: 'x', networks: [env.network], host: 'local', start: false });
});

after(async () => {
  await removeHypervisor(lab, stateDir);
  await env?.cleanup();
});

/**
 * Where the instance is, checked against libvirt on both hosts: kumo's record names the host that
 * runs the domain (persistent there), and the other host has none of it.
 */
async function assertOneDomain(name: string, label: string): Promise<string> {
  const r = env.ctx.instances.get(name)!;
  const found: string[] = [];
  for (const host of ['local', kvm2()]) {
    const v = env.ctx.virshFor(host);
    const state = await v.domainState(r.uuid);
    if (state === 'missing') continue;
    found.push(host);
    assert.equal(state, 'running', `${label}: the domain on ${host} is ${state}`);
    assert.match(await v.run(['dominfo', r.uuid]), /Persistent:\s+yes/, `${label}: the domain on ${host} is persistent`);
  }
  assert.deepEqual(found, [r.host], `${label}: kumo records ${r.host}, libvirt has the domain on [${found.join(', ')}]`);
  return r.host;
}

/** Debris but the domain's host: the instance may have moved, and assertOneDomain checked that. */
const withoutDomains = (d: Debris) => ({ ...d, domains: d.domains.map((x) => x.replace(/^\S+ /, '')) });

async function migrateBack(name: string): Promise<void> {
  if (env.ctx.instances.get(name)!.host === 'local') return;
  const r = await env.cli(['instance', 'migrate', name, '--to', 'local']);
  assert.equal(r.code, 0, r.stderr);
}

test('migrate killed at every step: the record follows the domain, one domain in all, nothing left', async () => {
  const steps = await walkKills(env, {
    operation: 'migrate instance', run: ['instance', 'migrate', vm(), '--to', kvm2()], debrisOpts: debrisOpts(),
    async settled(step, before) {
      await assertOneDomain(vm(), `migrate killed at step ${step}`);
      assertNoDebris(withoutDomains(before), withoutDomains(await debris(env, debrisOpts())), `migrate killed at step ${step}`);
      await migrateBack(vm());
    },
    async reset() {
      assert.equal(await assertOneDomain(vm(), 'the complete migration'), kvm2());
      await migrateBack(vm());
    },
  });
  assert.ok(steps >= 2, `migrate has ${steps} step boundaries`);
  await assertOneDomain(vm(), 'migrated back');
});

/** The `virsh ... migrate` processes for this domain (the CLI's child, which outlives a killed kumo). */
async function virshMigrating(uuid: string): Promise<number[]> {
  const ps = (await local.run('ps', ['-eo', 'pid=,stat=,args='])).stdout.split('\n');
  return ps.filter((l) => / virsh .* migrate /.test(l) && l.includes(uuid) && !/^\s*\d+\s+Z/.test(l))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

test('kumo killed during the migration call (its virsh migrating on): the next command settles it', async () => {
  await migrateBack(vm());
  const r = env.ctx.instances.get(vm())!;
  const source = new Virsh('qemu:///system');
  const before = await debris(env, debrisOpts());
  // Slow the memory stream so the move is surely still under way when kumo dies (1 MiB/s).
  await source.run(['migrate-setspeed', r.uuid, '1']);
  let next: { code: number; stderr: string } | undefined;
  try {
    const child = spawn('node', [CLI, 'instance', 'migrate', vm(), '--to', kvm2()],
      { env: { ...env.cliEnv, ...FAULT_ENV }, stdio: 'ignore' });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await waitFor('the migration job on the source', async () =>
      /Job type:\s+Unbounded/.test(await source.run(['domjobinfo', r.uuid]).catch(() => '')) ? true : undefined, 60_000);
    await sleep(1000);
    child.kill('SIGKILL');
    await exited;
    assert.ok((await virshMigrating(r.uuid)).length > 0, 'the virsh child outlives kumo and goes on migrating');
    next = await env.cli(['instance', 'list'], { env: FAULT_ENV });
    assert.equal(next.code, 0, next.stderr);
  } finally {
    // Full speed again: a migration nothing ended would now complete at once (and move the domain).
    await source.run(['migrate-setspeed', r.uuid, '100000']).catch(() => undefined);
  }
  await waitFor('no virsh migrating', async () => ((await virshMigrating(r.uuid)).length ? undefined : true), 60_000);
  await sleep(2000);
  await assertOneDomain(vm(), 'after kumo was killed mid-migration');
  assert.match(next!.stderr, /undid interrupted "migrate instance/, 'the next command says what it settled');
  assertNoDebris(withoutDomains(before), withoutDomains(await debris(env, debrisOpts())), 'after kumo was killed mid-migration');
  await migrateBack(vm());
  const again = await env.cli(['instance', 'migrate', vm(), '--to', kvm2()]);
  assert.equal(again.code, 0, `the next migration works: ${again.stderr}`);
  assert.equal(await assertOneDomain(vm(), 'the next migration'), kvm2());
});

/** The volume is detached in kumo's record and in the domain's definition, and its file is whole. */
async function assertVolumeFree(label: string): Promise<void> {
  const v = env.ctx.volumes.get(vol())!;
  assert.equal(v.instance ?? undefined, undefined, `${label}: kumo still has the volume attached`);
  const xml = (await new Virsh('qemu:///system').dumpXml(env.ctx.instances.get(other())!.uuid, true))!;
  assert.ok(!parseDomainXml(xml).disks.some((d) => d.file === v.file), `${label}: the domain still has the volume's disk`);
  assert.ok(existsSync(v.file), `${label}: the volume's file is gone`);
  await local.run('qemu-img', ['check', '-q', v.file]);
}

test('volume attach killed at every step: not attached, no disk in the domain, file whole', async () => {
  const made = await env.cli(['volume', 'create', vol(), '--size', '1']);
  assert.equal(made.code, 0, made.stderr);
  const steps = await walkKills(env, {
    operation: 'attach volume', run: ['volume', 'attach', vol(), other()], next: ['volume', 'list'], debrisOpts: debrisOpts(),
    async settled(step, before) {
      await assertVolumeFree(`attach killed at step ${step}`);
      assertNoDebris(before, await debris(env, debrisOpts()), `attach killed at step ${step}`);
    },
    async reset() {
      const r = await env.cli(['volume', 'detach', vol()]);
      assert.equal(r.code, 0, r.stderr);
      await assertVolumeFree('after the complete attach and a detach');
    },
  });
  assert.ok(steps >= 2, `attach has ${steps} step boundaries`);
});

test('snapshot revert killed at every step: reverted or not, the snapshot kept, the next command fine', async () => {
  // Taken shut off: a revert to it shuts the instance off, so its state tells whether it happened.
  const snap = await env.cli(['snapshot', 'create', other(), 'first']);
  assert.equal(snap.code, 0, snap.stderr);
  const start = async () => {
    const r = await env.cli(['instance', 'start', other()]);
    assert.equal(r.code, 0, r.stderr);
  };
  await start();
  const uuid = env.ctx.instances.get(other())!.uuid;
  const outcomes: string[] = [];
  const steps = await walkKills(env, {
    operation: 'revert snapshot', run: ['snapshot', 'revert', other(), 'first'], next: ['snapshot', 'list', other()], debrisOpts: debrisOpts(),
    async settled(step) {
      const state = await new Virsh('qemu:///system').domainState(uuid);
      assert.ok(['running', 'shut off'].includes(state), `revert killed at step ${step}: the instance is ${state}`);
      outcomes.push(state);
      const list = await env.cli(['snapshot', 'list', other(), '--json']);
      assert.deepEqual((JSON.parse(list.stdout) as { name: string }[]).map((s) => s.name), ['first'], `revert killed at step ${step}: the snapshots`);
      assert.equal(env.ctx.journal.pending().length, 0, `revert killed at step ${step}: nothing journaled stays`);
      if (state === 'shut off') await start();
    },
    async reset() {
      assert.equal(await new Virsh('qemu:///system').domainState(uuid), 'shut off', 'the complete revert');
      await start();
    },
  });
  assert.ok(steps >= 2, `revert has ${steps} step boundaries`);
  // Killed before the call: not reverted (still running); after it: reverted (shut off, as the snapshot).
  assert.deepEqual(outcomes, ['running', 'shut off']);
});
