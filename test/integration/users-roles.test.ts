import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { API, ApiClient, closeApiWorld, deleteMadeResources, openApiWorld, refused, type Answer, type ApiWorld } from '../helpers/api.js';
import { OpenApiResponses } from '../helpers/openapi-responses.js';
import { TokenService } from '../../src/service/tokens.js';
import { UserService } from '../../src/service/users.js';
import { VolumeService } from '../../src/service/volumes.js';

/**
 * Issue 15, roles: through the real API server, a reader reads and is refused every write, a
 * member is refused the admin's routes, and the dashboard's login gives a session cookie that
 * script cannot read, other sites cannot use, writes only with its CSRF value and ends at logout.
 * Before roles every token was an admin, and there was no login: each test failed.
 */

let w: ApiWorld;
let reader: ApiClient;
let member: ApiClient;
let contract: OpenApiResponses;
const PASSWORD = 'a long class password';

before(async () => {
  w = await openApiWorld('roles');
  const tokens = new TokenService(w.env.ctx);
  reader = new ApiClient(w.base, tokens.create(`${w.env.prefix}rd`, { role: 'reader' }).token);
  member = new ApiClient(w.base, tokens.create(`${w.env.prefix}mb`, { role: 'member' }).token);
  await new UserService(w.env.ctx).create(`${w.env.prefix}u`, 'default', 'member', PASSWORD);
  contract = await OpenApiResponses.of(w.base);
});
after(async () => {
  await closeApiWorld(w, async (env) => {
    for (const v of env.ctx.volumes.list()) if (v.name.startsWith(env.prefix)) await new VolumeService(env.ctx).delete(v.name).catch(() => undefined);
    await deleteMadeResources(env.ctx);
  });
});

/** A request with the headers given (a cookie, a CSRF value), its answer checked against the OpenAPI document like ApiClient's. */
async function raw(method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<Answer & { ms: number }> {
  const t0 = Date.now();
  const res = await fetch(w.base + path, {
    method, headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  const answer = { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined, ms: Date.now() - t0 };
  const wrong = contract.mismatch(method, path, res.status, res.headers.get('content-type') ?? '', answer.body);
  assert.equal(wrong, undefined, `${method} ${path}: ${text.slice(0, 500)}`);
  return answer;
}

test('a reader token lists, and every write it tries is 403 FORBIDDEN naming the role needed', async () => {
  const vol = `${w.env.prefix}v1`;
  assert.equal((await w.client.call('POST', `${API}/volumes`, { name: vol, sizeGiB: 1 })).status, 201);
  const listed = await reader.call('GET', `${API}/volumes`);
  assert.equal(listed.status, 200);
  assert.ok(listed.body.some((v: { name: string }) => v.name === vol), 'the reader sees the volume');
  const post = await reader.call('POST', `${API}/volumes`, { name: `${w.env.prefix}v2`, sizeGiB: 1 });
  refused(post, 403, 'FORBIDDEN');
  assert.match(post.body.error.message, /needs the role member; token "[^"]+rd" is a reader of project "default"/);
  refused(await reader.call('DELETE', `${API}/volumes/${vol}`), 403, 'FORBIDDEN');
  assert.ok(w.env.ctx.volumes.list().some((v) => v.name === vol), 'the volume is still there');
  assert.ok(!w.env.ctx.volumes.list().some((v) => v.name === `${w.env.prefix}v2`), 'nothing was made');
});

test('a member token cannot reach the admin\'s routes: hosts, audit, flavors, metrics', async () => {
  for (const [method, path, body] of [
    ['GET', `${API}/hosts`], ['POST', `${API}/hosts`, { name: 'x', uri: 'qemu:///system' }], ['GET', `${API}/audit`],
    ['POST', `${API}/flavors`, { name: 'x', vcpus: 1, ramMiB: 512, diskGiB: 1 }], ['GET', '/metrics'],
  ] as const) {
    const a = await member.call(method, path, body);
    refused(a, 403, 'FORBIDDEN');
    assert.match(a.body.error.message, /needs the role admin/, `${method} ${path}`);
  }
  assert.equal((await w.client.call('GET', `${API}/audit?limit=5`)).status, 200, 'the admin still reads the audit log');
  const mine = (await w.client.call('GET', `${API}/audit?limit=50`)).body.find((e: { actor: string }) => e.actor.endsWith('mb'));
  assert.equal(mine?.result, 'FORBIDDEN', 'the refusal is in the audit log');
  assert.equal(mine?.project, 'default');
});

test('login: an HttpOnly, SameSite=Strict session cookie; writes need its CSRF value; logout ends it', async () => {
  const user = `${w.env.prefix}u`;
  const login = await raw('POST', `${API}/login`, {}, { name: user, password: PASSWORD });
  assert.equal(login.status, 200);
  assert.deepEqual(login.body.actor, { kind: 'user', name: user, project: 'default', role: 'member' });
  const setCookie = login.headers.get('set-cookie') ?? '';
  assert.match(setCookie, /^kumo_session=[A-Za-z0-9_-]{43};/);
  for (const attr of ['HttpOnly', 'SameSite=Strict', 'Path=/']) assert.ok(setCookie.split('; ').includes(attr), `${attr} in ${setCookie}`);
  const cookie = setCookie.split(';')[0]!;
  const csrf: string = login.body.csrf;

  const who = await raw('GET', `${API}/session`, { cookie });
  assert.equal(who.status, 200);
  assert.equal(who.body.csrf, csrf);
  const vol = `${w.env.prefix}v3`;
  const forged = await raw('POST', `${API}/volumes`, { cookie }, { name: vol, sizeGiB: 1 });
  refused(forged, 403, 'FORBIDDEN');
  assert.match(forged.body.error.message, /X-Kumo-CSRF|x-kumo-csrf/);
  refused(await raw('POST', `${API}/volumes`, { cookie, 'x-kumo-csrf': `${csrf.slice(0, -1)}x` }, { name: vol, sizeGiB: 1 }), 403, 'FORBIDDEN');
  assert.ok(!w.env.ctx.volumes.list().some((v) => v.name === vol), 'no volume from a forged request');
  assert.equal((await raw('POST', `${API}/volumes`, { cookie, 'x-kumo-csrf': csrf }, { name: vol, sizeGiB: 1 })).status, 201);
  assert.equal((await raw('DELETE', `${API}/volumes/${vol}`, { cookie, 'x-kumo-csrf': csrf })).status, 204);
  // A member's session is a member: not an admin's routes.
  refused(await raw('GET', `${API}/hosts`, { cookie }), 403, 'FORBIDDEN');

  refused(await raw('POST', `${API}/logout`, { cookie }), 403, 'FORBIDDEN');
  const out = await raw('POST', `${API}/logout`, { cookie, 'x-kumo-csrf': csrf });
  assert.equal(out.status, 204);
  assert.match(out.headers.get('set-cookie') ?? '', /kumo_session=; .*Max-Age=0/);
  refused(await raw('GET', `${API}/session`, { cookie }), 401, 'UNAUTHORIZED');
});

test('wrong passwords are refused and slowed, and after five the user must wait (429) even with the right one', async () => {
  const user = `${w.env.prefix}u`;
  const unknown = await raw('POST', `${API}/login`, {}, { name: `${w.env.prefix}nobody`, password: PASSWORD });
  refused(unknown, 401, 'UNAUTHORIZED');
  let last = 0;
  for (let i = 1; i <= 5; i++) {
    const a = await raw('POST', `${API}/login`, {}, { name: user, password: `wrong password ${i}` });
    refused(a, 401, 'UNAUTHORIZED');
    assert.equal(a.body.error.message, unknown.body.error.message, 'a wrong password and an unknown user read the same');
    assert.ok(a.ms >= 250 * i - 50, `failure ${i} answered after ${a.ms} ms`);
    last = a.ms;
  }
  assert.ok(last >= 1000, 'each failure waits longer');
  const locked = await raw('POST', `${API}/login`, {}, { name: user, password: PASSWORD });
  refused(locked, 429, 'TOO_BUSY');
  assert.ok(locked.headers.get('retry-after'));
  assert.match(locked.body.error.message, /too many failed logins/);
});
