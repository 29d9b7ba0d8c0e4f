import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openContext, type Context } from '../../src/service/context.js';
import { ProjectService } from '../../src/service/projects.js';
import { VolumeService } from '../../src/service/volumes.js';
import { InstanceService } from '../../src/service/instances.js';
import { FlavorService } from '../../src/service/flavors.js';
import { ImageService } from '../../src/service/images.js';
import { attachableNetwork } from '../../src/service/network-owners.js';
import { machineActor, type Actor } from '../../src/model/actor.js';
import { KumoError } from '../../src/model/errors.js';
import type { QemuImg } from '../../src/drivers/image/qemu-img.js';

/**
 * Projects and quotas at the service level, on a real store in a temporary KUMO_HOME. Nothing
 * here needs libvirt: volumes get a stand-in qemu-img, instances are refused (or recorded) before
 * any libvirt call, which is where the project rules are.
 */

let home: string;
let ctx: Context;
const GiB = 1024 ** 3;

/** qemu-img without the files: a volume's disk is an empty file of the recorded size. */
function standInQemuImg(c: Context): void {
  const sizes = new Map<string, number>();
  // unknown: only the three calls volumes make are stood in for.
  c.qemuImg = {
    createEmpty: async (file: string, gib: number) => { sizes.set(file, gib * GiB); },
    info: async (file: string) => ({ virtualSize: sizes.get(file) ?? 0 }),
    resize: async (file: string, gib: number) => { sizes.set(file, gib * GiB); },
  } as unknown as QemuImg;
}

const member = (project: string): Actor => ({ kind: 'token', name: `m-${project}`, project, role: 'member' });

const refusal = (code: string, message: RegExp) => (e: unknown) => {
  assert.ok(e instanceof KumoError, String(e));
  assert.equal(e.code, code, e.message);
  assert.match(e.describe(), message);
  return true;
};

before(async () => {
  home = await mkdtemp('/tmp/kumo-unit-projects-');
  ctx = openContext({ home });
  standInQemuImg(ctx);
  // A stand-in image: instances name theirs (a foreign key); validation needs its size only.
  ctx.images.upsert({ name: 'img', os: 'stand-in', disk: join(home, 'img.qcow2'), format: 'qcow2', virtualSizeBytes: GiB, source: 'test', createdAt: new Date().toISOString() });
});
after(async () => {
  ctx?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

test('the store starts with project default, and what exists belongs to it', () => {
  const projects = new ProjectService(ctx);
  assert.deepEqual(projects.list().map((p) => p.name), ['default']);
  assert.deepEqual(projects.show('default').limits, {});
  assert.ok(new FlavorService(ctx, member('elsewhere')).list().some((f) => f.name === 'small'), 'built-in flavors are public');
});

test('project create checks the name and each cap, naming the flag and the fix', () => {
  const projects = new ProjectService(ctx);
  assert.throws(() => projects.create('Bad_Name'), refusal('INVALID_INPUT', /project name "Bad_Name" is not valid/));
  assert.throws(() => projects.create('p9', { vcpus: -1 }), refusal('INVALID_INPUT', /--max-vcpus must be a whole number from 0 to .*fix: pass e\.g\. --max-vcpus/s));
  assert.throws(() => projects.create('p9', { ramMiB: 1.5 }), refusal('INVALID_INPUT', /--max-ram must be a whole number/));
  const p = projects.create('p1', { instances: 1, volumes: 1, diskGiB: 30 });
  assert.deepEqual(p.limits, { instances: 1, volumes: 1, diskGiB: 30 });
  assert.throws(() => projects.create('p1'), refusal('ALREADY_EXISTS', /project "p1" already exists/));
  projects.create('p2');
  const changed = projects.set('p2', { shares: 2, networks: 3 });
  assert.deepEqual(changed.limits, { shares: 2, networks: 3 });
  assert.deepEqual(projects.set('p2', { shares: null }).limits, { networks: 3 }, 'null lifts a cap');
});

test('only an admin makes, changes or deletes projects; a member sees its own project only (another is a 404)', () => {
  const asMember = new ProjectService(ctx, member('p1'));
  assert.throws(() => asMember.create('p3'), refusal('FORBIDDEN', /only an admin may create projects/));
  assert.throws(() => asMember.set('p1', { instances: 99 }), refusal('FORBIDDEN', /only an admin may change project quotas/));
  assert.throws(() => asMember.delete('p1'), refusal('FORBIDDEN', /only an admin/));
  assert.deepEqual(asMember.list().map((p) => p.name), ['p1']);
  assert.equal(asMember.show('p1').limits.instances, 1);
  assert.throws(() => asMember.show('p2'), refusal('NOT_FOUND', /project "p2" does not exist/));
});

test('a volume over the quota is refused naming the quota, its limit, the use and the fix; nothing is left behind', async () => {
  const p1 = new VolumeService(ctx, machineActor('p1'));
  await p1.create('vol-a', 10);
  await assert.rejects(p1.create('vol-b', 1),
    refusal('QUOTA_EXCEEDED', /project p1 allows 1 volume and has 1.*quota volumes.*fix: delete one, or an admin raises it: kumo project set p1 --max-volumes 2/s));
  assert.equal(ctx.volumes.get('vol-b'), undefined);
  new ProjectService(ctx).set('p1', { volumes: 5 });
  await assert.rejects(p1.create('vol-c', 25), refusal('QUOTA_EXCEEDED', /allows 30 GiB of disk and has 10; this needs 25 GiB of disk.*--max-disk 35/s));
  await assert.rejects(p1.resize('vol-a', 40), refusal('QUOTA_EXCEEDED', /allows 30 GiB of disk and has 10; this needs 30 GiB/));
  assert.equal(ctx.volumes.get('vol-a')?.sizeGiB, 10, 'a refused resize records nothing');
  assert.deepEqual(new ProjectService(ctx).show('p1').use, { instances: 0, vcpus: 0, ramMiB: 0, diskGiB: 10, volumes: 1, networks: 0, shares: 0 });
});

test('another project\'s volume is answered exactly like a missing one, and is not listed', async () => {
  const p2 = new VolumeService(ctx, machineActor('p2'));
  const missing = await p2.get('no-such-volume').then(() => '', (e: KumoError) => e.describe());
  const foreign = await p2.get('vol-a').then(() => '', (e: KumoError) => e.describe());
  assert.equal(foreign.replace('vol-a', 'X'), missing.replace('no-such-volume', 'X'));
  await assert.rejects(p2.delete('vol-a'), refusal('NOT_FOUND', /volume "vol-a" does not exist/));
  assert.deepEqual((await p2.list()).map((v) => v.name), []);
  assert.deepEqual((await new VolumeService(ctx, machineActor('p1')).list()).map((v) => v.name), ['vol-a']);
  assert.deepEqual((await new VolumeService(ctx).list()).map((v) => v.name), [], 'default sees none of p1\'s');
});

test('project delete refuses while it holds anything, naming what', async () => {
  const projects = new ProjectService(ctx);
  assert.throws(() => projects.delete('p1'), refusal('IN_USE', /project "p1" still holds 1 volumes \(vol-a\).*fix: delete them first/s));
  assert.throws(() => projects.delete('default'), refusal('IN_USE', /project "default" cannot be deleted/));
  projects.create('gone');
  projects.delete('gone');
  assert.throws(() => projects.show('gone'), refusal('NOT_FOUND', /project "gone" does not exist/));
});

/** An instance record as create makes it (validation and quotas only look at the store). */
function recordInstance(name: string, project: string): void {
  ctx.instances.insert({
    name, uuid: randomUUID(), host: 'local', image: 'img', vcpus: 1, ramMiB: 512, diskGiB: 2, networks: ['default'],
    nics: [{ mac: '52:54:00:00:00:01', network: 'default' }], dataDisks: [], sshKeys: [], createdAt: new Date().toISOString(), project,
  });
}

const request = (name: string, networks = ['default']) =>
  ({ name, image: 'img', vcpus: 1, ramMiB: 512, diskGiB: 2, networks, sshKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl t@x'] });

test('an instance over the quota is refused before anything is made, naming the quota and the fix', async () => {
  recordInstance('p1-web', 'p1');
  await assert.rejects(new InstanceService(ctx, member('p1')).validate(request('p1-web2')),
    refusal('QUOTA_EXCEEDED', /project p1 allows 1 instance and has 1 \(quota instances\).*fix: delete one, or an admin raises it: kumo project set p1 --max-instances 2/s));
  new ProjectService(ctx).create('tight', { vcpus: 2, ramMiB: 256 });
  await assert.rejects(new InstanceService(ctx, member('tight')).validate(request('t1')),
    refusal('QUOTA_EXCEEDED', /project tight allows 256 MiB of RAM and has 0; this needs 512 MiB of RAM/));
});

test('another project\'s instance is a 404 for every action, and its networks cannot be attached', async () => {
  const p2 = new InstanceService(ctx, member('p2'));
  for (const act of [() => p2.get('p1-web'), () => p2.start('p1-web'), () => p2.stop('p1-web'), () => p2.delete('p1-web'), () => p2.xml('p1-web')]) {
    await assert.rejects(act(), refusal('NOT_FOUND', /instance "p1-web" does not exist/));
  }
  assert.deepEqual((await p2.list()).map((i) => i.name), []);
  ctx.projects.setNetworkProject('p1-lan', 'p1');
  const missing = (() => { try { attachableNetwork(ctx, 'p2', 'no-such-net'); } catch (e) { return (e as KumoError).describe(); } return ''; })();
  assert.throws(() => attachableNetwork(ctx, 'p2', 'p1-lan'), (e: KumoError) => e.describe().replaceAll('p1-lan', 'X') === missing.replaceAll('no-such-net', 'X'));
  await assert.rejects(p2.validate(request('p2-web', ['p1-lan'])), refusal('NOT_FOUND', /network "p1-lan" is not defined yet/));
  assert.equal(attachableNetwork(ctx, 'p1', 'p1-lan'), 'p1-lan', 'its own project attaches it');
  assert.equal(attachableNetwork(ctx, 'p2', 'default'), 'default', 'the built-ins are shared');
});

test('a member\'s flavor is its project\'s own; public ones are for all and only their project changes them', () => {
  const f = new FlavorService(ctx, member('p1')).create('p1-big', 2, 2048, 10);
  assert.equal(f.name, 'p1-big');
  assert.throws(() => new FlavorService(ctx, member('p2')).get('p1-big'), refusal('NOT_FOUND', /flavor "p1-big" does not exist/));
  assert.ok(!new FlavorService(ctx, member('p2')).list().some((x) => x.name === 'p1-big'));
  assert.ok(new FlavorService(ctx, member('p1')).list().some((x) => x.name === 'p1-big'));
  assert.throws(() => new FlavorService(ctx, member('p2')).delete('p1-big'), refusal('NOT_FOUND', /does not exist/));
  assert.ok(new ImageService(ctx, member('p2')).list().some((i) => i.name === 'img'), 'images made so far are public');
  new FlavorService(ctx, member('p1')).delete('p1-big');
});

/** Runs `count` kumo processes at once, each creating one volume in `project` on this home. */
async function concurrentVolumeCreates(project: string, count: number): Promise<{ ok: number; refused: string[] }> {
  const dist = fileURLToPath(new URL('../../src/', import.meta.url));
  const script = `
    const { openContext } = await import(${JSON.stringify(`${dist}service/context.js`)});
    const { VolumeService } = await import(${JSON.stringify(`${dist}service/volumes.js`)});
    const { machineActor } = await import(${JSON.stringify(`${dist}model/actor.js`)});
    const ctx = openContext({ home: process.env.HOME_UNDER_TEST });
    ctx.qemuImg = { createEmpty: async () => {}, info: async () => ({ virtualSize: 1024 ** 3 }) };
    // Every process starts at the same moment, so their checks meet.
    await new Promise((r) => setTimeout(r, Number(process.env.START_AT) - Date.now()));
    try { await new VolumeService(ctx, machineActor(${JSON.stringify(project)})).create(process.env.VOLUME, 1); console.log('ok'); }
    catch (e) { console.log(e.code + ' ' + e.message); }
    ctx.close();`;
  const startAt = Date.now() + 1500;
  const runs = Array.from({ length: count }, (_, i) => new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, HOME_UNDER_TEST: home, START_AT: String(startAt), VOLUME: `race-${i}` }, stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('error', reject);
    child.on('exit', () => resolve(out.trim()));
  }));
  const outs = await Promise.all(runs);
  return { ok: outs.filter((o) => o === 'ok').length, refused: outs.filter((o) => o !== 'ok') };
}

test('concurrent creates in two kumo processes with room for one end with exactly one', async () => {
  new ProjectService(ctx).create('race', { volumes: 1 });
  const r = await concurrentVolumeCreates('race', 6);
  assert.equal(r.ok, 1, `exactly one create succeeds: ${JSON.stringify(r)}`);
  assert.equal(r.refused.length, 5);
  for (const o of r.refused) assert.match(o, /^QUOTA_EXCEEDED project race allows 1 volume and has 1/);
  assert.equal(ctx.volumes.list('race').length, 1);
});

test('a datacenter file names its project; plan refuses a missing project and a group that would exceed a quota, at the file\'s line and column', async () => {
  const { DatacenterService } = await import('../../src/service/datacenter/engine.js');
  const { LOCAL_HOST } = await import('../../src/service/context.js');
  const dcHome = await mkdtemp('/tmp/kumo-unit-projects-dc-');
  // No command runs: a libvirt that never answers, and no hypervisor (placement is left to apply).
  const c = openContext({ home: dcHome, exec: { description: 'nowhere', run: async () => { throw new KumoError('COMMAND_FAILED', 'not in a unit test'); }, open: async () => { throw new KumoError('COMMAND_FAILED', 'not in a unit test'); } } });
  try {
    c.hosts.delete(LOCAL_HOST);
    c.images.upsert({ name: 'img', os: 'stand-in', disk: join(dcHome, 'img.qcow2'), format: 'qcow2', virtualSizeBytes: GiB, source: 'test', createdAt: new Date().toISOString() });
    new ProjectService(c).create('class1', { instances: 2, ramMiB: 4096 });
    const svc = new DatacenterService(c);
    const file = (project: string, count: number) => svc.parse([
      'name: t',
      `project: ${project}`,
      'instances:',
      '  web:',
      '    image: img',
      '    flavor: small',
      `    count: ${count}`,
      '    ssh_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl t@x"]',
      '',
    ].join('\n'), 't.yaml');
    await assert.rejects(svc.plan(file('nosuch', 1)), refusal('NOT_FOUND', /^t\.yaml:2:10: project: project "nosuch" does not exist/));
    await assert.rejects(svc.plan(file('class1', 3)),
      refusal('QUOTA_EXCEEDED', /^t\.yaml:5:5: instances\.web: project class1 allows 2 instances and has 2, counting this file's creates before it \(0 today\) \(quota instances\).*kumo project set class1 --max-instances 3/s));
    const ok = await svc.plan(file('class1', 2));
    assert.deepEqual(ok.filter((x) => x.kind === 'instance').map((x) => x.name), ['web-1', 'web-2']);
    assert.equal(file('x', 1).project, 'x');
    assert.equal(svc.parse('name: t\n', 't.yaml').project, 'default', 'a file without project: is default\'s');
  } finally {
    c.close();
    await rm(dcHome, { recursive: true, force: true });
  }
});

test('a shared network (a built-in) may be stopped or deleted by an admin only', async () => {
  const { NetworkService } = await import('../../src/service/networks.js');
  const p1 = new NetworkService(ctx, ctx.virsh, member('p1'));
  // The check comes before libvirt is asked whether it is in use: a stand-in listing of the built-in.
  (p1 as unknown as { defined: (n: string) => Promise<unknown> }).defined = async (n: string) => ({ name: n, instances: [] });
  await assert.rejects(p1.delete('default'), refusal('FORBIDDEN', /network "default" is shared by every project: only an admin may stop or delete it/));
  await assert.rejects(p1.stop('testnet'), refusal('FORBIDDEN', /only an admin/));
});
