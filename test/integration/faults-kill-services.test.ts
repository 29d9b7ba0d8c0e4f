import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { local } from '../../src/exec/exec.js';
import { makeTestEnv, type TestEnv } from '../helpers/env.js';
import { assertNoDebris, debris, type Debris } from '../helpers/debris.js';
import { walkKills } from '../helpers/faults.js';
import { ImageService } from '../../src/service/images.js';
import { hashPassword } from '../../src/model/password.js';

/**
 * kill -9 of kumo between any two steps of a share's create, a load balancer's create and a
 * datacenter file's apply (issue 21): the next kumo command undoes the create (no record, no
 * export, no folder, no bind mount, no HAProxy/nginx/ganesha process or file, no store row), and
 * apply run again converges to the file, which destroy then removes.
 *
 * The storage and LB roles go to a network namespace this test makes (one host, both roles):
 * ganesha and the LB's daemons bind their ports there, not on the machine other tests share.
 */
let env: TestEnv;
let host: string;
let ns: string;
const FRONT = '10.93.7.1';

before(async () => {
  env = await makeTestEnv('fks');
  await new ImageService(env.ctx).buildTiny();
  ns = `${env.prefix}-ns`;
  host = `${env.prefix}-h`;
  await local.run('ip', ['netns', 'add', ns]);
  await local.run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  // No dummy links here (no kernel modules): a veth whose other end stays outside (it carries the prefix: cleanup removes it).
  await local.run('ip', ['link', 'add', `${env.prefix}v`, 'type', 'veth', 'peer', 'name', 'front0', 'netns', ns]);
  await local.run('ip', ['link', 'set', `${env.prefix}v`, 'up']);
  await local.run('ip', ['-n', ns, 'addr', 'add', `${FRONT}/24`, 'dev', 'front0']);
  await local.run('ip', ['-n', ns, 'link', 'set', 'front0', 'up']);
  const added = await env.cli(['host', 'add', host, '--netns', ns, '--role', 'storage', '--role', 'lb']);
  assert.equal(added.code, 0, added.stderr);
});

after(async () => {
  if (!env) return;
  // Pass or fail: whatever a failed walk left (the next command's recovery may not have run).
  for (const lb of ['lb']) await env.cli(['lb', 'delete', `${env.prefix}-${lb}`]).catch(() => undefined);
  for (const s of ['s']) await env.cli(['share', 'delete', `${env.prefix}-${s}`]).catch(() => undefined);
  await env.cli(['destroy', join(env.home, 'dc.yaml')]).catch(() => undefined);
  await env.cli(['instance', 'delete', `${env.prefix}-i`]).catch(() => undefined);
  await local.run('umount', ['--', join(env.home, 'shares')], { allowFailure: true });
  await env.cli(['host', 'remove', host]).catch(() => undefined);
  // Daemons in the namespace end with it; kill them first so none outlives the test.
  await local.run('ip', ['netns', 'pids', ns], { allowFailure: true }).then(async (r) => {
    for (const pid of r.stdout.split('\n').map(Number).filter((p) => p > 1)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  });
  await env.cleanup();
});

/** The exports ganesha is configured with (its config under KUMO_HOME/nfs/HOST; none: no config). */
async function exportsConfigured(): Promise<string[]> {
  const conf = await readFile(join(env.home, 'nfs', host, 'ganesha.conf'), 'utf8').catch(() => '');
  return [...conf.matchAll(/Pseudo = "([^"]+)"/g)].map((m) => m[1]!);
}

/** Nothing beyond `before`, and no export in ganesha's config (the config may stay only with exports in it). */
async function nothingLeft(before: Debris, label: string): Promise<void> {
  assertNoDebris(before, await debris(env), label);
  assert.deepEqual(await exportsConfigured(), [], `${label}: exports left in ganesha's config`);
}

test('share create killed at every step: the next command undoes it; no record, export, folder, bind mount or server is left', async () => {
  const name = `${env.prefix}-s`;
  const create = ['share', 'create', name, '--network', env.network];
  // A first share makes the server's folder (KUMO_HOME/nfs/HOST, its log) and KUMO_HOME/shares, which stay.
  assert.equal((await env.cli(create)).code, 0);
  assert.deepEqual(await exportsConfigured(), [`/${name}`]);
  const reset = async () => {
    const del = await env.cli(['share', 'delete', name]);
    assert.equal(del.code, 0, del.stderr);
    // A deleted share keeps its folder and files (the data are the user's): removed here by hand.
    await rm(join(env.home, 'shares', name), { recursive: true, force: true });
  };
  await reset();
  const steps = await walkKills(env, {
    operation: 'create share', run: create, next: ['share', 'list'],
    settled: (step, before) => nothingLeft(before, `share create killed at step ${step}, then "kumo share list"`),
    reset,
  });
  assert.ok(steps >= 4, `share create has ${steps} step boundaries`);
});

test('lb create (with the WAF) killed at every step: the next command undoes it; no record, HAProxy, nginx or file is left', async () => {
  const instance = `${env.prefix}-i`;
  const made = await env.cli(['instance', 'create', instance, '--image', 'tiny', '--flavor', 'small', '--password', 'x', '--network', env.network, '--disk', '1']);
  assert.equal(made.code, 0, made.stderr);
  const name = `${env.prefix}-lb`;
  const create = ['lb', 'create', name, '--host', host, '--frontend', `${FRONT}:80`, '--network', env.network, '--instance', instance, '--waf'];
  const reset = async () => {
    const del = await env.cli(['lb', 'delete', name]);
    assert.equal(del.code, 0, del.stderr);
  };
  // A first one makes KUMO_HOME/lb, which stays.
  const first = await env.cli(create);
  assert.equal(first.code, 0, first.stderr);
  await reset();
  const steps = await walkKills(env, {
    operation: 'create load-balancer', run: create, next: ['lb', 'list'],
    settled: (step, before) => nothingLeft(before, `lb create killed at step ${step}, then "kumo lb list"`),
    reset,
  });
  assert.ok(steps >= 3, `lb create has ${steps} step boundaries`);
  assert.equal((await env.cli(['instance', 'delete', instance])).code, 0);
});

/** Walks kills of `apply FILE`; after each, apply again converges (plan: no changes) and destroy leaves nothing. */
async function walkApply(file: string, operation: string): Promise<number> {
  const convergeAndDestroy = async (label: string) => {
    const plan = await env.cli(['plan', file]);
    assert.equal(plan.code, 0, plan.stderr);
    assert.match(plan.stdout, /no changes: the datacenter matches the file/, `${label}: apply did not converge`);
    const destroyed = await env.cli(['destroy', file]);
    assert.equal(destroyed.code, 0, `${label}: destroy failed: ${destroyed.stderr}`);
  };
  return walkKills(env, {
    operation, run: ['apply', file], next: ['apply', file],
    // No kill falls inside a libvirt call here: the machine's usual timeout, not the fault runs' short one.
    env: { KUMO_LIBVIRT_TIMEOUT: '120' },
    async settled(step, before) {
      const label = `apply killed at step ${step}, then apply again and destroy`;
      await convergeAndDestroy(label);
      await nothingLeft(before, label);
    },
    // walkKills then checks that nothing is left.
    reset: () => convergeAndDestroy('the complete apply'),
  });
}

test('apply of a flavor killed before it is made and before it is recorded: apply again converges, destroy leaves nothing', async () => {
  const dc = `${env.prefix}-df`;
  const file = join(env.home, 'dc.yaml');
  await writeFile(file, [`name: ${dc}`, 'flavors:', `  ${env.prefix}-f: { vcpus: 1, ram_mib: 256, disk_gib: 1 }`, ''].join('\n'));
  assert.equal(await walkApply(file, `apply datacenter ${dc}`), 2, 'apply has a boundary before the flavor and before its record');
  await rm(file);
});

test('apply of an instance group killed before it is made and before it is recorded: apply again converges, destroy leaves nothing', { timeout: 400_000 }, async () => {
  const dc = `${env.prefix}-di`;
  const file = join(env.home, 'dc.yaml');
  await writeFile(file, [
    `name: ${dc}`,
    'instances:',
    `  ${env.prefix}-g:`,
    '    image: tiny',
    '    flavor: small',
    `    networks: [${env.network}]`,
    `    root_password_hash: "${hashPassword('pw')}"`,
    '',
  ].join('\n'));
  // The instance create's own steps are walked in faults-kill-instance; here apply's around it.
  assert.equal(await walkApply(file, `apply datacenter ${dc}`), 2, 'apply has a boundary before the instance and before its record');
  await rm(file);
});
