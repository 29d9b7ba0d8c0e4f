import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { freeSubnet, type TestEnv } from '../helpers/env.js';
import { API, ApiClient, closeApiWorld, deleteMadeResources, openApiWorld, refused, type TestApi } from '../helpers/api.js';
import { local } from '../../src/exec/exec.js';

/**
 * Projects and quotas through the faces: `kumo project` and the global --project (root acts as
 * admin in the project it picks), and /api/v1/projects. No guest boots: the instances here
 * are refused before anything is made.
 */

let env: TestEnv;
let api: TestApi | undefined;
let client: ApiClient;

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl kumo@test';

before(async () => {
  ({ env, api, client } = await openApiWorld('prj'));
  // A stand-in image: an empty 64 MiB disk (the instances here are never started).
  const disk = join(env.home, 'stand.qcow2');
  await local.run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
  const r = await env.cli(['image', 'import', 'stand', disk, '--os', 'stand-in']);
  assert.equal(r.code, 0, r.stderr);
});

after(() => closeApiWorld({ env, api, client }, async (e) => { await deleteMadeResources(e.ctx); }));

const kumo = (...args: string[]) => env.cli(args);

test('kumo project: create with caps, list and show use against them, set, and refusals that name the flag and the fix', async () => {
  let r = await kumo('project', 'create', 'p1', '--max-instances', '0', '--max-volumes', '1', '--max-networks', '1');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /instances\s+0\s+0\s+--max-instances/);
  assert.equal((await kumo('project', 'create', 'p2')).code, 0);
  r = await kumo('project', 'create', 'p3', '--max-vcpus', 'many');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--max-vcpus must be a whole number from 0 to \d+, got "many"\n {2}fix: pass e\.g\. --max-vcpus 4/);
  assert.equal((await kumo('project', 'create', 'p1')).code, 4, 'exists');
  r = await kumo('project', 'list', '--json');
  assert.deepEqual(JSON.parse(r.stdout).map((p: { name: string }) => p.name), ['default', 'p1', 'p2']);
  r = await kumo('project', 'set', 'p2', '--max-shares', '3');
  assert.equal(r.code, 0, r.stderr);
  r = await kumo('project', 'show', 'p2', '--json');
  assert.deepEqual(JSON.parse(r.stdout).limits, { shares: 3 });
  r = await kumo('--project', 'nosuch', 'volume', 'list');
  assert.equal(r.code, 3);
  assert.match(r.stderr, /project "nosuch" does not exist/);
});

test('over the quota: exit 10 naming the quota, its limit, the use and the fix; another project\'s volume is "does not exist"', async () => {
  let r = await kumo('--project', 'p1', 'volume', 'create', `${env.prefix}-v1`, '--size', '1');
  assert.equal(r.code, 0, r.stderr);
  r = await kumo('--project', 'p1', 'volume', 'create', `${env.prefix}-v2`, '--size', '1');
  assert.equal(r.code, 10, r.stderr);
  assert.match(r.stderr, /project p1 allows 1 volume and has 1; this needs 1 volume \(quota volumes\)\n {2}fix: delete one, or an admin raises it: kumo project set p1 --max-volumes 2/);
  // On the shared built-in network (this run's own network is default's): refused before anything is made.
  r = await kumo('--project', 'p1', 'instance', 'create', `${env.prefix}-i0`, '--image', 'stand', '--flavor', 'small', '--ssh-key', KEY, '--network', 'default');
  assert.equal(r.code, 10, r.stderr);
  assert.match(r.stderr, /project p1 allows 0 instances and has 0 \(quota instances\)\n {2}fix: an admin raises it: kumo project set p1 --max-instances 1/);
  // The default project (where root acts without --project) sees none of it, in the words for a missing volume.
  r = await kumo('volume', 'show', `${env.prefix}-v1`);
  assert.equal(r.code, 3);
  assert.match(r.stderr, new RegExp(`volume "${env.prefix}-v1" does not exist`));
  assert.doesNotMatch((await kumo('volume', 'list')).stdout, /-v1/);
  assert.match((await kumo('--project', 'p1', 'volume', 'list')).stdout, /-v1/);
});

test('a project\'s network is attachable by its own instances only; project delete refuses while it holds anything', async () => {
  const net = `${env.prefix}-pn`;
  let r = await kumo('--project', 'p1', 'network', 'create', net, '--mode', 'isolated', '--cidr', `192.168.${await freeSubnet()}.0/24`);
  assert.equal(r.code, 0, r.stderr);
  r = await kumo('--project', 'p1', 'network', 'create', `${env.prefix}-pm`, '--mode', 'isolated', '--cidr', `192.168.${await freeSubnet()}.0/24`);
  assert.equal(r.code, 10, 'p1 allows 1 network');
  assert.match(r.stderr, /allows 1 network and has 1/);
  r = await kumo('--project', 'p2', 'instance', 'create', `${env.prefix}-x`, '--image', 'stand', '--flavor', 'small', '--ssh-key', KEY, '--network', net);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, new RegExp(`network "${net}" is not defined yet`));
  assert.doesNotMatch((await kumo('--project', 'p2', 'network', 'list')).stdout, new RegExp(net));
  assert.match((await kumo('--project', 'p1', 'network', 'list')).stdout, new RegExp(net));
  r = await kumo('project', 'delete', 'p1');
  assert.equal(r.code, 4);
  assert.match(r.stderr, new RegExp(`project "p1" still holds 1 volumes \\(${env.prefix}-v1\\), 1 networks \\(${net}\\)`));
  assert.equal((await kumo('--project', 'p1', 'network', 'delete', net)).code, 0);
  assert.equal((await kumo('--project', 'p1', 'volume', 'delete', `${env.prefix}-v1`)).code, 0);
  r = await kumo('project', 'delete', 'p1');
  assert.equal(r.code, 0, r.stderr);
});

test('API: /projects lists, shows, creates, changes and deletes; refusals as the document says', async () => {
  const list = await client.call('GET', `${API}/projects`);
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.map((p: { name: string }) => p.name), ['default', 'p2']);
  const made = await client.call('POST', `${API}/projects`, { name: 'p4', limits: { instances: 2, ramMiB: 4096 } });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  assert.deepEqual(made.body.limits, { instances: 2, ramMiB: 4096 });
  assert.equal(made.body.use.instances, 0);
  refused(await client.call('POST', `${API}/projects`, { name: 'p5', limits: { instances: -1 } }), 400, 'INVALID_INPUT', ['body.limits.instances']);
  refused(await client.call('POST', `${API}/projects`, { name: 'p4' }), 409, 'ALREADY_EXISTS');
  const changed = await client.call('PATCH', `${API}/projects/p4`, { limits: { instances: null, shares: 1 } });
  assert.equal(changed.status, 200);
  assert.deepEqual(changed.body.limits, { ramMiB: 4096, shares: 1 });
  refused(await client.call('GET', `${API}/projects/nosuch`), 404, 'NOT_FOUND');
  refused(await client.call('DELETE', `${API}/projects/default`), 409, 'IN_USE');
  assert.equal((await client.call('DELETE', `${API}/projects/p4`)).status, 204);
});

// The race for a project's last instance, by member tokens of that project: class.test.ts.
