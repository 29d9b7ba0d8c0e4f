import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { openContext, type Context } from '../../src/service/context.js';
import { ProjectService } from '../../src/service/projects.js';
import { buildServer, type ApiServer } from '../../src/api/server.js';
import { TokenService } from '../../src/service/tokens.js';
import { UserService } from '../../src/service/users.js';
import { IDENTITY_TOKEN_TTL_MS, IdentityService } from '../../src/service/identity.js';
import { osUuid } from '../../src/api/openstack/common.js';

/** Keystone v3 of the OpenStack face: discovery, tokens by password and application credential, expiry, revocation. */

let home: string;
let ctx: Context;
let app: ApiServer;
const PASSWORD = 'correct horse battery';

before(async () => {
  home = await mkdtemp('/tmp/kumo-unit-keystone-');
  ctx = openContext({ home });
  new ProjectService(ctx).create('p1');
  const users = new UserService(ctx);
  await users.create('alice', 'p1', 'member', PASSWORD);
  await users.create('root-admin', 'default', 'admin', PASSWORD);
  app = await buildServer(ctx, { monitor: false, webRoot: `${home}/no-web`, watchDomains: false });
  await app.ready();
});
after(async () => {
  await app?.close();
  ctx?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

const passwordAuth = (name: string, password: string, project?: string) => ({
  auth: {
    identity: { methods: ['password'], password: { user: { name, domain: { name: 'Default' }, password } } },
    ...(project ? { scope: { project: { name: project, domain: { name: 'Default' } } } } : {}),
  },
});

test('discovery: /identity answers 300 with v3, /identity/v3 and /identity/v3/ the version, links on the address the client used', async () => {
  const all = await app.inject({ url: '/identity', headers: { host: 'cloud.example:8443' } });
  assert.equal(all.statusCode, 300);
  const v = all.json().versions.values[0];
  assert.equal(v.id, 'v3.14');
  assert.equal(v.status, 'stable');
  assert.deepEqual(v.links, [{ rel: 'self', href: 'http://cloud.example:8443/identity/v3/' }]);
  for (const url of ['/identity/v3', '/identity/v3/']) {
    const one = await app.inject({ url, headers: { host: 'h:1' } });
    assert.equal(one.statusCode, 200, url);
    assert.equal(one.json().version.links[0].href, 'http://h:1/identity/v3/');
  }
});

test('password: 201, the token in X-Subject-Token, user, project, roles and a catalog of the five services', async () => {
  const r = await app.inject({ method: 'POST', url: '/identity/v3/auth/tokens', payload: passwordAuth('alice', PASSWORD, 'p1'), headers: { host: 'k:5000' } });
  assert.equal(r.statusCode, 201, r.body);
  const token = r.headers['x-subject-token'];
  assert.match(String(token), /^[A-Za-z0-9_-]{43}$/);
  const t = r.json().token;
  assert.deepEqual(t.methods, ['password']);
  assert.equal(t.user.name, 'alice');
  assert.deepEqual(t.project, { id: 'p1', name: 'p1', domain: { id: 'default', name: 'Default' } });
  assert.deepEqual(t.roles.map((x: { name: string }) => x.name).sort(), ['member', 'reader']);
  assert.match(t.expires_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  const left = Date.parse(t.expires_at) - Date.now();
  assert.ok(left > IDENTITY_TOKEN_TTL_MS - 60_000 && left <= IDENTITY_TOKEN_TTL_MS, String(left));
  const types = t.catalog.map((s: { type: string }) => s.type).sort();
  assert.deepEqual(types, ['block-storage', 'compute', 'identity', 'image', 'network', 'volumev3']);
  const compute = t.catalog.find((s: { type: string }) => s.type === 'compute');
  assert.deepEqual(compute.endpoints.map((e: { interface: string }) => e.interface).sort(), ['internal', 'public']);
  assert.equal(compute.endpoints[0].url, 'http://k:5000/compute/v2.1');
  assert.equal(compute.endpoints[0].region, 'RegionOne');
  const volume = t.catalog.find((s: { type: string }) => s.type === 'volumev3');
  assert.equal(volume.endpoints[0].url, 'http://k:5000/volume/v3/p1');
  // The token validates itself, and is revoked by DELETE.
  const check = await app.inject({ url: '/identity/v3/auth/tokens', headers: { 'x-auth-token': token, 'x-subject-token': token } });
  assert.equal(check.statusCode, 200, check.body);
  assert.equal(check.json().token.user.name, 'alice');
  const gone = await app.inject({ method: 'DELETE', url: '/identity/v3/auth/tokens', headers: { 'x-auth-token': token, 'x-subject-token': token } });
  assert.equal(gone.statusCode, 204);
  const after = await app.inject({ url: '/identity/v3/auth/tokens', headers: { 'x-auth-token': token, 'x-subject-token': token } });
  assert.equal(after.statusCode, 401);
  assert.equal(after.json().error.code, 401);
});

test('a wrong password, another project, an unknown method and a bad body: 400/401 in Keystone\'s shape, no token', async () => {
  const wrong = await app.inject({ method: 'POST', url: '/identity/v3/auth/tokens', payload: passwordAuth('alice', 'nope') });
  assert.equal(wrong.statusCode, 401);
  assert.equal(wrong.headers['x-subject-token'], undefined);
  assert.match(wrong.json().error.message, /user name or password is wrong/);
  assert.match(String(wrong.headers['www-authenticate']), /^Keystone uri=/);
  const other = await app.inject({ method: 'POST', url: '/identity/v3/auth/tokens', payload: passwordAuth('alice', PASSWORD, 'default') });
  assert.equal(other.statusCode, 401);
  assert.match(other.json().error.message, /no access to project "default".*OS_PROJECT_NAME=p1/);
  const method = await app.inject({ method: 'POST', url: '/identity/v3/auth/tokens', payload: { auth: { identity: { methods: ['totp'], totp: {} } } } });
  assert.equal(method.statusCode, 400);
  assert.match(method.json().error.message, /serves the methods "password" and "application_credential"/);
  const bad = await app.inject({ method: 'POST', url: '/identity/v3/auth/tokens', payload: { auth: 'x' } });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().error.title, 'Bad Request');
});

test('an admin may scope to any project; the token then acts there', async () => {
  const r = await app.inject({ method: 'POST', url: '/identity/v3/auth/tokens', payload: passwordAuth('root-admin', PASSWORD, 'p1') });
  assert.equal(r.statusCode, 201, r.body);
  assert.equal(r.json().token.project.name, 'p1');
  const v = new IdentityService(ctx).verify(String(r.headers['x-subject-token']));
  assert.equal(v?.actor.project, 'p1');
});

test('application credential: a kumo API token\'s id and secret; a wrong pair is refused; revoking the API token ends the Keystone token', async () => {
  const made = new TokenService(ctx).create('os-ci', { project: 'p1', role: 'reader' });
  const body = (id: string, secret: string) => ({ auth: { identity: { methods: ['application_credential'], application_credential: { id, secret } } } });
  const r = await app.inject({ method: 'POST', url: '/identity/v3/auth/tokens', payload: body(made.id, made.token) });
  assert.equal(r.statusCode, 201, r.body);
  const t = r.json().token;
  assert.deepEqual(t.methods, ['application_credential']);
  assert.equal(t.project.name, 'p1');
  assert.deepEqual(t.roles.map((x: { name: string }) => x.name), ['reader']);
  const wrongId = await app.inject({ method: 'POST', url: '/identity/v3/auth/tokens', payload: body('00000000', made.token) });
  assert.equal(wrongId.statusCode, 401);
  const token = String(r.headers['x-subject-token']);
  assert.ok(new IdentityService(ctx).verify(token));
  new TokenService(ctx).revoke(made.id);
  assert.equal(new IdentityService(ctx).verify(token), undefined);
});

test('tokens expire: after their hour a token is refused and forgotten', async () => {
  const svc = new IdentityService(ctx);
  const now = Date.now();
  const t = await svc.withPassword('alice', PASSWORD, undefined, '127.0.0.9', now);
  assert.ok(svc.verify(t.token, now + IDENTITY_TOKEN_TTL_MS - 1));
  assert.equal(svc.verify(t.token, now + IDENTITY_TOKEN_TTL_MS), undefined);
  assert.equal(svc.verify(t.token, now), undefined, 'an expired token is deleted when met');
});

test('ids: stable for the same key, different for another, in UUID form', () => {
  const a = osUuid('image', 'tiny');
  assert.equal(a, osUuid('image', 'tiny'));
  assert.notEqual(a, osUuid('image', 'tiny2'));
  assert.notEqual(a, osUuid('volume', 'tiny'));
  assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});
