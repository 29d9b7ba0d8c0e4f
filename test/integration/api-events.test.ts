import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { waitFor, type TestEnv } from '../helpers/env.js';
import { API, ApiClient, closeApiWorld, listenApi, openApiWorld, type TestApi } from '../helpers/api.js';
import type { ServerOptions, ApiServer } from '../../src/api/server.js';
import { MAX_QUEUED_BYTES } from '../../src/api/routes/events.js';
import { OperationRegistry } from '../../src/service/operations.js';
import { KumoError } from '../../src/model/errors.js';

/**
 * The REST API's event stream and error answers, on servers of the test's own over its own
 * KUMO_HOME: SSE ids across a restart, a client that stops reading, and an unexpected error.
 */

let env: TestEnv;
let api: TestApi | undefined;
let client: ApiClient;
let token: string;
/** Servers of their own that tests start (restarts, a stalled client, a broken route). */
const sides: ApiServer[] = [];

before(async () => {
  ({ env, api, token, client } = await openApiWorld('evt'));
});

// Pass or fail: streams, servers, the test's world.
after(() => closeApiWorld({ env, api, client }, async () => {
  for (const s of sides) if (s.server.listening) await s.close();
}));

const openEvents = (...a: Parameters<ApiClient['openEvents']>) => client.openEvents(...a);

/** A server of its own on another port over the same home: its own operation registry is its own server run. */
async function sideServer(opts: ServerOptions = {}, routes?: (side: ApiServer) => void): Promise<TestApi> {
  const side = await listenApi(env.ctx, { monitor: false, ...opts }, routes);
  sides.push(side.app);
  return side;
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
    // Routes of this test only: each states who may call it, as every API route must.
    s.get(`${API}/test-broken`, { config: { kumoRole: 'public' } }, async () => { throw new Error(secret); });
    s.get(`${API}/test-known`, { config: { kumoRole: 'public' } }, async () => { throw new KumoError('LIBVIRT_ERROR', 'libvirt refused', 'check libvirtd'); });
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
