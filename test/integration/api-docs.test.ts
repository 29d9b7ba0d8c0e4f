import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Validator } from '@seriousme/openapi-schema-validator';
import type { TestEnv } from '../helpers/env.js';
import { API, ApiClient, closeApiWorld, openApiWorld, refused, type TestApi } from '../helpers/api.js';
import { TokenService } from '../../src/service/tokens.js';

/**
 * The REST API's documents, in-process on 127.0.0.1:0 over a test's own KUMO_HOME: the OpenAPI
 * document checked by an OpenAPI validator, the docs page offline, and every route but health
 * and login answering 401 without a valid token.
 */

let env: TestEnv;
let api: TestApi | undefined;
let client: ApiClient;
let base: string;
let token: string;

before(async () => {
  ({ env, api, base, token, client } = await openApiWorld('doc'));
});

after(() => closeApiWorld({ env, api, client }));

const call = (...a: Parameters<ApiClient['call']>) => client.call(...a);

let doc: { openapi: string; paths: Record<string, Record<string, { operationId?: string; security?: unknown[]; requestBody?: { required?: boolean } }>> };

test('health answers without a token; /openapi.json is valid OpenAPI 3 and documents every route once', async () => {
  const health = await call('GET', `${API}/health`, undefined, null);
  assert.equal(health.status, 200);
  assert.equal(health.body.status, 'ok');

  const a = await call('GET', '/openapi.json', undefined, null);
  assert.equal(a.status, 200);
  doc = a.body;
  const validator = new Validator();
  const result = await validator.validate(doc as unknown as Record<string, unknown>);
  assert.equal(result.valid, true, JSON.stringify(result.errors, null, 1));
  assert.match(doc.openapi, /^3\./);
  validator.resolveRefs(); // throws on a $ref to nothing

  const routes = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`));
  for (const r of [
    'GET /api/v1/health', 'GET /api/v1/images', 'GET /api/v1/images/{name}', 'DELETE /api/v1/images/{name}', 'POST /api/v1/images/build',
    'GET /api/v1/flavors', 'GET /api/v1/flavors/{name}', 'POST /api/v1/flavors', 'DELETE /api/v1/flavors/{name}',
    'GET /api/v1/instances', 'GET /api/v1/instances/{name}', 'POST /api/v1/instances', 'DELETE /api/v1/instances/{name}',
    ...['start', 'stop', 'reboot', 'destroy', 'migrate'].map((x) => `POST /api/v1/instances/{name}/${x}`),
    'GET /api/v1/networks', 'GET /api/v1/networks/{name}', 'POST /api/v1/networks', 'DELETE /api/v1/networks/{name}',
    'POST /api/v1/networks/{name}/start', 'POST /api/v1/networks/{name}/stop',
    'GET /api/v1/volumes', 'GET /api/v1/volumes/{name}', 'POST /api/v1/volumes', 'DELETE /api/v1/volumes/{name}',
    'POST /api/v1/volumes/{name}/attach', 'POST /api/v1/volumes/{name}/detach',
    'GET /api/v1/instances/{instance}/snapshots', 'POST /api/v1/instances/{instance}/snapshots',
    'POST /api/v1/instances/{instance}/snapshots/{name}/revert', 'DELETE /api/v1/instances/{instance}/snapshots/{name}',
    'GET /api/v1/hosts', 'GET /api/v1/hosts/{name}', 'GET /api/v1/operations', 'GET /api/v1/operations/{id}', 'GET /api/v1/events',
    'POST /api/v1/images/import', 'POST /api/v1/instances/{name}/resize', 'GET /api/v1/instances/{name}/xml', 'GET /api/v1/instances/{name}/console-log',
    'POST /api/v1/networks/define', 'POST /api/v1/networks/{name}/autostart', 'GET /api/v1/networks/{name}/xml', 'POST /api/v1/volumes/{name}/resize',
    'GET /api/v1/info', 'POST /api/v1/hosts', 'DELETE /api/v1/hosts/{name}', 'POST /api/v1/hosts/{name}/evacuate',
    'GET /api/v1/shares', 'GET /api/v1/shares/{name}', 'POST /api/v1/shares', 'DELETE /api/v1/shares/{name}',
    'GET /api/v1/loadbalancers', 'GET /api/v1/loadbalancers/{name}', 'POST /api/v1/loadbalancers', 'DELETE /api/v1/loadbalancers/{name}',
    'PUT /api/v1/loadbalancers/{name}/instances', 'POST /api/v1/loadbalancers/{name}/sync', 'GET /api/v1/loadbalancers/{name}/waf-log',
    'POST /api/v1/plans', 'POST /api/v1/plans/apply', 'POST /api/v1/plans/destroy',
  ]) assert.ok(routes.includes(r), `${r} is not in the document`);
  const ids = Object.values(doc.paths).flatMap((ops) => Object.values(ops).map((o) => o.operationId));
  assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
  assert.ok(ids.every(Boolean), 'every operation has an operationId');
  assert.deepEqual(doc.paths[`${API}/health`]!.get!.security, [], 'health is documented as needing no token');
  assert.equal(doc.paths[`${API}/instances/{name}/stop`]!.post!.requestBody?.required, false, 'an optional body is documented as such');
  assert.equal(doc.paths[`${API}/instances`]!.post!.requestBody?.required, true);
});

test('the interactive page works offline: every file it loads comes from this server', async () => {
  const page = await fetch(`${base}/docs`);
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(html, /swagger-ui/i);
  const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
  assert.ok(refs.length >= 3, `page loads ${refs.join(', ')}`);
  for (const ref of refs) {
    assert.doesNotMatch(ref, /^(https?:)?\/\//, `${ref} would come from elsewhere`);
    const res = await fetch(new URL(ref, page.url));
    assert.equal(res.status, 200, `${ref}: ${res.status}`);
    await res.arrayBuffer();
  }
  const init = await (await fetch(new URL('swagger-initializer.js', page.url))).text();
  assert.doesNotMatch(init, /url: "https?:/, 'the document is loaded from this server');
});

test('every route but health and login answers 401 without a token, with a malformed, an unknown or a revoked one', async () => {
  const revoked = new TokenService(env.ctx).create('gone');
  new TokenService(env.ctx).revoke('gone');
  const wrong = `kumo_${'A'.repeat(43)}`;
  let checked = 0;
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const method of Object.keys(ops)) {
      // The routes documented as needing no token: health, and the dashboard's login.
      if (ops[method]!.security?.length === 0) continue;
      const url = path.replace(/\{[^}]+\}/g, 'x');
      for (const auth of [null, 'Bearer', `Basic ${Buffer.from('a:b').toString('base64')}`, `Bearer ${wrong}`, `Bearer ${revoked.token}`, `Bearer ${token}x`]) {
        const a = await call(method.toUpperCase(), url, method === 'get' || method === 'delete' ? undefined : {}, auth);
        refused(a, 401, 'UNAUTHORIZED');
        assert.match(a.headers.get('www-authenticate') ?? '', /^Bearer/);
      }
      checked++;
    }
  }
  assert.ok(checked >= 60, `${checked} routes checked`);
  // The token list holds hashes only: neither token appears in the store.
  const rows = JSON.stringify(env.ctx.db.prepare('SELECT * FROM api_tokens').all());
  assert.ok(!rows.includes(token.slice(5)) && rows.includes('test'));
  assert.ok(!rows.includes('gone'), 'a revoked token is gone from the store');
});
