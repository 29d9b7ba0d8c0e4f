import { makeTestEnv, type TestEnv } from './env.js';
import assert from 'node:assert/strict';
import { buildServer, type ApiServer, type ServerOptions } from '../../src/api/server.js';
import type { Context } from '../../src/service/context.js';
import { InstanceService } from '../../src/service/instances.js';
import { LoadBalancerService } from '../../src/service/loadbalancers.js';
import { ShareService } from '../../src/service/shares.js';
import { TokenService } from '../../src/service/tokens.js';
import { waitFor } from './env.js';
import { machineActor } from '../../src/model/actor.js';
import { OpenApiResponses } from './openapi-responses.js';

/**
 * The REST API as tests use it: a server of the test's own in-process on 127.0.0.1, a token
 * for it, and a client that makes requests, follows operations and reads Server-Sent Events.
 */

export const API = '/api/v1';

/** A listening server and where it answers. */
export interface TestApi {
  app: ApiServer;
  base: string;
  port: number;
}

/**
 * Builds the API over `ctx` and listens on 127.0.0.1 at a port the kernel picks; `routes` may
 * add routes of the test's own before it listens. A server that does not get to listen is closed.
 */
export async function listenApi(ctx: Context, opts: ServerOptions = {}, routes?: (app: ApiServer) => void): Promise<TestApi> {
  const app = await buildServer(ctx, opts);
  try {
    routes?.(app);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    assert.ok(addr && typeof addr === 'object');
    return { app, base: `http://127.0.0.1:${addr.port}`, port: addr.port };
  } catch (e) {
    await app.close().catch(() => undefined);
    throw e;
  }
}

/** A new API token for the test's requests. */
export const apiToken = (ctx: Context, name = 'test') => new TokenService(ctx).create(name).token;

/** An API test file's world: its own env, a server on it and a client holding an admin token. */
export interface ApiWorld {
  env: TestEnv;
  api: TestApi;
  base: string;
  token: string;
  client: ApiClient;
}

/** Opens an API test file's world (`label` goes into the per-run prefix). */
export async function openApiWorld(label: string): Promise<ApiWorld> {
  const env = await makeTestEnv(label);
  try {
    const token = apiToken(env.ctx);
    const api = await listenApi(env.ctx);
    return { env, api, base: api.base, token, client: new ApiClient(api.base, token) };
  } catch (e) {
    await env.cleanup();
    throw e;
  }
}

/** Closes what openApiWorld opened, pass or fail; `before` runs after the server closed, before the env goes. */
export async function closeApiWorld(w: Partial<ApiWorld>, before?: (env: TestEnv) => Promise<void>): Promise<void> {
  w.client?.close();
  await w.api?.app.close();
  if (w.env && before) await before(w.env);
  await w.env?.cleanup();
}

/** Pass or fail: the load balancers, shares and instances a test made, in that order (each may fail alone). */
export async function deleteMadeResources(ctx: Context): Promise<void> {
  // Each in its own project: a service sees its actor's project only.
  for (const l of ctx.loadBalancers.list()) await new LoadBalancerService(ctx, machineActor(l.project)).delete(l.name).catch(() => undefined);
  for (const s of ctx.shares.list()) await new ShareService(ctx, machineActor(s.project)).delete(s.name).catch(() => undefined);
  for (const i of ctx.instances.list()) await new InstanceService(ctx, machineActor(i.project)).delete(i.name).catch(() => undefined);
}

export interface Answer {
  status: number;
  headers: Headers;
  // The body as JSON (shape checked by each test).
  body: any; // any: JSON of many shapes; each test asserts what it reads
}

export interface SseEvent { id: string; event: string; data: any } // any: event JSON, asserted by the tests

export interface EventStream {
  events: SseEvent[];
  until(what: string, pick: (e: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent>;
  close(): void;
}

/** Asserts an error answer: its status, its code, and (for bad input) the fields it names. */
export function refused(a: Answer, status: number, code: string, fields: string[] = []): void {
  assert.equal(a.status, status, JSON.stringify(a.body));
  assert.equal(a.body.error.code, code);
  assert.ok(a.body.error.message.length > 0);
  for (const f of fields) {
    assert.ok(a.body.error.fields?.includes(f), `${f} not named in ${JSON.stringify(a.body.error)}`);
    assert.match(a.body.error.message, new RegExp(f.replaceAll('.', '\\.')));
  }
}

/** Requests to one server with one token; the event streams it opened are closed by close(). */
export class ApiClient {
  private readonly streams: EventStream[] = [];

  constructor(readonly base: string, readonly token: string) {}

  /** The server's OpenAPI document, fetched once, that every answer is checked against. */
  private contract?: Promise<OpenApiResponses>;

  /**
   * One request; the client's token unless `auth` says otherwise (null: no Authorization header).
   * The answer must match the server's OpenAPI document (route, status, body), or the test fails.
   */
  async call(method: string, path: string, body?: unknown, auth: string | null = `Bearer ${this.token}`): Promise<Answer> {
    // Fetched before the first request, so that answers after the server went away are still checked.
    const contract = await (this.contract ??= OpenApiResponses.of(this.base));
    const headers: Record<string, string> = {};
    if (auth !== null) headers.authorization = auth;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(this.base + path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    const answer = { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
    const wrong = contract.mismatch(method, path, res.status, res.headers.get('content-type') ?? '', answer.body);
    if (wrong) assert.fail(`the answer to ${method} ${path} breaks the OpenAPI document: ${wrong}\nbody: ${text.slice(0, 2000)}`);
    return answer;
  }

  /** Reads /api/v1/events (of this client's server, or `at`) as a client would, collecting every event. */
  async openEvents(headers: Record<string, string> = {}, at = this.base, query = ''): Promise<EventStream> {
    const ac = new AbortController();
    const res = await fetch(`${at}${API}/events${query}`, { headers: { authorization: `Bearer ${this.token}`, ...headers }, signal: ac.signal });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const events: SseEvent[] = [];
    void collectEvents(res.body!.getReader(), events);
    const stream: EventStream = {
      events,
      until: (what, pick, timeoutMs = 300_000) => waitFor(what, async () => events.find(pick), timeoutMs),
      close: () => ac.abort(),
    };
    this.streams.push(stream);
    return stream;
  }

  /** Follows an operation over GET until it has finished. */
  async finished(id: string, timeoutMs = 300_000): Promise<any> { // any: Operation JSON
    return waitFor(`operation ${id}`, async () => {
      const a = await this.call('GET', `${API}/operations/${id}`);
      assert.equal(a.status, 200);
      return a.body.state === 'running' ? undefined : a.body;
    }, timeoutMs);
  }

  /** Closes every event stream this client opened. */
  close(): void {
    for (const s of this.streams) s.close();
  }
}

/** Parses an event stream's blocks ("id: ...\nevent: ...\ndata: ...\n\n") into `events` until it ends. */
async function collectEvents(reader: ReadableStreamDefaultReader<Uint8Array>, events: SseEvent[]): Promise<void> {
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
}
