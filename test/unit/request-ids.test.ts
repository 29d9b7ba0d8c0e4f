import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { openContext, type Context } from '../../src/service/context.js';
import { buildServer, type ApiServer } from '../../src/api/server.js';
import { TokenService } from '../../src/service/tokens.js';
import { AuditService } from '../../src/service/audit.js';
import { lineLog } from '../../src/cli/log-lines.js';

/** Each API answer names its request (X-Request-Id), and the audit log keeps that id. */
let home: string;
let ctx: Context;
let app: ApiServer;
let token: string;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

before(async () => {
  home = await mkdtemp('/tmp/kumo-unit-reqid-');
  ctx = openContext({ home });
  app = await buildServer(ctx, { monitor: false, webRoot: `${home}/no-web` });
  await app.ready();
  token = new TokenService(ctx).create('unit-reqid').token;
});
after(async () => {
  await app?.close();
  ctx?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

const createFlavor = (name: string, headers: Record<string, string> = {}) => app.inject({
  method: 'POST', url: '/api/v1/flavors', headers: { authorization: `Bearer ${token}`, ...headers }, payload: { name, vcpus: 1, ramMiB: 256, diskGiB: 1 },
});
const auditOf = (name: string) => new AuditService(ctx).recent(50).find((e) => e.target === name);

test('every answer carries a request id of its own, and the audit entry of a change has it', async () => {
  const health = await app.inject({ method: 'GET', url: '/api/v1/health' });
  assert.match(String(health.headers['x-request-id']), UUID);
  const missing = await app.inject({ method: 'GET', url: '/api/v1/nowhere' });
  assert.match(String(missing.headers['x-request-id']), UUID, 'a 404 names its request too');
  assert.notEqual(missing.headers['x-request-id'], health.headers['x-request-id']);

  const made = await createFlavor('rq1');
  assert.equal(made.statusCode, 201, made.body);
  const id = String(made.headers['x-request-id']);
  assert.match(id, UUID);
  assert.equal(auditOf('rq1')?.requestId, id);
});

test('a proxy\'s X-Request-Id is kept when it is a plain token; anything else gets an id of kumo\'s own', async () => {
  const given = await createFlavor('rq2', { 'x-request-id': 'edge-7f3a9c2e.1' });
  assert.equal(given.statusCode, 201, given.body);
  assert.equal(given.headers['x-request-id'], 'edge-7f3a9c2e.1');
  assert.equal(auditOf('rq2')?.requestId, 'edge-7f3a9c2e.1');
  for (const bad of ['short', 'a b c d e f g h', 'x'.repeat(65), 'id"}{"level":"fatal']) {
    const r = await app.inject({ method: 'GET', url: '/api/v1/health', headers: { 'x-request-id': bad } });
    assert.match(String(r.headers['x-request-id']), UUID, `"${bad}" is replaced`);
  }
});

test('the log of a long-running command: text lines, or one JSON object a line with its fields', () => {
  const out: string[] = [];
  const err: string[] = [];
  const [o, e] = [process.stdout.write, process.stderr.write];
  process.stdout.write = ((s: string) => out.push(s) > 0) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => err.push(s) > 0) as typeof process.stderr.write;
  try {
    lineLog('ha', 'json').info('host kvm1 DOWN', { host: 'kvm1' });
    lineLog('ha', 'json').warn('fence failed');
    lineLog('monitor', 'text').info('read 4 instances');
    lineLog('monitor', 'text').error('could not record');
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
  const first = JSON.parse(out[0]!) as Record<string, unknown>;
  assert.deepEqual({ ...first, time: '' }, { time: '', level: 'info', component: 'ha', msg: 'host kvm1 DOWN', host: 'kvm1' });
  assert.ok(!Number.isNaN(Date.parse(String(first.time))));
  assert.deepEqual({ ...(JSON.parse(err[0]!) as object), time: '' }, { time: '', level: 'warn', component: 'ha', msg: 'fence failed' });
  assert.match(out[1]!, /^\d{4}-\d\d-\d\dT[\d:.]+Z read 4 instances\n$/);
  assert.match(err[1]!, /^\S+Z error: could not record\n$/);
});
