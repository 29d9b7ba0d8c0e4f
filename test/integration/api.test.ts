import { needsKvmMask } from '../../src/drivers/host/accel-probe.js';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { basename, join } from 'node:path';
import { Writable } from 'node:stream';
import { createInterface } from 'node:readline';
import { Validator } from '@seriousme/openapi-schema-validator';
import { freeSubnet, makeTestEnv, testCache, waitFor, type TestEnv } from '../helpers/env.js';
import { buildServer, type ApiServer, type ServerOptions } from '../../src/api/server.js';
import { MAX_QUEUED_BYTES } from '../../src/api/routes/events.js';
import { OperationRegistry } from '../../src/service/operations.js';
import { KumoError } from '../../src/model/errors.js';
import { TokenService } from '../../src/service/tokens.js';
import { HostService } from '../../src/service/host.js';
import { Virsh } from '../../src/drivers/libvirt/virsh.js';
import { buildNetworkXml, parseNetworkXml } from '../../src/drivers/libvirt/network-xml.js';
import { startLibvirtd, stopLibvirtd, type NamespacedLibvirtd } from '../../src/drivers/daemons/libvirtd/namespace.js';
import { local } from '../../src/exec/exec.js';
import { ShareService } from '../../src/service/shares.js';
import { LoadBalancerService } from '../../src/service/loadbalancers.js';
import { InstanceService } from '../../src/service/instances.js';
import { hashPassword } from '../../src/model/password.js';

/**
 * The REST API in-process on 127.0.0.1:0 over a test's own KUMO_HOME: every route's success,
 * 400 naming the field, 401 and 404; the OpenAPI document checked by an OpenAPI validator; the
 * docs page offline; a real instance created (202, Server-Sent Events until it runs), acted on,
 * live-migrated to a second libvirtd and deleted; and the CLI faces `kumo serve` and `kumo token`.
 */

let env: TestEnv;
let app: ApiServer | undefined;
/** Servers of their own that tests start (restarts, a stalled client, a broken route). */
const sides: ApiServer[] = [];
let base: string;
let token: string;
let stateDir: string | undefined;
let lab: NamespacedLibvirtd | undefined;
const streams: EventStream[] = [];
const children: ChildProcess[] = [];

const API = '/api/v1';
const inst = () => `${env.prefix}-a`;
const kvm2 = () => `${env.prefix}-kvm2`;
/** Network namespaces this run made for its storage and lb hosts (their daemons run inside). */
const namespaces: string[] = [];

before(async () => {
  env = await makeTestEnv('api');
  token = new TokenService(env.ctx).create('test').token;
  app = await buildServer(env.ctx);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  assert.ok(addr && typeof addr === 'object');
  base = `http://127.0.0.1:${addr.port}`;
});

after(async () => {
  // Pass or fail: streams, server, subprocesses, the instance wherever it is, the second daemon, the test's world.
  for (const s of streams) s.close();
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await app?.close();
  for (const s of sides) if (s.server.listening) await s.close();
  if (env) {
    for (const l of env.ctx.loadBalancers.list()) await new LoadBalancerService(env.ctx).delete(l.name).catch(() => undefined);
    for (const s of env.ctx.shares.list()) await new ShareService(env.ctx).delete(s.name).catch(() => undefined);
    for (const i of env.ctx.instances.list()) await new InstanceService(env.ctx).delete(i.name).catch(() => undefined);
  }
  // Anything still running in this run's namespaces was started by this run: end it, or the namespace outlives `ip netns del`.
  for (const n of namespaces) {
    const pids = (await local.run('ip', ['netns', 'pids', n], { allowFailure: true })).stdout.split('\n').map(Number).filter((p) => p > 1);
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone already */ } }
  }
  if (lab) {
    const dest = new Virsh(lab.uri);
    for (const d of await dest.listDomains().catch(() => [])) await dest.removeDomain(d.name).catch(() => undefined);
  }
  if (stateDir) {
    await stopLibvirtd(stateDir);
    await rm(stateDir, { recursive: true, force: true });
  }
  await env?.cleanup();
});

interface Answer {
  status: number;
  headers: Headers;
  // The body as JSON (shape checked by each test).
  body: any; // any: JSON of many shapes; each test asserts what it reads
}

/** One request; the test's token unless `auth` says otherwise (null: no Authorization header). */
async function call(method: string, path: string, body?: unknown, auth: string | null = `Bearer ${token}`): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (auth !== null) headers.authorization = auth;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(base + path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

/** Asserts an error answer: its status, its code, and (for bad input) the fields it names. */
function refused(a: Answer, status: number, code: string, fields: string[] = []): void {
  assert.equal(a.status, status, JSON.stringify(a.body));
  assert.equal(a.body.error.code, code);
  assert.ok(a.body.error.message.length > 0);
  for (const f of fields) {
    assert.ok(a.body.error.fields?.includes(f), `${f} not named in ${JSON.stringify(a.body.error)}`);
    assert.match(a.body.error.message, new RegExp(f.replaceAll('.', '\\.')));
  }
}

interface SseEvent { id: string; event: string; data: any } // any: event JSON, asserted by the tests

interface EventStream {
  events: SseEvent[];
  until(what: string, pick: (e: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent>;
  close(): void;
}

/** Reads /api/v1/events (of this test file's server, or `at`) as a client would, collecting every event. */
async function openEvents(headers: Record<string, string> = {}, at = base, query = ''): Promise<EventStream> {
  const ac = new AbortController();
  const res = await fetch(`${at}${API}/events${query}`, { headers: { authorization: `Bearer ${token}`, ...headers }, signal: ac.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const events: SseEvent[] = [];
  const reader = res.body!.getReader();
  void (async () => {
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const field = (k: string) => block.split('\n').find((l) => l.startsWith(`${k}: `))?.slice(k.length + 2);
        const data = field('data');
        if (data !== undefined) events.push({ id: field('id') ?? '', event: field('event') ?? 'message', data: JSON.parse(data) });
      }
    }
  })();
  const stream: EventStream = {
    events,
    until: (what, pick, timeoutMs = 300_000) => waitFor(what, async () => events.find(pick), timeoutMs),
    close: () => ac.abort(),
  };
  streams.push(stream);
  return stream;
}

/** Follows an operation over GET until it has finished. */
async function finished(id: string, timeoutMs = 300_000): Promise<any> { // any: Operation JSON
  return waitFor(`operation ${id}`, async () => {
    const a = await call('GET', `${API}/operations/${id}`);
    assert.equal(a.status, 200);
    return a.body.state === 'running' ? undefined : a.body;
  }, timeoutMs);
}

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

test('every route but health answers 401 without a token, with a malformed, an unknown or a revoked one', async () => {
  const revoked = new TokenService(env.ctx).create('gone');
  new TokenService(env.ctx).revoke('gone');
  const wrong = `kumo_${'A'.repeat(43)}`;
  let checked = 0;
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const method of Object.keys(ops)) {
      if (path === `${API}/health`) continue;
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

/** A server of its own on another port over the same home: its own operation registry is its own server run. */
async function sideServer(opts: ServerOptions = {}, routes?: (side: ApiServer) => void): Promise<{ app: ApiServer; base: string; port: number }> {
  const side = await buildServer(env.ctx, { monitor: false, ...opts });
  sides.push(side);
  routes?.(side);
  await side.listen({ host: '127.0.0.1', port: 0 });
  const addr = side.server.address();
  assert.ok(addr && typeof addr === 'object');
  return { app: side, base: `http://127.0.0.1:${addr.port}`, port: addr.port };
}

test('events: ids carry the server run; a reconnect replays within the run, and after a restart gets a reset event', async () => {
  const first = new OperationRegistry();
  const a = await sideServer({ ops: first });
  const live = await openEvents({}, a.base);
  first.resourceChanged('flavor', 'e1', 'created');
  first.resourceChanged('flavor', 'e2', 'created');
  await live.until('e2', (e) => e.data.name === 'e2', 10_000);
  const [e1, e2] = live.events;
  assert.equal(e1!.id, `${first.run}-1`);
  assert.deepEqual([e1!.data.id, e1!.data.seq, e2!.id], [e1!.id, 1, `${first.run}-2`]);
  // Within the run: what came after the last event seen, by header or by ?after=.
  for (const again of [await openEvents({ 'last-event-id': e1!.id }, a.base), await openEvents({}, a.base, `?after=${e1!.id}`)]) {
    await again.until('the replay', (e) => e.data.name === 'e2', 10_000);
    assert.deepEqual(again.events.map((e) => e.id), [e2!.id]);
    again.close();
  }
  live.close();
  await a.app.close();

  // The restart: a new run whose sequence numbers start at 1 again, over the same home.
  const second = new OperationRegistry();
  const b = await sideServer({ ops: second });
  for (const n of ['n1', 'n2', 'n3']) second.resourceChanged('flavor', n, 'created');
  for (const last of [e1!.id, e2!.id]) {
    const back = await openEvents({ 'last-event-id': last }, b.base);
    second.resourceChanged('flavor', `after-${last}`, 'created');
    await back.until('a live event', (e) => e.data.name === `after-${last}`, 10_000);
    // Not n2/n3 as if they followed the old run's events, nor silence: a reset, then the live stream.
    assert.deepEqual(back.events.map((e) => e.event), ['reset', 'resource']);
    const reset = back.events[0]!;
    assert.equal(reset.data.type, 'reset');
    assert.equal(reset.data.reason, 'restarted');
    assert.match(reset.data.message, /reload/);
    assert.equal(reset.id, `${second.run}-${back.events[1]!.data.seq - 1}`, 'the reset carries this run\'s newest id');
    back.close();
    // Reconnecting from the reset's id continues within the new run.
    const next = await openEvents({ 'last-event-id': reset.id }, b.base);
    await next.until('the replay', (e) => e.data.name === `after-${last}`, 10_000);
    assert.deepEqual(next.events.map((e) => e.event), ['resource']);
    next.close();
  }
  // A bare sequence number names no run (an older client's ?after=N): reset too.
  const bare = await openEvents({}, b.base, '?after=1');
  await bare.until('the reset', (e) => e.event === 'reset', 10_000);
  assert.equal(bare.events[0]!.data.reason, 'unknown');
  bare.close();
});

test('events: a client that stops reading is dropped once a bounded amount is queued for it, and catches up on its reconnect', async () => {
  const ops = new OperationRegistry();
  const side = await sideServer({ ops });
  const serverSockets: Socket[] = [];
  side.app.server.on('connection', (s: Socket) => serverSockets.push(s));
  const client = connect(side.port, '127.0.0.1');
  let received = 0;
  let head = '';
  let tail = '';
  client.on('data', (d: Buffer) => {
    received += d.length;
    if (head.length < 1024) head += d.toString();
    tail = (tail + d.toString()).slice(-16_384);
  });
  client.write(`GET ${API}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n\r\n`);
  await waitFor('the answer head', async () => (head.includes('\r\n\r\n') ? true : undefined), 10_000);
  assert.match(head, /^HTTP\/1\.1 200/);
  client.pause(); // from now on it reads nothing: the kernel's buffers fill, then the server's
  assert.equal(serverSockets.length, 1);
  const server = serverSockets[0]!;

  // ~4 kB an event: the bound is then ~250 events, well within the 1000 a reconnect can catch up on.
  const name = 'x'.repeat(4000);
  let produced = 0;
  let maxQueued = 0;
  while (!server.destroyed && produced < 20_000) {
    ops.resourceChanged('flavor', name, 'created');
    produced++;
    maxQueued = Math.max(maxQueued, server.writableLength);
    // Let the server write out what the socket takes, as it would between real events.
    if (produced % 50 === 0) await new Promise((r) => setImmediate(r));
  }
  assert.ok(server.destroyed, `still connected after ${produced} events (${maxQueued} bytes queued for it)`);
  assert.ok(maxQueued <= MAX_QUEUED_BYTES + name.length + 1_000, `${maxQueued} bytes were queued, more than the bound and one event`);

  // What the kernel had taken arrives, then the end of the connection.
  const closed = once(client, 'close');
  client.resume();
  await closed;
  const producedBytes = produced * 4_000;
  assert.ok(received < producedBytes, `the client got ${received} of ~${producedBytes} bytes`);
  const lastId = [...tail.matchAll(/^id: (\S+)\nevent: \S+\ndata: .*\n\n/gm)].at(-1)?.[1];
  assert.ok(lastId, 'the client got whole events before the drop');
  // Reconnecting from the last whole event it got, it gets every event after it, up to the newest.
  const back = await openEvents({ 'last-event-id': lastId }, side.base);
  await back.until('the newest event', (e) => e.id === ops.lastId(), 10_000);
  const from = Number(lastId.split('-')[1]);
  assert.deepEqual(back.events.map((e) => e.data.seq), Array.from({ length: ops.lastSeq() - from }, (_, i) => from + 1 + i));
  back.close();
});

test('an unexpected error is a 500 with code INTERNAL and the request id, its details in the server log only', async () => {
  const log: string[] = [];
  const stream = new Writable({ write(chunk: Buffer, _enc, done) { log.push(chunk.toString()); done(); } });
  const secret = 'open /var/lib/kumo/secret.db: SQLITE_CORRUPT';
  const side = await sideServer({ logger: { level: 'error', stream } }, (s) => {
    s.get(`${API}/test-broken`, async () => { throw new Error(secret); });
    s.get(`${API}/test-known`, async () => { throw new KumoError('LIBVIRT_ERROR', 'libvirt refused', 'check libvirtd'); });
  });
  const ids: string[] = [];
  for (let i = 0; i < 2; i++) {
    const res = await fetch(`${side.base}${API}/test-broken`);
    const body = await res.json() as { error: { code: string; message: string; fix?: string; requestId?: string } };
    assert.equal(res.status, 500);
    assert.equal(body.error.code, 'INTERNAL');
    assert.ok(!JSON.stringify(body).includes('SQLITE') && !JSON.stringify(body).includes('/var/lib'), JSON.stringify(body));
    const id = body.error.requestId!;
    assert.match(id, /^[0-9a-f-]{36}$/, 'unique across server runs, not req-1, req-2...');
    assert.ok(body.error.message.includes(id) && body.error.fix?.includes(id));
    const line = log.map((l) => JSON.parse(l) as { reqId?: string; err?: { message?: string; stack?: string } }).find((l) => l.reqId === id);
    assert.ok(line?.err?.message === secret && line.err.stack, `the log has the details under ${id}: ${log.join('')}`);
    ids.push(id);
  }
  assert.notEqual(ids[0], ids[1]);
  // Known errors keep their code, message and status.
  const known = await fetch(`${side.base}${API}/test-known`);
  assert.equal(known.status, 502);
  assert.deepEqual(await known.json(), { error: { code: 'LIBVIRT_ERROR', message: 'libvirt refused', fix: 'check libvirtd' } });
});

test('flavors: list, show, create, delete; 400 naming the field, 404, 409', async () => {
  const list = await call('GET', `${API}/flavors`);
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.map((f: { name: string }) => f.name), ['small', 'medium']);
  assert.deepEqual((await call('GET', `${API}/flavors/small`)).body, { name: 'small', vcpus: 1, ramMiB: 1024, diskGiB: 10, builtin: true });
  const made = await call('POST', `${API}/flavors`, { name: 'tiny1', vcpus: 1, ramMiB: 256, diskGiB: 2 });
  assert.equal(made.status, 201);
  assert.deepEqual(made.body, { name: 'tiny1', vcpus: 1, ramMiB: 256, diskGiB: 2, builtin: false });
  refused(await call('POST', `${API}/flavors`, { name: 'tiny1', vcpus: 1, ramMiB: 256, diskGiB: 2 }), 409, 'ALREADY_EXISTS');
  refused(await call('POST', `${API}/flavors`, { name: 'f2', vcpus: 'two', ramMiB: 256, diskGiB: 2 }), 400, 'INVALID_INPUT', ['body.vcpus']);
  refused(await call('POST', `${API}/flavors`, { name: 'f2', vcpus: 1, ramMiB: 1, diskGiB: 2 }), 400, 'INVALID_INPUT', ['body.ramMiB']);
  refused(await call('POST', `${API}/flavors`, { name: 'f2', vcpus: 1, ram: 256, diskGiB: 2 }), 400, 'INVALID_INPUT', ['body.ram', 'body.ramMiB']);
  refused(await call('POST', `${API}/flavors`, { name: 'bad name', vcpus: 1, ramMiB: 256, diskGiB: 2 }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/flavors`), 400, 'INVALID_INPUT', ['body']);
  const broken = await fetch(`${base}${API}/flavors`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"name":' });
  refused({ status: broken.status, headers: broken.headers, body: await broken.json() }, 400, 'INVALID_INPUT');
  refused(await call('GET', `${API}/flavors/nope`), 404, 'NOT_FOUND');
  refused(await call('DELETE', `${API}/flavors/small`), 400, 'INVALID_INPUT');
  assert.equal((await call('DELETE', `${API}/flavors/tiny1`)).status, 204);
  refused(await call('DELETE', `${API}/flavors/tiny1`), 404, 'NOT_FOUND');
  refused(await call('GET', `${API}/nothing-here`), 404, 'NOT_FOUND');
});

test('images: build tiny as an operation, list, show; 400 naming the field, 404', async () => {
  refused(await call('POST', `${API}/images/build`, { recipe: 'centos' }), 400, 'INVALID_INPUT', ['body.recipe']);
  const started = await call('POST', `${API}/images/build`, { recipe: 'tiny' });
  assert.equal(started.status, 202);
  assert.equal(started.headers.get('location'), `${API}/operations/${started.body.operation.id}`);
  const op = await finished(started.body.operation.id, 900_000);
  assert.equal(op.state, 'succeeded', JSON.stringify(op.error));
  assert.equal(op.kind, 'image.build');
  assert.equal(op.result.image.name, 'tiny');
  const list = await call('GET', `${API}/images`);
  assert.deepEqual(list.body.map((i: { name: string }) => i.name), ['tiny']);
  const tiny = await call('GET', `${API}/images/tiny`);
  assert.equal(tiny.status, 200);
  assert.equal(tiny.body.format, 'qcow2');
  assert.ok(tiny.body.kernel);
  refused(await call('GET', `${API}/images/nope`), 404, 'NOT_FOUND');
  refused(await call('DELETE', `${API}/images/nope`), 404, 'NOT_FOUND');
});

test('hosts: list and show; 404', async () => {
  const list = await call('GET', `${API}/hosts`);
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.map((h: { name: string; up: boolean }) => [h.name, h.up]), [['local', true]]);
  const local = await call('GET', `${API}/hosts/local`);
  assert.equal(local.body.uri, 'qemu:///system');
  assert.ok(local.body.cpus > 0 && local.body.memoryMiB > 0);
  refused(await call('GET', `${API}/hosts/nope`), 404, 'NOT_FOUND');
  const info = await call('GET', `${API}/info`);
  assert.equal(info.status, 200, JSON.stringify(info.body));
  assert.equal(info.body.libvirtAnswers, true);
  assert.ok(info.body.cpus > 0 && Array.isArray(info.body.missing));
});

test('networks: list, show, create, stop, start, delete; 400 naming the field, 404, 409', async () => {
  const list = await call('GET', `${API}/networks`);
  assert.ok(list.body.some((n: { name: string }) => n.name === env.network));
  const mine = await call('GET', `${API}/networks/${env.network}`);
  assert.equal(mine.body.mode, 'isolated');
  assert.equal(mine.body.active, true);
  refused(await call('GET', `${API}/networks/${env.prefix}-none`), 404, 'NOT_FOUND');
  const name = `${env.prefix}-n2`;
  const third = await freeSubnet();
  refused(await call('POST', `${API}/networks`, { name, mode: 'mesh', cidr: `192.168.${third}.0/24` }), 400, 'INVALID_INPUT', ['body.mode']);
  refused(await call('POST', `${API}/networks`, { name, mode: 'nat', cidr: '192.168.1.0/33' }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/networks`, { name, mode: 'isolated', subnet: '10.0.0.0/24' }), 400, 'INVALID_INPUT', ['body.subnet']);
  const made = await call('POST', `${API}/networks`, { name, mode: 'isolated', cidr: `192.168.${third}.0/24`, bridge: `${env.prefix}b2` });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  assert.equal(made.body.cidr, `192.168.${third}.0/24`);
  assert.equal(made.body.active, true);
  refused(await call('POST', `${API}/networks`, { name, mode: 'isolated', cidr: '192.168.251.0/24' }), 409, 'ALREADY_EXISTS');
  assert.equal((await call('POST', `${API}/networks/${name}/stop`)).body.active, false);
  assert.equal((await call('POST', `${API}/networks/${name}/start`)).body.active, true);
  refused(await call('POST', `${API}/networks/${env.prefix}-none/start`), 404, 'NOT_FOUND');
  refused(await call('POST', `${API}/networks/${env.prefix}-none/stop`), 404, 'NOT_FOUND');
  const xml = await fetch(`${base}${API}/networks/${name}/xml`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(xml.status, 200);
  assert.match(xml.headers.get('content-type') ?? '', /^application\/xml/);
  assert.match(await xml.text(), new RegExp(`<name>${name}</name>`));
  refused(await call('GET', `${API}/networks/${env.prefix}-none/xml`), 404, 'NOT_FOUND');
  refused(await call('POST', `${API}/networks/${name}/autostart`, { enabled: 'yes' }), 400, 'INVALID_INPUT', ['body.enabled']);
  assert.equal((await call('POST', `${API}/networks/${name}/autostart`, { enabled: true })).body.autostart, true);
  assert.equal((await call('POST', `${API}/networks/${name}/autostart`, { enabled: false })).body.autostart, false);
  refused(await call('POST', `${API}/networks/${env.prefix}-none/autostart`, { enabled: true }), 404, 'NOT_FOUND');
  assert.equal((await call('DELETE', `${API}/networks/${name}`)).status, 204);
  refused(await call('DELETE', `${API}/networks/${name}`), 404, 'NOT_FOUND');
  // From libvirt XML, like the course's testnat.xml: defined, not started.
  const defined = `${env.prefix}-n3`;
  const fourth = await freeSubnet();
  refused(await call('POST', `${API}/networks/define`, {}), 400, 'INVALID_INPUT', ['body.xml']);
  refused(await call('POST', `${API}/networks/define`, { xml: '<network><nme>x</nme></network>' }), 400, 'INVALID_INPUT');
  const fromXml = await call('POST', `${API}/networks/define`, {
    xml: buildNetworkXml({ name: defined, mode: 'isolated', bridge: `${env.prefix}b3`, ipv4: { address: `192.168.${fourth}.1`, prefix: 24 } }),
  });
  assert.equal(fromXml.status, 201, JSON.stringify(fromXml.body));
  assert.deepEqual([fromXml.body.name, fromXml.body.active, fromXml.body.cidr], [defined, false, `192.168.${fourth}.0/24`]);
  assert.equal((await call('DELETE', `${API}/networks/${defined}`)).status, 204);
});

test('instance create: bad input is refused at once (400 naming the field, 404, 409), with no operation started', async () => {
  const ok = { name: inst(), image: 'tiny', flavor: 'small', password: 'pw', networks: [env.network] };
  const before = (await call('GET', `${API}/operations`)).body.length;
  refused(await call('POST', `${API}/instances`, { ...ok, image: undefined }), 400, 'INVALID_INPUT', ['body.image']);
  refused(await call('POST', `${API}/instances`, { ...ok, vcpus: 'x' }), 400, 'INVALID_INPUT', ['body.vcpus']);
  refused(await call('POST', `${API}/instances`, { ...ok, dataDisks: [5, 0] }), 400, 'INVALID_INPUT', ['body.dataDisks.1']);
  refused(await call('POST', `${API}/instances`, { ...ok, ram: 512 }), 400, 'INVALID_INPUT', ['body.ram']);
  refused(await call('POST', `${API}/instances`, { ...ok, networks: 'default' }), 400, 'INVALID_INPUT', ['body.networks']);
  refused(await call('POST', `${API}/instances`, { ...ok, name: 'no_underscores' }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/instances`, { ...ok, password: undefined }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/instances`, { ...ok, sshKeys: ['not a key'] }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/instances`, { ...ok, image: 'nope' }), 404, 'NOT_FOUND');
  refused(await call('POST', `${API}/instances`, { ...ok, flavor: 'nope' }), 404, 'NOT_FOUND');
  refused(await call('POST', `${API}/instances`, { ...ok, host: 'nope' }), 404, 'NOT_FOUND');
  assert.equal((await call('GET', `${API}/operations`)).body.length, before);
  assert.deepEqual(env.ctx.instances.list(), []);
});

test('instance create through the API: 202 with an operation, its progress on Server-Sent Events until the guest runs', async () => {
  const events = await openEvents();
  const started = await call('POST', `${API}/instances`, {
    name: inst(), image: 'tiny', flavor: 'small', password: 'pw', networks: [env.network], wait: true,
  });
  assert.equal(started.status, 202, JSON.stringify(started.body));
  const id: string = started.body.operation.id;
  assert.equal(started.body.operation.state, 'running');
  assert.equal(started.body.operation.kind, 'instance.create');
  assert.equal(started.headers.get('location'), `${API}/operations/${id}`);

  const end = await events.until('the create operation to finish',
    (e) => e.event === 'operation' && e.data.operation.id === id && e.data.operation.state !== 'running');
  assert.equal(end.data.operation.state, 'succeeded', JSON.stringify(end.data.operation.error));
  const mine = events.events.filter((e) => e.event === 'operation' && e.data.operation.id === id);
  const steps = mine.map((e) => e.data.operation.step).filter(Boolean);
  for (const s of ['disk', 'seed', 'define', 'start', 'boot']) assert.ok(steps.includes(s), `step ${s} in ${steps.join(', ')}`);
  const seqs: number[] = mine.map((e) => e.data.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'event sequence numbers increase');
  assert.ok(mine.every((e) => e.id === `${mine[0]!.id.split('-')[0]}-${e.data.seq}`), 'ids are "<run>-<seq>"');
  assert.equal(end.data.operation.result.state, 'running');

  // A client that reconnects with Last-Event-ID gets what it missed.
  const again = await openEvents({ 'last-event-id': mine[0]!.id.replace(/-\d+$/, `-${seqs[0]! - 1}`) });
  await again.until('the replayed finish', (e) => e.id === end.id, 30_000);
  again.close();

  const op = await call('GET', `${API}/operations/${id}`);
  assert.equal(op.body.state, 'succeeded');
  assert.deepEqual(op.body.steps, ['disk', 'seed', 'define', 'start', 'boot']);
  const got = await call('GET', `${API}/instances/${inst()}`);
  assert.equal(got.status, 200);
  assert.equal(got.body.state, 'running');
  assert.equal(got.body.image, 'tiny');
  assert.equal(got.body.flavor, 'small');
  assert.equal(got.body.host, 'local');
  assert.equal(got.body.passwordSet, true);
  assert.equal('passwordHash' in got.body, false, 'the password hash is never handed out');
  assert.match(got.body.nics[0].ipv4 ?? '', /^192\.168\./);
  const list = await call('GET', `${API}/instances`);
  assert.deepEqual(list.body.map((i: { name: string; state: string }) => [i.name, i.state]), [[inst(), 'running']]);
  assert.ok((await call('GET', `${API}/operations`)).body.some((o: { id: string }) => o.id === id));
  refused(await call('GET', `${API}/operations/nope`), 404, 'NOT_FOUND');
  // The same name again is refused at once.
  refused(await call('POST', `${API}/instances`, { name: inst(), image: 'tiny', flavor: 'small', password: 'pw', networks: [env.network] }), 409, 'ALREADY_EXISTS');
  refused(await call('GET', `${API}/instances/${env.prefix}-none`), 404, 'NOT_FOUND');
  events.close();
});

test('instance actions: stop, start, reboot, destroy; 400 naming the field, 404', async () => {
  const at = (action: string, name = inst(), body?: unknown) => call('POST', `${API}/instances/${name}/${action}`, body);
  const events = await openEvents();
  refused(await at('stop', inst(), { timeoutSeconds: 'soon' }), 400, 'INVALID_INPUT', ['body.timeoutSeconds']);
  refused(await at('stop', inst(), { grace: 5 }), 400, 'INVALID_INPUT', ['body.grace']);
  // The guest is up (the create waited for it), so it hears the ACPI button.
  const stopped = await at('stop', inst(), { timeoutSeconds: 120 });
  assert.equal(stopped.status, 200, JSON.stringify(stopped.body));
  assert.equal(stopped.body.instance.state, 'shut off');
  refused(await at('reboot'), 400, 'INVALID_INPUT');
  const started = await at('start');
  assert.deepEqual([started.status, started.body.started, started.body.instance.state], [200, true, 'running']);
  assert.equal((await at('start')).body.started, false, 'already running');
  const rebooted = await at('reboot');
  assert.equal(rebooted.status, 200, JSON.stringify(rebooted.body));
  assert.equal(rebooted.body.instance.name, inst());
  const destroyed = await at('destroy');
  assert.deepEqual([destroyed.status, destroyed.body.instance.state], [200, 'shut off']);
  // No body at all, and an empty JSON body, are both fine for an action whose body is optional.
  assert.equal((await at('stop')).status, 200);
  const empty = await fetch(`${base}${API}/instances/${inst()}/stop`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
  assert.equal(empty.status, 200);
  await empty.arrayBuffer();
  for (const action of ['start', 'stop', 'reboot', 'destroy']) refused(await at(action, `${env.prefix}-none`), 404, 'NOT_FOUND');
  // Each change was announced to live views.
  await events.until('the destroy announced', (e) => e.event === 'resource' && e.data.name === inst() && e.data.action === 'destroyed', 30_000);
  events.close();
});

test('volumes: create, list, show, attach, detach, delete; 400 naming the field, 404, 409', async () => {
  const vol = `${env.prefix}-v1`;
  refused(await call('POST', `${API}/volumes`, { name: vol, sizeGiB: 0 }), 400, 'INVALID_INPUT', ['body.sizeGiB']);
  refused(await call('POST', `${API}/volumes`, { name: vol }), 400, 'INVALID_INPUT', ['body.sizeGiB']);
  const made = await call('POST', `${API}/volumes`, { name: vol, sizeGiB: 1 });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  assert.equal(made.body.sizeGiB, 1);
  refused(await call('POST', `${API}/volumes`, { name: vol, sizeGiB: 1 }), 409, 'ALREADY_EXISTS');
  assert.deepEqual((await call('GET', `${API}/volumes`)).body.map((v: { name: string }) => v.name), [vol]);
  assert.equal((await call('GET', `${API}/volumes/${vol}`)).body.file, join(env.home, 'volumes', `${vol}.qcow2`));
  refused(await call('GET', `${API}/volumes/nope`), 404, 'NOT_FOUND');
  refused(await call('POST', `${API}/volumes/${vol}/resize`, { sizeGiB: 'big' }), 400, 'INVALID_INPUT', ['body.sizeGiB']);
  refused(await call('POST', `${API}/volumes/nope/resize`, { sizeGiB: 2 }), 404, 'NOT_FOUND');
  const grown = await call('POST', `${API}/volumes/${vol}/resize`, { sizeGiB: 2 });
  assert.equal(grown.status, 200, JSON.stringify(grown.body));
  assert.deepEqual([grown.body.fromGiB, grown.body.volume.sizeGiB, grown.body.how], [1, 2, 'offline']);
  refused(await call('POST', `${API}/volumes/${vol}/attach`, {}), 400, 'INVALID_INPUT', ['body.instance']);
  refused(await call('POST', `${API}/volumes/${vol}/attach`, { instance: `${env.prefix}-none` }), 404, 'NOT_FOUND');
  refused(await call('POST', `${API}/volumes/nope/attach`, { instance: inst() }), 404, 'NOT_FOUND');
  // The instance is stopped: attached to its definition, seen on its next start.
  const attached = await call('POST', `${API}/volumes/${vol}/attach`, { instance: inst() });
  assert.equal(attached.status, 200, JSON.stringify(attached.body));
  assert.deepEqual([attached.body.live, attached.body.volume.instance, attached.body.volume.device], [false, inst(), 'vdb']);
  refused(await call('POST', `${API}/volumes/${vol}/attach`, { instance: inst() }), 409, 'IN_USE');
  refused(await call('DELETE', `${API}/volumes/${vol}`), 409, 'IN_USE');
  assert.deepEqual((await call('GET', `${API}/instances/${inst()}`)).body.volumes, [{ name: vol, device: '/dev/vdb', sizeGiB: 2 }]);
  refused(await call('POST', `${API}/volumes/${vol}/detach`, { timeoutSeconds: -1 }), 400, 'INVALID_INPUT', ['body.timeoutSeconds']);
  const detached = await call('POST', `${API}/volumes/${vol}/detach`);
  assert.equal(detached.status, 200, JSON.stringify(detached.body));
  assert.equal(detached.body.instance, inst());
  assert.equal(detached.body.volume.instance, undefined);
  refused(await call('POST', `${API}/volumes/${vol}/detach`), 400, 'INVALID_INPUT');
  assert.equal((await call('DELETE', `${API}/volumes/${vol}`)).status, 204);
  refused(await call('DELETE', `${API}/volumes/${vol}`), 404, 'NOT_FOUND');
});

test('snapshots: create (named, and unnamed with no body), list, revert, delete; 400 naming the field, 404, 409', async () => {
  const snaps = `${API}/instances/${inst()}/snapshots`;
  assert.deepEqual((await call('GET', snaps)).body, []);
  const first = await call('POST', snaps, { name: 'first' });
  assert.equal(first.status, 201, JSON.stringify(first.body));
  assert.deepEqual([first.body.name, first.body.instance, first.body.state], ['first', inst(), 'shutoff']);
  refused(await call('POST', snaps, { name: 'first' }), 409, 'ALREADY_EXISTS');
  refused(await call('POST', snaps, { name: 'a b' }), 400, 'INVALID_INPUT');
  refused(await call('POST', snaps, { name: 7 }), 400, 'INVALID_INPUT', ['body.name']);
  const unnamed = await call('POST', snaps);
  assert.equal(unnamed.status, 201, JSON.stringify(unnamed.body));
  assert.match(unnamed.body.name, /^\d+$/);
  assert.deepEqual((await call('GET', snaps)).body.map((s: { name: string }) => s.name).sort(), ['first', unnamed.body.name].sort());
  refused(await call('POST', `${snaps}/first/revert`, { to: 'later' }), 400, 'INVALID_INPUT', ['body.to']);
  const reverted = await call('POST', `${snaps}/first/revert`);
  assert.equal(reverted.status, 200, JSON.stringify(reverted.body));
  assert.deepEqual(reverted.body, { instance: inst(), snapshot: 'first', state: 'shut off' });
  refused(await call('POST', `${snaps}/nope/revert`), 404, 'NOT_FOUND');
  for (const s of ['first', unnamed.body.name]) assert.equal((await call('DELETE', `${snaps}/${s}`)).status, 204);
  refused(await call('DELETE', `${snaps}/first`), 404, 'NOT_FOUND');
  refused(await call('GET', `${API}/instances/${env.prefix}-none/snapshots`), 404, 'NOT_FOUND');
  refused(await call('POST', `${API}/instances/${env.prefix}-none/snapshots`, {}), 404, 'NOT_FOUND');
});

test('instance resize, xml and console log; 400 naming the field, 404, 409', async () => {
  // Stopped, no snapshots left: its root disk may grow.
  refused(await call('POST', `${API}/instances/${inst()}/resize`, { diskGiB: 'x' }), 400, 'INVALID_INPUT', ['body.diskGiB']);
  refused(await call('POST', `${API}/instances/${inst()}/resize`, { diskGiB: 5 }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/instances/${env.prefix}-none/resize`, { diskGiB: 11 }), 404, 'NOT_FOUND');
  const grown = await call('POST', `${API}/instances/${inst()}/resize`, { diskGiB: 11 });
  assert.equal(grown.status, 200, JSON.stringify(grown.body));
  assert.deepEqual(grown.body, { fromGiB: 10, toGiB: 11 });
  assert.equal((await call('GET', `${API}/instances/${inst()}`)).body.diskGiB, 11);
  const xml = await fetch(`${base}${API}/instances/${inst()}/xml`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(xml.status, 200);
  assert.match(xml.headers.get('content-type') ?? '', /^application\/xml/);
  assert.match(await xml.text(), new RegExp(`<domain[^>]*>[\\s\\S]*<name>${inst()}</name>`));
  const log = await fetch(`${base}${API}/instances/${inst()}/console-log`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(log.status, 200);
  assert.match(log.headers.get('content-type') ?? '', /^text\/plain/);
  assert.match(await log.text(), /Linux|login|kumo/i, 'the guest booted on its serial console');
  for (const what of ['xml', 'console-log']) refused(await call('GET', `${API}/instances/${env.prefix}-none/${what}`), 404, 'NOT_FOUND');
  // Running: its root disk cannot grow now.
  assert.equal((await call('POST', `${API}/instances/${inst()}/start`)).status, 200);
  refused(await call('POST', `${API}/instances/${inst()}/resize`, { diskGiB: 12 }), 409, 'IN_USE');
  assert.equal((await call('POST', `${API}/instances/${inst()}/destroy`)).body.instance.state, 'shut off');
});

test('image import as an operation (a file on the server); a bad checksum is a 400 naming the field; a missing file fails the operation', async () => {
  const file = join(env.home, 'import-me.qcow2');
  await local.run('qemu-img', ['create', '-f', 'qcow2', file, '64M']);
  const name = `${env.prefix}-img`;
  refused(await call('POST', `${API}/images/import`, { name, source: file, sha256: 'abc' }), 400, 'INVALID_INPUT', ['body.sha256']);
  refused(await call('POST', `${API}/images/import`, { name }), 400, 'INVALID_INPUT', ['body.source']);
  refused(await call('POST', `${API}/images/build`, { recipe: 'debian-12', packages: ['Not A Package'] }), 400, 'INVALID_INPUT', ['body.packages.0']);
  const started = await call('POST', `${API}/images/import`, { name, source: file, os: 'Test OS' });
  assert.equal(started.status, 202, JSON.stringify(started.body));
  const op = await finished(started.body.operation.id);
  assert.equal(op.state, 'succeeded', JSON.stringify(op.error));
  assert.deepEqual([op.kind, op.result.name, op.result.os, op.result.virtualSizeBytes], ['image.import', name, 'Test OS', 64 * 2 ** 20]);
  assert.equal((await call('GET', `${API}/images/${name}`)).body.format, 'qcow2');
  const missing = await call('POST', `${API}/images/import`, { name: `${name}2`, source: join(env.home, 'no-such.qcow2') });
  assert.equal(missing.status, 202);
  const failed = await finished(missing.body.operation.id);
  assert.equal(failed.state, 'failed');
  assert.match(failed.error.message, /no-such\.qcow2/);
  assert.equal((await call('DELETE', `${API}/images/${name}`)).status, 204);
});

/** A network namespace of this run, with its loopback up: a storage or lb node on this machine. */
async function node(label: string): Promise<string> {
  const ns = `${env.prefix}-${label}`;
  await local.run('ip', ['netns', 'add', ns]);
  namespaces.push(ns);
  await local.run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  return ns;
}

test('hosts: add a node by its shell (400 naming the field, 409), evacuate as an operation, remove; 404', async () => {
  const ns = await node('stgns');
  const stg = `${env.prefix}-stg`;
  refused(await call('POST', `${API}/hosts`, { name: stg, roles: ['nas'], shell: { kind: 'netns', netns: ns } }), 400, 'INVALID_INPUT', ['body.roles.0']);
  refused(await call('POST', `${API}/hosts`, { name: stg, roles: ['storage'], shell: { kind: 'netns' } }), 400, 'INVALID_INPUT', ['body.shell.netns']);
  refused(await call('POST', `${API}/hosts`, { name: stg, roles: ['storage'] , shell: { kind: 'netns', netns: `${env.prefix}-gone` } }), 502, 'HOST_UNREACHABLE');
  const added = await call('POST', `${API}/hosts`, { name: stg, roles: ['storage'], shell: { kind: 'netns', netns: ns } });
  assert.equal(added.status, 201, JSON.stringify(added.body));
  assert.deepEqual([added.body.name, added.body.roles, added.body.shell], [stg, ['storage'], { kind: 'netns', netns: ns }]);
  refused(await call('POST', `${API}/hosts`, { name: stg, roles: ['storage'], shell: { kind: 'netns', netns: ns } }), 409, 'ALREADY_EXISTS');
  // Nothing on it: the evacuation has nothing to move.
  refused(await call('POST', `${API}/hosts/${stg}/evacuate`, { parallel: 0 }), 400, 'INVALID_INPUT', ['body.parallel']);
  refused(await call('POST', `${API}/hosts/nope/evacuate`), 404, 'NOT_FOUND');
  const evac = await call('POST', `${API}/hosts/${stg}/evacuate`);
  assert.equal(evac.status, 202, JSON.stringify(evac.body));
  const op = await finished(evac.body.operation.id);
  assert.deepEqual([op.state, op.kind, op.result], ['succeeded', 'host.evacuate', { moved: [] }]);
  refused(await call('DELETE', `${API}/hosts/local`), 409, 'IN_USE');
  // Kept for the shares test; removed there.
});

test('shares: create (served by the storage node), list, show, delete; 400 naming the field, 404, 409', async () => {
  const stg = `${env.prefix}-stg`;
  const name = `${env.prefix}-s1`;
  assert.deepEqual((await call('GET', `${API}/shares`)).body, []);
  refused(await call('POST', `${API}/shares`, { name, networks: [] }), 400, 'INVALID_INPUT', ['body.networks']);
  refused(await call('POST', `${API}/shares`, { name }), 400, 'INVALID_INPUT', ['body.networks']);
  refused(await call('POST', `${API}/shares`, { name, networks: [env.network], readonly: true }), 400, 'INVALID_INPUT', ['body.readonly']);
  refused(await call('POST', `${API}/shares`, { name: 'bad name', networks: [env.network] }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/shares`, { name, networks: [env.network], path: 'relative/dir' }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/shares`, { name, networks: [`${env.prefix}-none`] }), 404, 'NOT_FOUND');
  const made = await call('POST', `${API}/shares`, { name, networks: [env.network], readOnly: true });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  assert.deepEqual([made.body.name, made.body.path, made.body.networks, made.body.readOnly, made.body.server],
    [name, join(env.home, 'shares', name), [env.network], true, stg]);
  refused(await call('POST', `${API}/shares`, { name, networks: [env.network] }), 409, 'ALREADY_EXISTS');
  assert.deepEqual((await call('GET', `${API}/shares`)).body.map((s: { name: string }) => s.name), [name]);
  assert.equal((await call('GET', `${API}/shares/${name}`)).body.path, join(env.home, 'shares', name));
  refused(await call('GET', `${API}/shares/nope`), 404, 'NOT_FOUND');
  // The storage node's ganesha serves it, inside its namespace.
  const conf = await readFile(join(env.home, 'nfs', stg, 'ganesha.conf'), 'utf8');
  assert.match(conf, new RegExp(`Pseudo = "?/${name}"?`));
  assert.equal((await call('DELETE', `${API}/shares/${name}`)).status, 204);
  refused(await call('DELETE', `${API}/shares/${name}`), 404, 'NOT_FOUND');
  assert.equal((await call('DELETE', `${API}/hosts/${stg}`)).status, 204);
  refused(await call('DELETE', `${API}/hosts/${stg}`), 404, 'NOT_FOUND');
});

test('load balancers: create with the WAF on an lb node, show, set instances, sync, WAF log, delete; 400 naming the field, 404', async () => {
  const ns = await node('lbns');
  const host = `${env.prefix}-lb`;
  assert.equal((await call('POST', `${API}/hosts`, { name: host, roles: ['lb'], shell: { kind: 'netns', netns: ns } })).status, 201);
  const name = `${env.prefix}-lb1`;
  const ok = { name, host, frontend: '127.0.0.1:8081', network: env.network, instances: [inst()], waf: { enabled: true } };
  assert.deepEqual((await call('GET', `${API}/loadbalancers`)).body, []);
  refused(await call('POST', `${API}/loadbalancers`, { ...ok, instances: [] }), 400, 'INVALID_INPUT', ['body.instances']);
  refused(await call('POST', `${API}/loadbalancers`, { ...ok, backendPort: 0 }), 400, 'INVALID_INPUT', ['body.backendPort']);
  refused(await call('POST', `${API}/loadbalancers`, { ...ok, waf: { enabled: true, paranoia: 5 } }), 400, 'INVALID_INPUT', ['body.waf.paranoia']);
  refused(await call('POST', `${API}/loadbalancers`, { ...ok, frontend: 'nowhere' }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/loadbalancers`, { ...ok, host: 'local' }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/loadbalancers`, { ...ok, host: 'nope' }), 404, 'NOT_FOUND');
  refused(await call('POST', `${API}/loadbalancers`, { ...ok, instances: [`${env.prefix}-none`] }), 404, 'NOT_FOUND');
  const made = await call('POST', `${API}/loadbalancers`, ok);
  assert.equal(made.status, 201, JSON.stringify(made.body));
  assert.deepEqual([made.body.running, made.body.wafRunning, made.body.frontend, made.body.waf],
    [true, true, { address: '127.0.0.1', port: 8081 }, { enabled: true, paranoia: 1 }]);
  assert.deepEqual(made.body.backends.map((b: { instance: string }) => b.instance), [inst()]);
  refused(await call('POST', `${API}/loadbalancers`, ok), 409, 'ALREADY_EXISTS');
  assert.deepEqual((await call('GET', `${API}/loadbalancers`)).body.map((l: { name: string }) => l.name), [name]);
  assert.equal((await call('GET', `${API}/loadbalancers/${name}`)).body.host, host);
  refused(await call('GET', `${API}/loadbalancers/nope`), 404, 'NOT_FOUND');
  refused(await call('PUT', `${API}/loadbalancers/${name}/instances`, { instances: inst() }), 400, 'INVALID_INPUT', ['body.instances']);
  refused(await call('PUT', `${API}/loadbalancers/${name}/instances`, { instances: [`${env.prefix}-none`] }), 404, 'NOT_FOUND');
  refused(await call('PUT', `${API}/loadbalancers/nope/instances`, { instances: [inst()] }), 404, 'NOT_FOUND');
  assert.equal((await call('PUT', `${API}/loadbalancers/${name}/instances`, { instances: [inst()] })).status, 200);
  const synced = await call('POST', `${API}/loadbalancers/${name}/sync`);
  assert.equal(synced.status, 200, JSON.stringify(synced.body));
  assert.equal(synced.body.running, true);
  refused(await call('POST', `${API}/loadbalancers/nope/sync`), 404, 'NOT_FOUND');
  // An attack from inside the lb node: the WAF answers 403 and logs it with its rules.
  const attack = await local.run('ip', ['netns', 'exec', ns, 'curl', '-s', '-g', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5',
    "http://127.0.0.1:8081/?id=1'%20OR%20'1'='1"], { allowFailure: true });
  assert.equal(attack.stdout, '403');
  const events = await waitFor('the attack in the WAF log', async () => {
    const a = await call('GET', `${API}/loadbalancers/${name}/waf-log?limit=5`);
    assert.equal(a.status, 200, JSON.stringify(a.body));
    return a.body.length ? a.body : undefined;
  }, 15_000);
  assert.equal(events[0].blocked, true);
  assert.ok(events[0].ruleIds.includes('942100'), events[0].ruleIds.join(','));
  refused(await call('GET', `${API}/loadbalancers/${name}/waf-log?limit=0`), 400, 'INVALID_INPUT', ['querystring.limit']);
  refused(await call('GET', `${API}/loadbalancers/nope/waf-log`), 404, 'NOT_FOUND');
  assert.equal((await call('DELETE', `${API}/loadbalancers/${name}`)).status, 204);
  refused(await call('DELETE', `${API}/loadbalancers/${name}`), 404, 'NOT_FOUND');
  assert.equal((await call('DELETE', `${API}/hosts/${host}`)).status, 204);
});

test('datacenter files: plan, apply and destroy as operations; a bad file is a 400 naming line and column', async () => {
  const group = `${env.prefix}-p`;
  const member = `${group}-1`;
  const file = [
    `name: ${env.prefix}-dc`,
    'instances:',
    `  ${group}:`,
    '    image: tiny',
    '    flavor: small',
    `    networks: [${env.network}]`,
    `    root_password_hash: "${hashPassword('pw')}"`,
    '',
  ].join('\n');
  const plan = (body: unknown) => call('POST', `${API}/plans`, body);
  refused(await plan({}), 400, 'INVALID_INPUT', ['body.file']);
  refused(await plan({ file, name: 'x' }), 400, 'INVALID_INPUT', ['body.name']);
  const syntax = await plan({ file: 'name: dc\ninstances: [\n', filename: 'dc.yaml' });
  refused(syntax, 400, 'INVALID_INPUT');
  assert.match(syntax.body.error.message, /^dc\.yaml:\d+:\d+: /);
  const wrong = await plan({ file: file.replace('flavor: small', 'flavor: 7'), filename: 'dc.yaml' });
  refused(wrong, 400, 'INVALID_INPUT');
  assert.match(wrong.body.error.message, new RegExp(`^dc\\.yaml:5:13: instances\\.${group}\\.flavor: `));
  const unknown = await plan({ file: `${file}colour: blue\n` });
  refused(unknown, 400, 'INVALID_INPUT');
  assert.match(unknown.body.error.message, /^datacenter\.yaml:\d+:\d+: .*colour/);
  for (const action of ['apply', 'destroy']) refused(await call('POST', `${API}/plans/${action}`, { file: 'name: [' }), 400, 'INVALID_INPUT');

  const planned = await plan({ file });
  assert.equal(planned.status, 200, JSON.stringify(planned.body));
  assert.deepEqual(planned.body, { datacenter: `${env.prefix}-dc`, changes: [{ action: 'create', kind: 'instance', name: member, why: 'tiny, small', host: 'local' }] });
  const applying = await call('POST', `${API}/plans/apply`, { file });
  assert.equal(applying.status, 202, JSON.stringify(applying.body));
  assert.equal(applying.headers.get('location'), `${API}/operations/${applying.body.operation.id}`);
  // One apply or destroy of a datacenter at a time.
  refused(await call('POST', `${API}/plans/destroy`, { file }), 409, 'IN_USE');
  const applied = await finished(applying.body.operation.id, 600_000);
  assert.equal(applied.state, 'succeeded', JSON.stringify(applied.error));
  assert.deepEqual([applied.kind, applied.steps, applied.result.changes.length], ['datacenter.apply', [`create instance ${member}`], 1]);
  assert.equal((await call('GET', `${API}/instances/${member}`)).body.state, 'running');
  assert.deepEqual((await plan({ file })).body.changes, [], 'nothing left to do');

  const destroying = await call('POST', `${API}/plans/destroy`, { file });
  assert.equal(destroying.status, 202, JSON.stringify(destroying.body));
  const destroyed = await finished(destroying.body.operation.id);
  assert.equal(destroyed.state, 'succeeded', JSON.stringify(destroyed.error));
  assert.deepEqual(destroyed.steps, [`delete instance ${member}`]);
  refused(await call('GET', `${API}/instances/${member}`), 404, 'NOT_FOUND');
});

test('migrate: 202 with an operation that live-migrates to a second libvirtd; 400 naming the field, 404', async () => {
  refused(await call('POST', `${API}/instances/${inst()}/migrate`, {}), 400, 'INVALID_INPUT', ['body.to']);
  refused(await call('POST', `${API}/instances/${env.prefix}-none/migrate`, { to: 'local' }), 404, 'NOT_FOUND');
  refused(await call('POST', `${API}/instances/${inst()}/migrate`, { to: 'nope' }), 404, 'NOT_FOUND');
  // What only libvirt or the service can decide shows in the operation, with its code.
  const same = await call('POST', `${API}/instances/${inst()}/migrate`, { to: 'local' });
  assert.equal(same.status, 202);
  const failed = await finished(same.body.operation.id);
  assert.deepEqual([failed.state, failed.error.code], ['failed', 'INVALID_INPUT']);
  assert.match(failed.error.message, /already runs on local/);

  // A second hypervisor (HOST-NOTES: a libvirtd in its own mount+UTS namespace) on the same bridge.
  stateDir = await mkdtemp(`/tmp/kumo-lab-${env.prefix}-`);
  lab = await startLibvirtd({ name: kvm2(), stateDir, maskKvm: needsKvmMask(await env.ctx.accel()) });
  const bridge = parseNetworkXml((await env.ctx.virsh.networkXml(env.network))!).bridge!;
  const dest = new Virsh(lab.uri);
  await dest.defineNetwork(buildNetworkXml({ name: env.network, mode: 'bridge', bridge }));
  await dest.startNetwork(env.network);
  await new HostService(env.ctx).add({ name: kvm2(), uri: lab.uri, migrationAddress: '127.0.0.1' });
  assert.deepEqual((await call('GET', `${API}/hosts`)).body.map((h: { name: string }) => h.name), ['local', kvm2()]);

  assert.equal((await call('POST', `${API}/instances/${inst()}/start`)).body.instance.state, 'running');
  const events = await openEvents();
  const started = await call('POST', `${API}/instances/${inst()}/migrate`, { to: kvm2(), unsafe: true });
  assert.equal(started.status, 202, JSON.stringify(started.body));
  const id: string = started.body.operation.id;
  const end = await events.until('the migration to finish',
    (e) => e.event === 'operation' && e.data.operation.id === id && e.data.operation.state !== 'running');
  assert.equal(end.data.operation.state, 'succeeded', JSON.stringify(end.data.operation.error));
  assert.deepEqual([end.data.operation.result.from, end.data.operation.result.to], ['local', kvm2()]);
  const moved = await call('GET', `${API}/instances/${inst()}`);
  assert.deepEqual([moved.body.host, moved.body.state], [kvm2(), 'running']);
  assert.equal(await dest.domainState(inst()), 'running');
  assert.equal((await call('GET', `${API}/hosts/${kvm2()}`)).body.instances, 1);
  events.close();
});

test('delete: an image in use is refused (409); the instance goes, then the image; 404 afterwards', async () => {
  refused(await call('DELETE', `${API}/images/tiny`), 409, 'IN_USE');
  const deleted = await call('DELETE', `${API}/instances/${inst()}`);
  assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
  assert.deepEqual(deleted.body, { detachedVolumes: [] });
  refused(await call('GET', `${API}/instances/${inst()}`), 404, 'NOT_FOUND');
  refused(await call('DELETE', `${API}/instances/${inst()}`), 404, 'NOT_FOUND');
  assert.deepEqual((await call('GET', `${API}/instances`)).body, []);
  const everywhere = [
    ...(await local.run('virsh', ['-c', 'qemu:///system', 'list', '--all', '--name'])).stdout.split('\n'),
    ...(lab ? (await local.run('virsh', ['-c', lab.uri, 'list', '--all', '--name'])).stdout.split('\n') : []),
  ];
  assert.ok(!everywhere.includes(inst()), 'the domain is gone from every host');
  assert.equal((await call('DELETE', `${API}/images/tiny`)).status, 204);
  refused(await call('GET', `${API}/images/tiny`), 404, 'NOT_FOUND');
});

/** Runs one of the CLI's commander Commands the way main.ts does (main.ts wires them in). */
const RUNNER = `
const [file, name, ...args] = process.argv.slice(1);
const { closeContext } = await import(${JSON.stringify(new URL('../../src/cli/app.js', import.meta.url).href)});
const mod = await import(file);
try {
  await mod[name]().exitOverride().parseAsync(args, { from: 'user' });
} catch (e) {
  process.stderr.write('error: ' + (e.describe ? e.describe() : e.message) + '\\n');
  process.exitCode = ({ INVALID_INPUT: 2, NOT_FOUND: 3, ALREADY_EXISTS: 4, IN_USE: 4 })[e.code] ?? 1;
} finally {
  closeContext();
}`;
const commandFile = (f: string) => new URL(`../../src/cli/commands/${f}.js`, import.meta.url).href;

function kumo(home: string, file: string, name: string, args: string[]): ChildProcess {
  const child = spawn('node', ['--input-type=module', '-e', RUNNER, commandFile(file), name, ...args], {
    env: { ...process.env, KUMO_HOME: home, KUMO_CACHE: testCache() }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  return child;
}

async function run(home: string, file: string, name: string, args: string[]) {
  const child = kumo(home, file, name, args);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => { stdout += d; });
  child.stderr!.on('data', (d: Buffer) => { stderr += d; });
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  return { code, stdout, stderr };
}

/** Starts `kumo serve --port 0` and reads what it prints until it listens. */
async function serve(home: string): Promise<{ child: ChildProcess; url: string; adminToken?: string; lines: string[] }> {
  const child = kumo(home, 'serve', 'serveCommand', ['--port', '0', '--log-level', 'warn']);
  const lines: string[] = [];
  const rl = createInterface({ input: child.stdout! });
  rl.on('line', (l) => lines.push(l));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d; });
  const url = await waitFor('kumo serve to listen', async () => {
    if (child.exitCode !== null) throw new Error(`kumo serve exited ${child.exitCode}: ${stderr}`);
    return /kumo API on (http:\/\/127\.0\.0\.1:\d+)\/api\/v1/.exec(lines.join('\n'))?.[1];
  }, 60_000);
  // The admin token line, when there is one, comes before the address (the last line of the start).
  // Not on a terminal: the token is in a file only root can read, whose path is printed.
  const tokenFile = /admin token written to (\S+)/.exec(lines.join('\n'))?.[1];
  if (tokenFile) assert.equal((await stat(tokenFile)).mode & 0o777, 0o600);
  const adminToken = tokenFile ? (await readFile(tokenFile, 'utf8')).trim() : undefined;
  return { child, url, lines, ...(adminToken ? { adminToken } : {}) };
}

async function stop(child: ChildProcess): Promise<number | null> {
  const done = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  child.kill('SIGTERM');
  return done;
}

test('kumo serve: binds 127.0.0.1, prints the admin token on the first start only; kumo token create, list, revoke', async () => {
  const home = join(env.home, 'serve-home');
  const first = await serve(home);
  assert.ok(first.adminToken, `no admin token in: ${first.lines.join(' | ')}`);
  const flavors = await fetch(`${first.url}${API}/flavors`, { headers: { authorization: `Bearer ${first.adminToken}` } });
  assert.equal(flavors.status, 200);
  assert.equal((await fetch(`${first.url}${API}/flavors`)).status, 401);
  assert.equal(await stop(first.child), 0);

  const second = await serve(home);
  assert.equal(second.adminToken, undefined, 'the admin token is printed once only');
  assert.ok(!second.lines.join('\n').includes(first.adminToken!));

  const made = await run(home, 'token', 'tokenCommand', ['create', 'ci']);
  assert.equal(made.code, 0, made.stderr);
  const ci = made.stdout.trim();
  assert.match(ci, /^kumo_[A-Za-z0-9_-]{43}$/);
  assert.match(made.stderr, /shown only now/);
  assert.equal((await fetch(`${second.url}${API}/hosts`, { headers: { authorization: `Bearer ${ci}` } })).status, 200);
  const listed = await run(home, 'token', 'tokenCommand', ['list', '--json']);
  const tokens = JSON.parse(listed.stdout) as { id: string; name: string; lastUsedAt?: string }[];
  assert.deepEqual(tokens.map((t) => t.name), ['admin', 'ci']);
  assert.ok(tokens.every((t) => t.lastUsedAt), 'both were used');
  assert.ok(!listed.stdout.includes(ci.slice(5)), 'list never shows a token');
  assert.equal((await run(home, 'token', 'tokenCommand', ['create', 'ci'])).code, 4, 'names are unique');
  const revoked = await run(home, 'token', 'tokenCommand', ['revoke', tokens[1]!.id]);
  assert.equal(revoked.code, 0, revoked.stderr);
  assert.match(revoked.stdout, /revoked API token "ci"/);
  assert.equal((await fetch(`${second.url}${API}/hosts`, { headers: { authorization: `Bearer ${ci}` } })).status, 401, 'revoked at once, in the running server');
  assert.equal((await run(home, 'token', 'tokenCommand', ['revoke', 'ci'])).code, 3);
  assert.equal(await stop(second.child), 0);

  const bad = await run(home, 'serve', 'serveCommand', ['--port', '70000']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--port/);
  assert.equal(basename(home), 'serve-home');
});
