import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeTestEnv, type TestEnv } from '../helpers/env.js';
import { API, ApiClient, apiToken, closeApiWorld, listenApi, type TestApi } from '../helpers/api.js';
import { OperationRegistry } from '../../src/service/operations.js';
import { SettingsService } from '../../src/service/settings.js';
import { local } from '../../src/exec/exec.js';
import { ImageService } from '../../src/service/images.js';
import { SECURITY_HEADERS } from '../../src/api/guards.js';

/**
 * Attack tests of issue 14 through the real API server (hostile input, safe errors, headers,
 * the operations cap, the audit log). No guest is booted: every finding is about the server.
 */

let env: TestEnv;
let api: TestApi | undefined;
let client: ApiClient;
let token: string;
const ops = new OperationRegistry();
/** What a test's held operations wait for. */
let release: () => void = () => {};

before(async () => {
  env = await makeTestEnv('atk');
  // Instance create checks its image before its user-data: the tiny one, from the test cache.
  await new ImageService(env.ctx).buildTiny();
  token = apiToken(env.ctx, `${env.prefix}-tok`);
  api = await listenApi(env.ctx, { ops });
  client = new ApiClient(api.base, token);
});

after(async () => {
  release();
  await closeApiWorld({ env, api, client });
});

const call = (...a: Parameters<ApiClient['call']>) => client.call(...a);
const health = async () => (await call('GET', `${API}/health`, undefined, null)).status;

test('deeply nested YAML twice, then a normal request: 400, 400, and the server still answers', async () => {
  for (const deep of ['['.repeat(2000), 'a: {'.repeat(500)]) {
    for (let i = 0; i < 2; i++) {
      const plan = await call('POST', `${API}/plans`, { file: deep });
      assert.equal(plan.status, 400, JSON.stringify(plan.body));
      assert.match(plan.body.error.message, /nests deeper than 64 levels/);
      const inst = await call('POST', `${API}/instances`, { name: `${env.prefix}-d${i}`, image: 'tiny', flavor: 'small', userData: `#cloud-config\nx: ${deep}` });
      assert.equal(inst.status, 400, JSON.stringify(inst.body));
    }
  }
  assert.equal(await health(), 200);
});

test('a YAML list just under the body limit is a 400 (size cap), and malformed or deep JSON bodies are 400s', async () => {
  let list = `name: ${env.prefix}\ninstances:\n`;
  while (list.length < 900 * 1024) list += '  - abcdefgh\n';
  const big = await call('POST', `${API}/plans`, { file: list });
  assert.equal(big.status, 400);
  assert.match(big.body.error.message, /bytes; kumo reads at most 65536 bytes of a datacenter file/);
  // Over the body limit: Fastify's 413, before anything is parsed (not declared per route: raw fetch).
  const huge = await fetch(`${api!.base}${API}/plans`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ file: `${list}${list}${list}` }) });
  assert.equal(huge.status, 413);
  for (const body of ['{"file": ', '['.repeat(200_000) + ']'.repeat(200_000), '{"file": ' + '['.repeat(100_000) + ']'.repeat(100_000) + '}']) {
    const res = await fetch(`${api!.base}${API}/plans`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });
    assert.equal(res.status, 400, body.slice(0, 20));
  }
  assert.equal(await health(), 200);
});

test('a failed command reaches the caller as a code, a sentence and an id: no argument list, no stderr; the audit log has the detail', async () => {
  const secret = `/nonexistent/${env.prefix}-secret-path`;
  const op = ops.startFor({ name: `${env.prefix}-tok`, project: 'default' }, 'image.import', `${env.prefix}-img`, async () => local.run('ls', ['-l', secret]));
  const done = await client.finished(op.id);
  assert.equal(done.state, 'failed');
  assert.equal(done.error.code, 'COMMAND_FAILED');
  assert.ok(!JSON.stringify(done).includes(secret) && !/No such file|ls -l/.test(JSON.stringify(done)), JSON.stringify(done));
  assert.match(done.error.message, new RegExp(op.id));
  const audit = await call('GET', `${API}/audit?limit=50`);
  const line = (audit.body as { via: string; action: string; result: string; detail?: string; actor: string }[]).find((e) => e.via === 'operation' && e.action === 'image.import');
  assert.ok(line?.detail?.includes(secret) && line.result === 'COMMAND_FAILED' && line.actor === `token:${env.prefix}-tok`, JSON.stringify(audit.body));
});

test('every answer carries CSP, frame-ancestors, nosniff and no-referrer: the dashboard, the API, the docs and errors', async () => {
  for (const path of ['/', `${API}/health`, `${API}/instances`, '/openapi.json', `${API}/no-such-route`]) {
    const res = await fetch(`${api!.base}${path}`, { headers: { authorization: `Bearer ${token}` } });
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) assert.equal(res.headers.get(name), value, `${name} on ${path}`);
    assert.match(res.headers.get('content-security-policy')!, /frame-ancestors 'none'/);
    assert.match(res.headers.get('content-security-policy')!, /script-src 'self'(;|$)/, 'no inline or eval scripts');
  }
});

test('over the cap on concurrent operations: 429 with Retry-After, per token and overall; the audit log says who', async () => {
  const settings = new SettingsService(env.ctx);
  settings.set('api.operations-per-token', '1');
  const held = new Promise<void>((r) => { release = r; });
  const holding = ops.startFor({ name: `${env.prefix}-tok`, project: 'default' }, 'image.build', 'held', async () => held);
  try {
    const busy = await call('POST', `${API}/images/build`, { recipe: 'tiny' });
    assert.equal(busy.status, 429, JSON.stringify(busy.body));
    assert.equal(busy.body.error.code, 'TOO_BUSY');
    assert.match(busy.body.error.message, /has 1 long operations running \(at most 1\)/);
    assert.ok(Number(busy.headers.get('retry-after')) > 0);
    settings.set('api.operations-per-token', '4');
    settings.set('api.operations-total', '1');
    const other = new ApiClient(api!.base, apiToken(env.ctx, `${env.prefix}-two`));
    const all = await other.call('POST', `${API}/images/build`, { recipe: 'tiny' });
    other.close();
    assert.equal(all.status, 429);
    assert.match(all.body.error.message, /1 long operations are running \(at most 1 at once\)/);
    const audit = (await call('GET', `${API}/audit?limit=20`)).body as { actor: string; action: string; result: string }[];
    assert.ok(audit.some((e) => e.actor === `token:${env.prefix}-two` && e.action === 'POST /api/v1/images/build' && e.result === 'TOO_BUSY'), JSON.stringify(audit));
  } finally {
    settings.set('api.operations-total', '16');
    release();
    await ops.wait(holding.id);
  }
});

test('the audit log records an API call and a CLI command (token or local user, action, target, result) and never a secret', async () => {
  const password = `pw-${env.prefix}-never-logged`;
  const made = await call('POST', `${API}/flavors`, { name: `${env.prefix}-f`, vcpus: 1, ramMiB: 256, diskGiB: 1 });
  assert.ok(made.status === 201 || made.status === 200, JSON.stringify(made.body));
  const bad = await call('POST', `${API}/instances`, { name: `${env.prefix}-s`, image: 'no-such-image', flavor: 'small', password, userData: `#cloud-config\nruncmd: [echo ${password}]\n` });
  assert.ok(bad.status >= 400);
  const cli = await env.cli(['token', 'create', `${env.prefix}-cli`]);
  assert.equal(cli.code, 0, cli.stderr);
  const secretToken = cli.stdout.trim();
  const audit = await env.cli(['audit', '--json', '--limit', '20']);
  assert.equal(audit.code, 0, audit.stderr);
  const entries = JSON.parse(audit.stdout) as { actor: string; project?: string; via: string; action: string; target?: string; result: string }[];
  const flavor = entries.find((e) => e.via === 'api' && e.action === 'POST /api/v1/flavors');
  assert.deepEqual(flavor && [flavor.actor, flavor.project, flavor.target, flavor.result], [`token:${env.prefix}-tok`, 'default', `${env.prefix}-f`, 'ok']);
  const create = entries.find((e) => e.via === 'cli' && e.action === 'token create');
  assert.ok(create && /^user:.+\(uid \d+\)$/.test(create.actor) && create.project === 'default' && create.target === `${env.prefix}-cli` && create.result === 'ok', audit.stdout);
  const over = await call('GET', `${API}/audit?limit=100`);
  const text = JSON.stringify(over.body) + audit.stdout;
  assert.ok(!text.includes(password) && !text.includes(secretToken) && !text.includes(token) && !text.includes('$6$'), 'no password, token or hash');
  assert.equal((await call('DELETE', `${API}/flavors/${env.prefix}-f`)).status, 204);
});
