import { createHash } from 'node:crypto';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import type { ApiDeps } from '../deps.js';
import type { IdentityService } from '../../service/identity.js';
import { KumoError, publicError } from '../../model/errors.js';
import { noSpaceError } from '../../service/disk-full.js';
import { HTTP_STATUS } from '../http-status.js';
import { noteFailure } from '../guards.js';
import { enforceRole, type RouteRole } from '../roles.js';
import { IdentityRefused } from '../../service/identity.js';
import { OPENSTACK_PATHS } from './paths.js';

/**
 * What the OpenStack face shares: where each service lives, the ids it shows, its times, how a
 * request is authenticated (Keystone's X-Auth-Token) and how a failure is rendered in each
 * service's own shape. The services' routes stay thin: they map OpenStack's requests onto kumo's
 * services and kumo's views onto OpenStack's bodies; no state of their own.
 */

export { OPENSTACK_PATHS } from './paths.js';

export interface OpenStackDeps extends ApiDeps {
  identity: IdentityService;
}

/** The scheme and host the client reached kumo by: every link and catalog URL is built on it. */
export function baseUrl(req: FastifyRequest): string {
  return `${req.protocol}://${req.host}`;
}

/**
 * A stable UUID (RFC 4122 version 5 layout, SHA-1 of kind and key) for a kumo resource that has a
 * name but no UUID of its own (images, networks, subnets, volumes, keypairs): osUuid('image', name).
 * kumo's names are unique per kind, so the id is too, and it is known before the resource exists
 * (Glance's queued image, say). A resource made again under the same name gets the same id.
 */
export function osUuid(kind: string, ...key: string[]): string {
  const h = createHash('sha1').update(`kumo:${kind}:${key.join('\u0000')}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

export const UUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Nova's, Glance's and Neutron's times: RFC 3339 in UTC with Z, whole seconds ("2026-12-07T04:30:00Z"). */
export const osTime = (iso: string): string => `${new Date(iso).toISOString().slice(0, 19)}Z`;

/** Cinder's times: microseconds and no zone ("2026-12-07T04:30:00.000000"), as Cinder sends them. */
export const cinderTime = (iso: string): string => `${new Date(iso).toISOString().slice(0, 23)}000`;

/** A request without a valid Keystone token; rendered as 401 in the service's shape. */
export class OsUnauthorized extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OsUnauthorized';
  }
}

/**
 * An onRequest hook: X-Auth-Token must be a Keystone token kumo issued and that has not expired;
 * the request then acts as its subject does today (service/identity.ts).
 */
export function keystoneAuth(identity: IdentityService) {
  return async (req: FastifyRequest): Promise<void> => {
    const token = req.headers['x-auth-token'];
    if (typeof token !== 'string' || token === '') {
      throw new OsUnauthorized('this needs a Keystone token in X-Auth-Token: get one with POST /identity/v3/auth/tokens (openstack token issue)');
    }
    const found = identity.verify(token);
    if (!found) throw new OsUnauthorized('the token is not valid: it expired, was revoked, or its user or application credential is gone; authenticate again');
    req.actor = found.actor;
  };
}

/**
 * Each OpenStack route says who may call it in its config (kumoRole: reader, member or admin, as
 * in roles.ts): a route without one fails the server's start. Then the one role check of the API.
 */
export function guardOpenStack(app: FastifyInstance, deps: OpenStackDeps): void {
  app.addHook('onRoute', (route: RouteOptions) => {
    const role = (route.config as { kumoRole?: RouteRole } | undefined)?.kumoRole;
    if (role === undefined) throw new Error(`OpenStack route ${String(route.method)} ${route.url} has no kumoRole in its config: every route must say who may call it`);
    // OpenStack's API reference documents these; kumo's OpenAPI document is kumo's own API.
    route.schema = { ...(route.schema ?? {}), hide: true };
  });
  app.addHook('onRequest', async (req) => {
    if (req.routeOptions.config.kumoRole === 'public') return;
    await keystoneAuth(deps.identity)(req);
  });
  app.addHook('onRequest', enforceRole(deps.ctx));
}

/** How a service renders a failure: its status, the message, and kumo's error code (for the few shapes that carry a type). */
export type FaultRenderer = (status: number, message: string, code: string) => unknown;

/** Nova's and Cinder's fault names by status ({"itemNotFound": {"code": 404, "message": …}}). */
const NOVA_FAULTS: Record<number, string> = {
  400: 'badRequest', 401: 'unauthorized', 403: 'forbidden', 404: 'itemNotFound', 405: 'badMethod', 406: 'notAcceptable',
  409: 'conflictingRequest', 413: 'overLimit', 415: 'badMediaType', 429: 'overLimit', 501: 'notImplemented', 503: 'serviceUnavailable',
};
export const novaFault: FaultRenderer = (status, message) =>
  ({ [NOVA_FAULTS[status] ?? (status < 500 ? 'badRequest' : 'computeFault')]: { code: status, message } });

/** A KumoError's words for an OpenStack client, which shows one message: the problem, then the fix. */
const withFix = (message: string, fix?: string) => (fix ? `${message}; ${fix}` : message);

/**
 * The service's error handler and 404: every failure answers in `render`'s shape with a status
 * that fits (kumo's codes map as in the REST API), and the audit log learns why.
 */
export function installOsErrors(app: FastifyInstance, render: FaultRenderer, home: string): void {
  const send = (reply: FastifyReply, status: number, message: string, code: string) => {
    void reply.code(status).type('application/json; charset=utf-8').send(render(status, message, code));
  };
  app.setNotFoundHandler((req, reply) => send(reply, 404, `there is no route ${req.method} ${req.url.split('?')[0]}`, 'NOT_FOUND'));
  const handle = (err: FastifyError, req: FastifyRequest, reply: FastifyReply): void => {
    if (hasZodFastifySchemaValidationErrors(err)) {
      const lines = err.validation.map((v) => `${err.validationContext ?? 'request'}${v.instancePath.replaceAll('/', '.')}: ${v.message ?? v.keyword}`);
      noteFailure(req, 'INVALID_INPUT');
      return send(reply, 400, `invalid request: ${lines.join('; ')}`, 'INVALID_INPUT');
    }
    if (err instanceof OsUnauthorized || err instanceof IdentityRefused) {
      noteFailure(req, 'UNAUTHORIZED');
      void reply.header('www-authenticate', `Keystone uri="${baseUrl(req)}${OPENSTACK_PATHS.identity}"`);
      return send(reply, 401, err instanceof IdentityRefused ? withFix(err.message, err.fix) : err.message, 'UNAUTHORIZED');
    }
    if (err instanceof KumoError) {
      const status = HTTP_STATUS[err.code];
      if (status >= 500) req.log.error({ err }, 'request failed');
      const shown = publicError(err, req.id);
      noteFailure(req, err.code, shown.withheldUnder ? err.message : undefined);
      return send(reply, status, withFix(shown.message, shown.fix), shown.code);
    }
    if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
      noteFailure(req, 'INVALID_INPUT');
      return send(reply, err.statusCode, err.message, 'INVALID_INPUT');
    }
    const full = noSpaceError(err, home, 'kumo\'s store or files');
    if (full) return handle(full as unknown as FastifyError, req, reply);
    req.log.error({ err }, 'internal error');
    const shown = publicError(err, req.id);
    noteFailure(req, shown.code, err.message);
    send(reply, 500, withFix(shown.message, shown.fix), shown.code);
  };
  app.setErrorHandler(handle);
}

/**
 * OpenStack's paging by marker: the items after the one whose id is `marker` (all of them without
 * one). An unknown marker is refused in the service's words (`unknown`), not read as "from the start".
 */
export function afterMarker<T>(items: T[], idOf: (item: T) => string, marker: string | undefined, unknown: (marker: string) => Error): T[] {
  if (marker === undefined) return items;
  const at = items.findIndex((item) => idOf(item) === marker);
  if (at < 0) throw unknown(marker);
  return items.slice(at + 1);
}

/** A route's config: the role it needs (see guardOpenStack). */
export const role = (kumoRole: RouteRole) => ({ config: { kumoRole } });
