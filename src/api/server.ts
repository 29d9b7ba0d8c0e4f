import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import {
  createJsonSchemaTransform, createJsonSchemaTransformObject, hasZodFastifySchemaValidationErrors, isResponseSerializationError,
  serializerCompiler, validatorCompiler, type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { Context } from '../service/context.js';
import { OperationRegistry } from '../service/operations.js';
import { TokenService } from '../service/tokens.js';
import { InstanceService } from '../service/instances.js';
import { noSpaceError } from '../service/disk-full.js';
import { KumoError, publicError } from '../model/errors.js';
import { HTTP_STATUS } from './http-status.js';
import { API_PREFIX, DOCS_PATH, errors, Health, registry } from './schemas.js';
import { bearerAuth, Unauthorized } from './auth.js';
import { declareProjectParam, declareRouteRoles, enforceRole } from './roles.js';
import { LoginThrottle, SessionService } from '../service/sessions.js';
import { IdentityService } from '../service/identity.js';
import { registerOpenStack } from './openstack/index.js';
import { loginRoutes, sessionRoutes } from './routes/session.js';
import { flavorRoutes } from './routes/flavors.js';
import { imageRoutes } from './routes/images.js';
import { instanceRoutes } from './routes/instances.js';
import { networkRoutes } from './routes/networks.js';
import { volumeRoutes } from './routes/volumes.js';
import { snapshotRoutes } from './routes/snapshots.js';
import { hostRoutes } from './routes/hosts.js';
import { operationRoutes } from './routes/operations.js';
import { eventRoutes } from './routes/events.js';
import websocket from '@fastify/websocket';
import fastifyStatic from '@fastify/static';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { installRoot } from '../config.js';
import { readingRoutes, renderHostCapacity, RequestMetrics, createMonitor, type MonitorOptions, type ServerMonitor } from './metrics.js';
import { instanceVnc, vncProxyRoutes } from './console.js';
import { WS_MAX_PAYLOAD } from './ws-relay.js';
import { instanceSerial, serialProxyRoutes } from './serial.js';
import { ConsoleTickets, ticketRoutes } from './tickets.js';
import type { ApiDeps, SerialResolver, VncResolver } from './deps.js';
import { watchDomains } from '../service/domain-watch.js';
import { loadBalancerRoutes } from './routes/loadbalancers.js';
import { shareRoutes } from './routes/shares.js';
import { planRoutes } from './routes/plans.js';
import { auditRoutes } from './routes/audit.js';
import { projectRoutes } from './routes/projects.js';
export { HTTP_STATUS } from './http-status.js';
import { declareNoSpace, declareTooBusy, installGuards, noteFailure, RETRY_AFTER_SECONDS } from './guards.js';

export interface ServerOptions {
  /** Shared with whoever else wants to watch or start operations (tests, a future scheduler). */
  ops?: OperationRegistry;
  logger?: FastifyServerOptions['logger'];
  /**
   * The monitoring collector behind /metrics and the dashboard's charts, started with the server
   * and stopped when it closes; false: none (/metrics then has hosts and API figures only).
   */
  monitor?: MonitorOptions | false;
  /** Where the built dashboard is (default dist/web next to this build); absent: / says how to build it. */
  webRoot?: string;
  /**
   * Follow each hypervisor's lifecycle events so lists and shows answer states from memory, and
   * publish each change on /events as a resource event (default true; false: every read asks libvirt).
   */
  watchDomains?: boolean;
  /** Where an instance's VNC server is (default: InstanceService); tests may stand in. */
  vncResolver?: VncResolver;
  /** Where an instance's serial console is (default: its libvirt, from InstanceService); tests may stand in. */
  serialResolver?: SerialResolver;
}

/** The built dashboard: dist/web of kumo's installation (from the bundle and the file-by-file build alike). */
export const DEFAULT_WEB_ROOT = join(installRoot(), 'dist', 'web');



const SCHEMA_FIX = `compare the request with the schema at /openapi.json (or the page at ${DOCS_PATH})`;

const toObject = createJsonSchemaTransformObject({ schemaRegistry: registry });

/**
 * @fastify/swagger marks every request body required; one whose schema admits null (see
 * optionalBody in schemas.ts) may be left out, and the document says so.
 */
function optionalBodies<T extends { paths?: object }>(doc: T): T {
  type Media = { schema?: { nullable?: boolean } };
  type Op = { requestBody?: { required?: boolean; content?: Record<string, Media> } };
  for (const item of Object.values(doc.paths ?? {}) as Record<string, Op>[]) {
    for (const op of Object.values(item)) {
      const body = op.requestBody;
      if (body?.content && Object.values(body.content).every((m) => m.schema?.nullable === true)) body.required = false;
    }
  }
  return doc;
}

export type ApiServer = FastifyInstance<
  FastifyInstance['server'], FastifyRequest['raw'], FastifyReply['raw'], FastifyInstance['log'], ZodTypeProvider>;

/** A request id a caller may give: a plain token, short enough for a log line. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{8,64}$/;
const requestId = (req: { headers: Record<string, string | string[] | undefined> }): string => {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
};

/**
 * The REST API as a Fastify app on a Context, not yet listening: `kumo serve` listens on it, and
 * tests run it in-process on an ephemeral port. Routes are thin (parse, call a service, render);
 * everything under /api/v1 but the health check needs a bearer token. The OpenAPI document and
 * its interactive page are public: they describe the API, they show nothing of the cloud.
 */
export async function buildServer(ctx: Context, opts: ServerOptions = {}): Promise<ApiServer> {
  const ops = opts.ops ?? new OperationRegistry();
  const app = Fastify({
    logger: opts.logger ?? false,
    // userData may be a sizeable cloud-config; nothing the API takes is larger.
    bodyLimit: 1024 * 1024,
    // OpenStack's clients add or drop a trailing slash freely (GET /identity/v3/, /compute/v2.1/servers/).
    routerOptions: { ignoreTrailingSlash: true },
    // Fastify counts req-1, req-2... from each start: an id a 500 hands out must name one log line, across restarts too.
    // A proxy in front may pass its own (X-Request-Id) so that its log and kumo's name the same request.
    requestIdHeader: false,
    genReqId: requestId,
  }).withTypeProvider<ZodTypeProvider>();
  installGuards(app, ctx, ops);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => answerError(err, req, reply, ctx.paths.home));
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(errorBody('NOT_FOUND', `there is no route ${req.method} ${req.url.split('?')[0]}`, `see the routes at ${DOCS_PATH}`));
  });
  acceptEmptyJson(app);
  // Before any route: each one takes its role from the table, or the server does not start.
  declareRouteRoles(app);

  await registerDocs(app);

  app.get(`${API_PREFIX}/health`, {
    schema: { tags: ['health'], operationId: 'health', summary: 'whether the API answers (no token needed)', security: [], response: { 200: Health } },
  }, async () => ({ status: 'ok' as const, version: version() }));

  const requests = new RequestMetrics();
  app.addHook('onResponse', requests.hook());
  const monitor: ServerMonitor | undefined = opts.monitor === false ? undefined : createMonitor(ctx, opts.monitor ?? {});
  if (monitor) {
    app.addHook('onClose', async () => {
      await monitor.collector.stop();
      monitor.service.close();
    });
  }
  followDomains(app, ctx, ops, opts.watchDomains !== false);
  const tickets = new ConsoleTickets();
  const vnc = opts.vncResolver ?? instanceVnc(ctx);
  const serial = opts.serialResolver ?? instanceSerial(ctx);
  // One throttle for both password doors (the dashboard's login and Keystone's): two doors must not double the guesses.
  const throttle = new LoginThrottle();
  const sessions = new SessionService(ctx, throttle);
  const auth = bearerAuth(new TokenService(ctx), sessions);
  const role = enforceRole(ctx);

  await app.register(loginRoutes(sessions), { prefix: API_PREFIX });
  await app.register(async (api) => {
    api.addHook('onRequest', auth);
    api.addHook('onRequest', role);
    const deps: ApiDeps = { ctx, ops };
    for (const routes of [instanceRoutes, imageRoutes, flavorRoutes, networkRoutes, volumeRoutes, snapshotRoutes, hostRoutes, shareRoutes, loadBalancerRoutes, planRoutes, operationRoutes, eventRoutes, auditRoutes, projectRoutes]) {
      await api.register(routes, deps);
    }
    await api.register(readingRoutes(monitor, ctx));
    // Another project's instance is refused as missing; an unknown one is the resolver's to refuse.
    await api.register(ticketRoutes(tickets, vnc, serial, (req, name) => { if (ctx.instances.get(name)) new InstanceService(ctx, req.actor).record(name); }));
    await api.register(sessionRoutes(sessions));
  }, { prefix: API_PREFIX });

  // The console WebSocket: its ticket, not the bearer token, lets it in (browsers cannot send headers there).
  await app.register(websocket, { options: { maxPayload: WS_MAX_PAYLOAD } });
  await app.register(vncProxyRoutes(tickets, vnc), { prefix: API_PREFIX });
  await app.register(serialProxyRoutes(tickets, serial), { prefix: API_PREFIX });

  await app.register(prometheusPage(ctx, monitor, requests, [auth, role]));
  // OpenStack's clients sign in at /identity and find the other services in its catalog.
  await registerOpenStack(app, { ctx, ops, identity: new IdentityService(ctx, throttle) });

  await serveDashboard(app, opts.webRoot ?? DEFAULT_WEB_ROOT);
  // Last: a failed registration above leaves no collector running.
  monitor?.collector.start();
  return app;
}

/**
 * The server's domain watch (service/domain-watch.ts): the Context's reads answer from it while
 * the server lives, and the dashboard hears each change of a kumo instance's state as a
 * resource event ("instance", NAME, "state"), so it reloads within moments of a change made
 * even behind kumo's back (`virsh destroy`).
 */
function followDomains(app: ApiServer, ctx: Context, ops: OperationRegistry, on: boolean): void {
  if (!on) return;
  const watch = watchDomains(ctx, (host, uuid) => {
    const r = ctx.instances.byUuid(uuid);
    if (r && r.host === host) ops.resourceChanged('instance', r.name, 'state');
  });
  ctx.observed = watch;
  app.addHook('onClose', async () => {
    if (ctx.observed === watch) delete ctx.observed;
    await watch.stop();
  });
}

/**
 * GET /metrics. Prometheus scrapes with a bearer token (scrape config: authorization.credentials_file):
 * the page names every instance and host, which is more than an anonymous caller should learn.
 */
function prometheusPage(ctx: Context, monitor: ServerMonitor | undefined, requests: RequestMetrics,
  guards: ((req: FastifyRequest) => Promise<void>)[]) {
  return async (m: ApiServer) => {
    for (const g of guards) m.addHook('onRequest', g);
    m.get('/metrics', {
      schema: {
        tags: ['metrics'], operationId: 'metrics',
        summary: 'Prometheus text format 0.0.4: per-instance CPU, memory, disk and network counters, per-host capacity, API requests and latency',
        response: { 200: { description: 'Prometheus text exposition', content: { 'text/plain': { schema: z.string() } } }, ...errors() },
      },
    }, async (_req, reply) => {
      const parts = [monitor ? monitor.service.prometheus(monitor.collector) : '', await renderHostCapacity(ctx), requests.render()];
      return reply.type('text/plain; version=0.0.4; charset=utf-8').send(parts.join(''));
    });
  };
}

/** The OpenAPI document at /openapi.json and its interactive page, both public. */
async function registerDocs(app: ApiServer): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'kumo',
        version: version(),
        description: 'A small private cloud for KVM hosts. Send "Authorization: Bearer TOKEN" with every request but the health ' +
          'check and the login (the admin token is printed by the first `kumo serve`; `kumo token create NAME` makes more). ' +
          'A token or a logged-in user acts in its project with its role (admin, member, reader): each route says which it needs ' +
          '(x-kumo-role); an admin may name another project with ?project=P. Long work answers ' +
          `202 with an operation: follow it at ${API_PREFIX}/operations/{id} or on the Server-Sent Events of ${API_PREFIX}/events.`,
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'a kumo API token (kumo_...)' } } },
      security: [{ bearer: [] }],
      tags: ['instances', 'images', 'flavors', 'networks', 'volumes', 'snapshots', 'hosts', 'shares', 'loadbalancers', 'datacenter', 'operations', 'audit', 'projects', 'metrics', 'session', 'health'].map((name) => ({ name })),
    },
    transform: createJsonSchemaTransform({ schemaRegistry: registry }),
    transformObject: (doc) => declareProjectParam(declareNoSpace(declareTooBusy(optionalBodies(toObject(doc))))),
  });
  // Swagger UI's files come from the npm package: the page works without internet.
  await app.register(swaggerUi, { routePrefix: DOCS_PATH, uiConfig: { persistAuthorization: false, tryItOutEnabled: true } });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}

/** The web dashboard's files at / (hash routes: one index.html); a hint instead when it was not built. */
async function serveDashboard(app: ApiServer, root: string): Promise<void> {
  if (!existsSync(`${root}/index.html`)) {
    app.get('/', { schema: { hide: true } }, async (_req, reply) =>
      reply.type('text/plain; charset=utf-8').send(`the kumo dashboard was not built (${root} has no index.html): run npm run build\n`));
    return;
  }
  await app.register(async (web) => {
    await web.register(fastifyStatic, { root, prefix: '/', decorateReply: false, index: ['index.html'], wildcard: true, schemaHide: true });
  });
}

function errorBody(code: string, message: string, fix?: string, fields?: string[], requestId?: string) {
  return { error: { code, message, ...(fix ? { fix } : {}), ...(fields?.length ? { fields } : {}), ...(requestId ? { requestId } : {}) } };
}

/** Every failure becomes {error: {code, message, fix}} with a status that fits its code. */
function answerError(err: FastifyError, req: FastifyRequest, reply: FastifyReply, home: string): void {
  if (hasZodFastifySchemaValidationErrors(err)) {
    const where = err.validationContext ?? 'request';
    const fields: string[] = [];
    const lines = err.validation.map((v) => {
      const path = `${where}${v.instancePath === '/' ? '' : v.instancePath.replaceAll('/', '.')}`;
      // An unknown key is named by the issue's keys, not by its path (the object holding it).
      const keys = v.keyword === 'unrecognized_keys' ? (v.params as { keys?: string[] }).keys ?? [] : [];
      if (keys.length) {
        fields.push(...keys.map((k) => `${path}.${k}`));
        return `${keys.map((k) => `${path}.${k}`).join(', ')}: unknown field${keys.length > 1 ? 's' : ''}`;
      }
      fields.push(path);
      const message = v.message ?? v.keyword;
      return /received undefined$/.test(message) ? `${path} is required` : `${path}: ${message}`;
    });
    noteFailure(req, 'INVALID_INPUT');
    void reply.code(400).send(errorBody('INVALID_INPUT', lines.join('; '), SCHEMA_FIX, fields));
    return;
  }
  if (err instanceof Unauthorized) {
    noteFailure(req, 'UNAUTHORIZED');
    void reply.code(401).header('www-authenticate', 'Bearer realm="kumo"').send(errorBody('UNAUTHORIZED', err.message, err.fix));
    return;
  }
  if (err instanceof KumoError) {
    const status = HTTP_STATUS[err.code];
    if (status >= 500) req.log.error({ err }, 'request failed');
    const shown = publicError(err, req.id);
    noteFailure(req, err.code, shown.withheldUnder ? err.message : undefined);
    if (err.code === 'TOO_BUSY') void reply.header('retry-after', String(RETRY_AFTER_SECONDS));
    void reply.code(status).send(errorBody(shown.code, shown.message, shown.fix, undefined, shown.withheldUnder));
    return;
  }
  if (!isResponseSerializationError(err) && err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
    // Fastify's own refusals: malformed JSON, a body too large, an unsupported content type.
    noteFailure(req, err.statusCode === 404 ? 'NOT_FOUND' : 'INVALID_INPUT');
    void reply.code(err.statusCode).send(errorBody(err.statusCode === 404 ? 'NOT_FOUND' : 'INVALID_INPUT', err.message,
      err.statusCode === 415 ? 'send the body as application/json' : SCHEMA_FIX));
    return;
  }
  // A full KUMO_HOME outside an operation's undo (the store refusing a write) is told as such: 507.
  const full = noSpaceError(err, home, 'kumo\'s store or files');
  if (full) return answerError(full as unknown as FastifyError, req, reply, home);
  // Unexpected: its message may show paths, SQL or a stack's worth of internals. The client gets
  // a stable code and the request id; the details go to the log under that id.
  req.log.error({ err }, 'internal error');
  const shown = publicError(err, req.id);
  noteFailure(req, shown.code, err.message);
  void reply.code(500).send(errorBody(shown.code, shown.message, shown.fix, undefined, shown.withheldUnder));
}

/**
 * An action whose body is optional (stop, detach, snapshot) may come with
 * "content-type: application/json" and no body at all; Fastify would refuse that.
 */
function acceptEmptyJson(app: ApiServer): void {
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    json(req, text, done);
  });
}

let cachedVersion: string | undefined;
function version(): string {
  if (cachedVersion === undefined) {
    try {
      cachedVersion = (JSON.parse(readFileSync(join(installRoot(), 'package.json'), 'utf8')) as { version?: string }).version ?? '0.0.0';
    } catch {
      cachedVersion = '0.0.0';
    }
  }
  return cachedVersion;
}
