import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { openContext, type Context } from '../../src/service/context.js';
import { ProjectService } from '../../src/service/projects.js';
import { SettingsService } from '../../src/service/settings.js';
import { UserService } from '../../src/service/users.js';
import { buildServer, type ApiServer } from '../../src/api/server.js';
import { osUuid } from '../../src/api/openstack/common.js';

/** Glance v2 of the OpenStack face: versions, list/show with filters and pages, create + upload + delete, roles, errors. */

let home: string;
let ctx: Context;
let app: ApiServer;
let qcow2: Buffer;
const PASSWORD = 'correct horse battery';
const tokens: Record<string, string> = {};

/** A kumo image as `kumo image import` leaves it: a base disk file and its row. */
async function seedImage(name: string, createdAt: string, bytes: number): Promise<void> {
  const dir = join(ctx.paths.images, name);
  await mkdir(dir, { recursive: true });
  const disk = join(dir, 'disk.qcow2');
  await writeFile(disk, Buffer.alloc(bytes));
  ctx.images.upsert({ name, os: name, disk, format: 'qcow2', virtualSizeBytes: 1 << 30, source: 'test', createdAt });
}

before(async () => {
  home = await mkdtemp('/tmp/kumo-unit-glance-');
  ctx = openContext({ home });
  new ProjectService(ctx).create('p1');
  const users = new UserService(ctx);
  await users.create('root-admin', 'default', 'admin', PASSWORD);
  await users.create('alice', 'p1', 'member', PASSWORD);
  await users.create('rita', 'default', 'reader', PASSWORD);
  await seedImage('alpha', '2026-12-01T10:00:00.000Z', 1000);
  await seedImage('beta', '2026-12-02T10:00:00.000Z', 2000);
  await seedImage('gamma', '2026-12-03T10:00:00.000Z', 3000);
  const file = join(home, 'small.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', file, '16M']);
  qcow2 = readFileSync(file);
  app = await buildServer(ctx, { monitor: false, webRoot: `${home}/no-web`, watchDomains: false });
  await app.ready();
  for (const [user, project] of [['root-admin', 'default'], ['alice', 'p1'], ['rita', 'default']] as const) {
    const r = await app.inject({
      method: 'POST', url: '/identity/v3/auth/tokens',
      payload: { auth: { identity: { methods: ['password'], password: { user: { name: user, domain: { name: 'Default' }, password: PASSWORD } } },
        scope: { project: { name: project, domain: { name: 'Default' } } } } },
    });
    assert.equal(r.statusCode, 201, r.body);
    tokens[user] = String(r.headers['x-subject-token']);
  }
});
after(async () => {
  await app?.close();
  ctx?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

const as = (user: string) => ({ 'x-auth-token': tokens[user]! });
const get = (url: string, user = 'root-admin') => app.inject({ url, headers: as(user) });
const create = (payload: object, user = 'root-admin') => app.inject({ method: 'POST', url: '/image/v2/images', payload, headers: as(user) });
const upload = (id: string, body: Buffer | Readable, user = 'root-admin', type = 'application/octet-stream') =>
  app.inject({ method: 'PUT', url: `/image/v2/images/${id}/file`, payload: body, headers: { ...as(user), 'content-type': type } });
const uploadsLeft = () => (existsSync(join(home, 'uploads')) ? readdirSync(join(home, 'uploads')) : []);

test('versions: 300 at /image and /image/, 200 at /image/versions, v2 CURRENT on the address the client used, no token needed', async () => {
  for (const url of ['/image', '/image/']) {
    const r = await app.inject({ url, headers: { host: 'cloud.example:8443' } });
    assert.equal(r.statusCode, 300, url);
    const [current] = r.json().versions;
    assert.deepEqual(current, { id: 'v2.15', status: 'CURRENT', links: [{ rel: 'self', href: 'http://cloud.example:8443/image/v2/' }] });
  }
  const v = await app.inject({ url: '/image/versions' });
  assert.equal(v.statusCode, 200);
  assert.ok(v.json().versions.every((x: { id: string }) => x.id.startsWith('v2.')));
});

test('no token: 401 in Glance\'s shape, with where to get one', async () => {
  const r = await app.inject({ url: '/image/v2/images' });
  assert.equal(r.statusCode, 401);
  assert.equal(r.json().code, '401 Unauthorized');
  assert.match(r.json().message, /X-Auth-Token/);
});

test('list: kumo\'s images in Glance\'s shape, newest first, with first and schema', async () => {
  const r = await get('/image/v2/images');
  assert.equal(r.statusCode, 200, r.body);
  const body = r.json();
  assert.equal(body.first, '/v2/images');
  assert.equal(body.schema, '/v2/schemas/images');
  assert.equal(body.next, undefined);
  assert.deepEqual(body.images.map((i: { name: string }) => i.name), ['gamma', 'beta', 'alpha']);
  const alpha = body.images[2];
  const id = osUuid('image', 'alpha');
  assert.deepEqual(alpha, {
    id, name: 'alpha', status: 'active', visibility: 'public', protected: false, os_hidden: false,
    disk_format: 'qcow2', container_format: 'bare', size: 1000, virtual_size: 1 << 30,
    checksum: null, os_hash_algo: null, os_hash_value: null, owner: 'default', min_disk: 0, min_ram: 0, tags: [],
    created_at: '2026-12-01T10:00:00Z', updated_at: '2026-12-01T10:00:00Z',
    self: `/v2/images/${id}`, file: `/v2/images/${id}/file`, schema: '/v2/schemas/image',
  });
  // A reader sees the same; a trailing slash is tolerated.
  assert.equal((await get('/image/v2/images/', 'rita')).json().images.length, 3);
});

test('list: filters, sorting, and pages that follow the next link to the end', async () => {
  assert.deepEqual((await get('/image/v2/images?name=beta')).json().images.map((i: { name: string }) => i.name), ['beta']);
  assert.deepEqual((await get('/image/v2/images?name=in:alpha,gamma&sort_key=name&sort_dir=asc')).json().images.map((i: { name: string }) => i.name), ['alpha', 'gamma']);
  assert.equal((await get('/image/v2/images?status=queued')).json().images.length, 0);
  assert.equal((await get('/image/v2/images?visibility=private')).json().images.length, 0);
  // openstacksdk's find looks among hidden images with os_hidden=True.
  assert.equal((await get('/image/v2/images?os_hidden=True&name=beta')).json().images.length, 0);
  assert.equal((await get('/image/v2/images?os_hidden=false&name=beta')).json().images.length, 1);
  assert.equal((await get('/image/v2/images?size_min=1500&size_max=2500')).json().images[0].name, 'beta');
  assert.deepEqual((await get('/image/v2/images?created_at=gt:2026-12-01T12:00:00Z&sort=created_at:asc')).json().images.map((i: { name: string }) => i.name), ['beta', 'gamma']);
  const seen: string[] = [];
  let url: string | undefined = '/v2/images?limit=2';
  while (url) {
    const page: { images: { name: string }[]; next?: string } = (await get(`/image${url}`)).json();
    seen.push(...page.images.map((i: { name: string }) => i.name));
    url = page.next;
    if (url) assert.match(url, /^\/v2\/images\?limit=2&marker=[0-9a-f-]{36}$/);
  }
  assert.deepEqual(seen, ['gamma', 'beta', 'alpha']);
  for (const bad of ['limit=x', 'marker=nope', 'sort_key=colour', 'sort_dir=up&sort_key=name', 'visibility=secret', 'created_at=soon']) {
    const r = await get(`/image/v2/images?${bad}`);
    assert.equal(r.statusCode, 400, bad);
    assert.equal(r.json().code, '400 Bad Request', bad);
  }
});

test('show: by id; a name or an unknown id is a 404 in Glance\'s shape (clients then list by name)', async () => {
  const id = osUuid('image', 'beta');
  const r = await get(`/image/v2/images/${id}`, 'rita');
  assert.equal(r.statusCode, 200);
  assert.equal(r.json().name, 'beta');
  for (const unknown of ['beta', osUuid('image', 'nothing')]) {
    const miss = await get(`/image/v2/images/${unknown}`);
    assert.equal(miss.statusCode, 404);
    assert.deepEqual(Object.keys(miss.json()).sort(), ['code', 'message', 'title']);
    assert.equal(miss.json().code, '404 Not Found');
    assert.match(miss.json().message, /no image found with ID/);
  }
});

test('schemas: image and images, with the fields and additionalProperties for the client\'s own', async () => {
  const image = (await get('/image/v2/schemas/image', 'rita')).json();
  assert.equal(image.name, 'image');
  for (const field of ['id', 'name', 'status', 'visibility', 'disk_format', 'container_format', 'min_disk', 'min_ram', 'tags']) assert.ok(image.properties[field], field);
  assert.deepEqual(image.additionalProperties, { type: 'string' });
  const images = (await get('/image/v2/schemas/images')).json();
  assert.equal(images.properties.images.items.name, 'image');
});

test('roles: a member or a reader may not create, upload or delete images (403, Glance\'s shape)', async () => {
  const id = osUuid('image', 'alpha');
  for (const user of ['alice', 'rita']) {
    for (const r of [await create({ name: 'mine', disk_format: 'qcow2' }, user), await upload(id, qcow2, user),
      await app.inject({ method: 'DELETE', url: `/image/v2/images/${id}`, headers: as(user) })]) {
      assert.equal(r.statusCode, 403, `${user}: ${r.body}`);
      assert.equal(r.json().code, '403 Forbidden');
    }
  }
  assert.ok(ctx.images.get('alpha'));
});

test('create: bad input is a 400 (403 for a read-only field, 409 for a name in use) naming the fix, and nothing is queued', async () => {
  const cases: [object, number, RegExp][] = [
    [{ disk_format: 'qcow2' }, 400, /needs a name/],
    [{ name: 'no spaces please' }, 400, /image name .* is not valid/],
    [{ name: 'x1', disk_format: 'vmdk' }, 400, /qcow2 or raw.*qemu-img convert/],
    [{ name: 'x1', container_format: 'ovf' }, 400, /bare/],
    [{ name: 'x1', visibility: 'private' }, 400, /public/],
    [{ name: 'x1', protected: true }, 400, /protected/],
    [{ name: 'x1', tags: ['a'] }, 400, /tags/],
    [{ name: 'x1', id: osUuid('image', 'other') }, 400, /derives an image's id from its name/],
    [{ name: 'x1', hw_disk_bus: 7 }, 400, /must be a string/],
    [{ name: 'x1', min_disk: -1 }, 400, /min_disk/],
    [{ name: 'x1', size: 5 }, 403, /read-only/],
    [{ name: 'alpha', disk_format: 'qcow2' }, 409, /already exists/],
  ];
  for (const [payload, status, message] of cases) {
    const r = await create(payload);
    assert.equal(r.statusCode, status, `${JSON.stringify(payload)}: ${r.body}`);
    assert.match(r.json().message, message, JSON.stringify(payload));
  }
  assert.equal((await get('/image/v2/images?status=queued')).json().images.length, 0);
});

test('create + upload: 201 queued with the client\'s properties, a failed upload leaves nothing, a good one 204 and active', async () => {
  const r = await create({ name: 'up1', disk_format: 'qcow2', container_format: 'bare', min_ram: 64, 'owner_specified.openstack.md5': '' });
  assert.equal(r.statusCode, 201, r.body);
  const queued = r.json();
  const id = osUuid('image', 'up1');
  assert.equal(queued.id, id);
  assert.equal(queued.status, 'queued');
  assert.equal(queued.size, null);
  assert.equal(queued.min_ram, 64);
  assert.equal(queued['owner_specified.openstack.md5'], '');
  assert.match(queued.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal((await get(`/image/v2/images/${id}`)).json().status, 'queued');
  assert.equal((await get('/image/v2/images?status=queued')).json().images[0].id, id);
  // Another project does not see it; the same name cannot be queued twice.
  assert.equal((await get(`/image/v2/images/${id}`, 'alice')).statusCode, 404);
  assert.equal((await create({ name: 'up1' })).statusCode, 409);

  const json = await upload(id, Buffer.from('{}'), 'root-admin', 'application/json');
  assert.equal(json.statusCode, 415, json.body);
  const junk = await upload(id, Buffer.from('not a disk image at all'));
  assert.equal(junk.statusCode, 400, junk.body);
  assert.match(junk.json().message, /not a disk image/);
  assert.equal((await get(`/image/v2/images/${id}`)).json().status, 'queued');
  assert.deepEqual(uploadsLeft(), []);
  assert.equal(existsSync(join(ctx.paths.images, 'up1')), false);

  const good = await upload(id, qcow2);
  assert.equal(good.statusCode, 204, good.body);
  const active = (await get(`/image/v2/images/${id}`)).json();
  assert.equal(active.status, 'active');
  assert.equal(active.disk_format, 'qcow2');
  assert.equal(active.size, qcow2.length);
  assert.equal(active.virtual_size, 16 * 2 ** 20);
  assert.equal(ctx.images.get('up1')?.format, 'qcow2');
  assert.deepEqual(uploadsLeft(), []);
  const again = await upload(id, qcow2);
  assert.equal(again.statusCode, 409, again.body);
});

test('upload over image.max_import_gib: 413, declared or streamed, and nothing is left', async () => {
  new SettingsService(ctx).set('image.max_import_gib', '0.0001');
  try {
    const id = (await create({ name: 'big1', disk_format: 'qcow2' })).json().id;
    const declared = await upload(id, qcow2);
    assert.equal(declared.statusCode, 413, declared.body);
    assert.match(declared.json().message, /image\.max_import_gib/);
    const streamed = await upload(id, Readable.from([qcow2.subarray(0, 65536), qcow2.subarray(65536)]));
    assert.equal(streamed.statusCode, 413, streamed.body);
    assert.equal((await get(`/image/v2/images/${id}`)).json().status, 'queued');
    assert.deepEqual(uploadsLeft(), []);
    assert.equal(ctx.images.get('big1'), undefined);
  } finally {
    new SettingsService(ctx).set('image.max_import_gib', '20');
  }
});

test('delete: a queued image is forgotten, a kumo image deleted (204), then 404', async () => {
  const id = (await create({ name: 'gone1', disk_format: 'raw' })).json().id;
  const r = await app.inject({ method: 'DELETE', url: `/image/v2/images/${id}`, headers: as('root-admin') });
  assert.equal(r.statusCode, 204, r.body);
  assert.equal((await get(`/image/v2/images/${id}`)).statusCode, 404);
  const gamma = osUuid('image', 'gamma');
  const d = await app.inject({ method: 'DELETE', url: `/image/v2/images/${gamma}`, headers: as('root-admin') });
  assert.equal(d.statusCode, 204, d.body);
  assert.equal(ctx.images.get('gamma'), undefined);
  assert.equal(existsSync(join(ctx.paths.images, 'gamma')), false);
  assert.equal((await app.inject({ method: 'DELETE', url: `/image/v2/images/${gamma}`, headers: as('root-admin') })).statusCode, 404);
});
