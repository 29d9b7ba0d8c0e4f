import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { openContext, type Context } from '../../src/service/context.js';
import { ProjectService } from '../../src/service/projects.js';
import { buildServer, type ApiServer } from '../../src/api/server.js';
import { TokenService } from '../../src/service/tokens.js';
import { UserService } from '../../src/service/users.js';
import { LoginThrottle, SessionService } from '../../src/service/sessions.js';
import { hashLoginPassword, SCRYPT_PARAMS, verifyLoginPassword } from '../../src/model/login-password.js';
import { declareRouteRoles, registeredRouteRoles, ROUTE_ROLES } from '../../src/api/roles.js';
import Fastify from 'fastify';
import { KumoError } from '../../src/model/errors.js';

let home: string;
let ctx: Context;
let app: ApiServer;

before(async () => {
  home = await mkdtemp('/tmp/kumo-unit-users-');
  ctx = openContext({ home });
  // The projects the tests act in (as root on the machine makes them).
  for (const name of ['p1', 'p2']) new ProjectService(ctx).create(name);
  app = await buildServer(ctx, { monitor: false, webRoot: `${home}/no-web` });
  await app.ready();
});
after(async () => {
  await app?.close();
  ctx?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

const PASSWORD = 'correct horse battery';

test('login passwords: scrypt with its parameters and a per-user salt in the string; verify accepts it and nothing else', async () => {
  const a = await hashLoginPassword(PASSWORD);
  const b = await hashLoginPassword(PASSWORD);
  const m = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(a);
  assert.ok(m, a);
  assert.deepEqual([Number(m[1]), Number(m[2]), Number(m[3])], [SCRYPT_PARAMS.N, SCRYPT_PARAMS.r, SCRYPT_PARAMS.p]);
  assert.equal(Buffer.from(m[4]!, 'base64url').length, 16, '128-bit salt');
  assert.notEqual(a, b, 'a new salt each time');
  assert.equal(await verifyLoginPassword(PASSWORD, a), true);
  assert.equal(await verifyLoginPassword(`${PASSWORD}!`, a), false);
  assert.equal(await verifyLoginPassword(PASSWORD, a.replace(/\$[^$]+$/, '$AAAA')), false, 'a malformed hash is never a match');
  assert.equal(await verifyLoginPassword(PASSWORD, 'scrypt$1073741824$8$1$c2FsdHNhbHRzYWx0c2FsdA$' + 'A'.repeat(43)), false, 'absurd parameters are refused, not computed');
  await assert.rejects(hashLoginPassword('short'), (e: KumoError) => e.code === 'INVALID_INPUT' && /at least 12/.test(e.message));
});

test('users: roles and names checked; verify gives the actor, or nothing for a wrong password or an unknown user', async () => {
  const users = new UserService(ctx);
  const u = await users.create('alice', 'p1', 'member', PASSWORD);
  assert.deepEqual({ ...u, createdAt: '' }, { name: 'alice', project: 'p1', role: 'member', createdAt: '' });
  assert.ok(!JSON.stringify(users.list()).includes('scrypt'), 'the hash is never shown');
  await assert.rejects(users.create('bob', 'p1', 'owner', PASSWORD), (e: KumoError) => e.code === 'INVALID_INPUT' && /admin, member, reader/.test(e.message));
  await assert.rejects(users.create('alice', 'p1', 'reader', PASSWORD), (e: KumoError) => e.code === 'ALREADY_EXISTS');
  await assert.rejects(users.create('bad name', 'p1', 'reader', PASSWORD), (e: KumoError) => e.code === 'INVALID_INPUT');
  assert.deepEqual(await users.verify('alice', PASSWORD), { kind: 'user', name: 'alice', project: 'p1', role: 'member' });
  assert.equal(await users.verify('alice', 'wrong password!!'), undefined);
  assert.equal(await users.verify('nobody', PASSWORD), undefined);
  await users.passwd('alice', 'another long password');
  assert.equal(await users.verify('alice', PASSWORD), undefined, 'the old password is gone');
  users.delete('alice');
  assert.throws(() => users.get('alice'), (e: KumoError) => e.code === 'NOT_FOUND');
});

test('every registered API route has a role, the table names only real routes, and an unlisted route cannot be registered', async () => {
  const seen = registeredRouteRoles(app);
  assert.ok(seen.size >= 70, `only ${seen.size} routes seen`);
  for (const [key, role] of seen) assert.equal(ROUTE_ROLES[key], role, key);
  for (const key of Object.keys(ROUTE_ROLES)) assert.ok(seen.has(key), `${key} is in the table but not a route`);
  // The OpenAPI document says it, for every documented route.
  const doc = app.swagger() as unknown as { paths: Record<string, Record<string, { 'x-kumo-role'?: string; description?: string; responses: Record<string, unknown> }>> };
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      assert.ok(op['x-kumo-role'], `${method} ${path} has no x-kumo-role`);
      assert.match(op.description ?? '', /Needs (no token|the role|a console ticket)/, `${method} ${path}`);
      if (op['x-kumo-role'] !== 'public') assert.ok(op.responses['403'], `${method} ${path} does not declare 403`);
    }
  }
  const other = Fastify();
  declareRouteRoles(other);
  assert.throws(() => other.get('/api/v1/forgotten', async () => 'x'), /GET \/forgotten has no role in ROUTE_ROLES/);
  await other.close();
});

const call = (method: 'GET' | 'HEAD' | 'POST' | 'DELETE', url: string, token: string, body?: unknown) =>
  app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(body !== undefined ? { payload: body as object } : {}) });

test('a reader reads its project and gets 403 FORBIDDEN on a write, naming the role needed and its own; a member cannot reach admin routes', async () => {
  const tokens = new TokenService(ctx);
  const reader = tokens.create('unit-reader', { project: 'p1', role: 'reader' }).token;
  const member = tokens.create('unit-member', { project: 'p1', role: 'member' }).token;
  assert.equal((await call('GET', '/api/v1/flavors', reader)).statusCode, 200);
  const refused = await call('DELETE', '/api/v1/volumes/nothing', reader);
  assert.equal(refused.statusCode, 403, refused.body);
  const err = refused.json<{ error: { code: string; message: string; fix: string } }>().error;
  assert.equal(err.code, 'FORBIDDEN');
  assert.match(err.message, /needs the role member; token "unit-reader" is a reader of project "p1"/);
  assert.match(err.fix, /--role member/);
  for (const [method, url] of [['GET', '/api/v1/hosts'], ['GET', '/api/v1/audit'], ['POST', '/api/v1/flavors'], ['GET', '/metrics']] as const) {
    const a = await call(method, url, member, method === 'POST' ? { name: 'f', vcpus: 1, ramMiB: 512, diskGiB: 1 } : undefined);
    assert.equal(a.statusCode, 403, `${method} ${url}: ${a.body}`);
    assert.match(a.json<{ error: { message: string } }>().error.message, /needs the role admin; token "unit-member" is a member/);
  }
  assert.equal((await call('HEAD', '/api/v1/hosts', member)).statusCode, 403, 'HEAD is a GET: the same role');
  // The default stays what it was: a token made without a scope is an admin of default.
  const admin = tokens.create('unit-admin').token;
  assert.equal((await call('GET', '/api/v1/audit', admin)).statusCode, 200);
  assert.deepEqual(tokens.list().find((t) => t.name === 'unit-admin')?.role, 'admin');
});

test('?project=: an admin acts in the project it names; anyone else naming a project not theirs gets 404, never a hint it exists', async () => {
  const tokens = new TokenService(ctx);
  const admin = tokens.create('unit-admin2').token;
  const member = tokens.create('unit-member2', { project: 'p1', role: 'member' }).token;
  const seen = (await call('GET', '/api/v1/session?project=p2', admin)).json<{ actor: { project: string; role: string } }>();
  assert.deepEqual(seen.actor, { kind: 'token', name: 'unit-admin2', project: 'p2', role: 'admin' });
  assert.equal((await call('GET', '/api/v1/session?project=p1', member)).statusCode, 200, 'its own project may be named');
  const other = await call('GET', '/api/v1/flavors?project=p2', member);
  assert.equal(other.statusCode, 404);
  assert.equal(other.json<{ error: { code: string } }>().error.code, 'NOT_FOUND');
  assert.equal(other.json<{ error: { message: string } }>().error.message, 'there is no project "p2"');
});

test('logins: a wrong password is slowed, and after five failures even the right one waits (TOO_BUSY)', async () => {
  await new UserService(ctx).create('carol', 'p1', 'reader', PASSWORD);
  const sessions = new SessionService(ctx, new LoginThrottle(20, 100));
  const t0 = Date.now();
  assert.equal(await sessions.login('carol', 'not the password', '192.0.2.1'), undefined);
  assert.ok(Date.now() - t0 >= 20, 'the failure answered late');
  for (let i = 0; i < 4; i++) assert.equal(await sessions.login('carol', `wrong ${i} password`, '192.0.2.1'), undefined);
  await assert.rejects(sessions.login('carol', PASSWORD, '192.0.2.9'), (e: KumoError) => e.code === 'TOO_BUSY' && /too many failed logins/.test(e.message));
  const s = await new SessionService(ctx).login('carol', PASSWORD, '192.0.2.9');
  assert.ok(s, 'another server process (a new throttle) lets the right password in');
  assert.equal(sessions.lookup(s.cookie)?.actor.role, 'reader');
  sessions.logout(s.cookie);
  assert.equal(sessions.lookup(s.cookie), undefined, 'logged out');
});

test('tokens made before roles (rows without a project or role) are admins of default, as every token was', () => {
  ctx.db.prepare('INSERT INTO api_tokens (id, name, hash, created_at) VALUES (?, ?, ?, ?)').run('0000abcd', 'old-ci', 'f'.repeat(64), new Date().toISOString());
  const old = new TokenService(ctx).list().find((t) => t.name === 'old-ci');
  assert.deepEqual([old?.project, old?.role], ['default', 'admin']);
  assert.throws(() => new TokenService(ctx).create('bad-role', { role: 'root' }), (e: KumoError) => e.code === 'INVALID_INPUT' && /admin, member, reader/.test(e.message));
});
