import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { openContext, type Context } from '../../src/service/context.js';
import { buildServer, type ApiServer } from '../../src/api/server.js';
import { TokenService } from '../../src/service/tokens.js';
import { API_PREFIX } from '../../src/api/schemas.js';

/**
 * A full KUMO_HOME reaching the API outside an operation's undo (the store refusing a write)
 * answers 507 NO_SPACE naming the filesystem and the fix, not a 500 with the detail withheld;
 * and every route that may write says so in /openapi.json.
 */
let home: string;
let ctx: Context;
let app: ApiServer;
let token: string;

before(async () => {
  home = await mkdtemp('/tmp/kumo-unit-nospace-');
  ctx = openContext({ home });
  app = await buildServer(ctx, { monitor: false, webRoot: `${home}/no-web` });
  // A route of the test's own that hits what a full store throws (better-sqlite3's SqliteError).
  app.post('/test/full-store', { config: { kumoRole: 'member' } }, async () => {
    throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
  });
  await app.ready();
  token = new TokenService(ctx).ensureAdmin()!.token;
});
after(async () => {
  await app?.close();
  ctx?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

test('the store refusing a write for want of space answers 507 NO_SPACE, naming what could not be written and the fix', async () => {
  const r = await app.inject({ method: 'POST', url: '/test/full-store', headers: { authorization: `Bearer ${token}` } });
  assert.equal(r.statusCode, 507, r.body);
  const { error } = r.json() as { error: { code: string; message: string; fix?: string } };
  assert.equal(error.code, 'NO_SPACE');
  // KUMO_HOME itself has room here, so the message names the write and the free space under it.
  assert.match(error.message, new RegExp(`is full: kumo's store or files could not be written \\(\\d+ KiB free under ${home}\\)`));
  assert.match(error.fix ?? '', /free space/);
});

test('/openapi.json: every route that may write declares 507, no GET does', async () => {
  const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
  const writes = Object.entries(doc.paths).flatMap(([p, ops]) => Object.entries(ops).map(([m, op]) => ({ at: `${m} ${p}`, m, has: '507' in op.responses })));
  assert.ok(writes.some((w) => w.at === `post ${API_PREFIX}/instances`));
  assert.deepEqual(writes.filter((w) => w.m !== 'get' && w.at.startsWith(`${w.m} ${API_PREFIX}`) && !w.has).map((w) => w.at), []);
  assert.deepEqual(writes.filter((w) => w.m === 'get' && w.has).map((w) => w.at), []);
});
