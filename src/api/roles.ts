import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import { DEFAULT_PROJECT, type Actor, type UserRole } from '../model/actor.js';
import { forbidden, invalid, notFound } from '../model/errors.js';
import { projectExists } from '../service/project-exists.js';
import type { Context } from '../service/context.js';
import { API_PREFIX, ErrorBody } from './schemas.js';

/** What a route needs: a role (and its betters), nothing (public), or a console ticket (the WebSockets). */
export type RouteRole = UserRole | 'public' | 'ticket';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The role the route needs, from ROUTE_ROLES (set when the route is registered). */
    kumoRole?: RouteRole;
  }
}

/**
 * Who may call what, in one table: every API route is here, or the server does not start
 * (declareRouteRoles). reader: reads in its project; member: changes in its project; admin:
 * what concerns the whole cloud (hosts, flavors, images, raw libvirt XML, datacenter files,
 * the audit log, Prometheus' page) and any project. docs/security.md has the reasons.
 */
export const ROUTE_ROLES: Readonly<Record<string, RouteRole>> = {
  'GET /health': 'public',
  'POST /login': 'public',
  'POST /logout': 'reader',
  'GET /session': 'reader',
  'GET /instances': 'reader',
  'GET /instances/:name': 'reader',
  'POST /instances': 'member',
  'DELETE /instances/:name': 'member',
  'GET /instances/:name/xml': 'admin',
  'GET /instances/:name/console-log': 'member',
  'POST /instances/:name/start': 'member',
  'POST /instances/:name/stop': 'member',
  'POST /instances/:name/reboot': 'member',
  'POST /instances/:name/destroy': 'member',
  'POST /instances/:name/migrate': 'admin',
  'POST /instances/:name/resize': 'member',
  'GET /instances/:name/readings': 'reader',
  'POST /instances/:name/console-ticket': 'member',
  'GET /instances/:name/vnc': 'ticket',
  'GET /instances/:name/serial': 'ticket',
  'GET /instances/:instance/snapshots': 'reader',
  'POST /instances/:instance/snapshots': 'member',
  'POST /instances/:instance/snapshots/:name/revert': 'member',
  'DELETE /instances/:instance/snapshots/:name': 'member',
  'GET /images': 'reader',
  'GET /images/:name': 'reader',
  'POST /images/build': 'admin',
  'POST /images/import': 'admin',
  'PATCH /images/:name': 'admin',
  'DELETE /images/:name': 'admin',
  'GET /flavors': 'reader',
  'GET /flavors/:name': 'reader',
  'POST /flavors': 'admin',
  'DELETE /flavors/:name': 'admin',
  // A member or reader sees its own project's use against its quotas; only an admin changes projects.
  'GET /projects': 'reader',
  'GET /projects/:name': 'reader',
  'POST /projects': 'admin',
  'PATCH /projects/:name': 'admin',
  'DELETE /projects/:name': 'admin',
  'GET /networks': 'reader',
  'GET /networks/:name': 'reader',
  'POST /networks': 'member',
  'DELETE /networks/:name': 'member',
  'POST /networks/:name/start': 'member',
  'POST /networks/:name/stop': 'member',
  'POST /networks/define': 'admin',
  'POST /networks/:name/autostart': 'member',
  'GET /networks/:name/xml': 'admin',
  'GET /volumes': 'reader',
  'GET /volumes/:name': 'reader',
  'POST /volumes': 'member',
  'POST /volumes/:name/attach': 'member',
  'POST /volumes/:name/detach': 'member',
  'DELETE /volumes/:name': 'member',
  'POST /volumes/:name/resize': 'member',
  'GET /shares': 'reader',
  'GET /shares/:name': 'reader',
  'POST /shares': 'member',
  'DELETE /shares/:name': 'member',
  'GET /loadbalancers': 'reader',
  'GET /loadbalancers/:name': 'reader',
  'POST /loadbalancers': 'member',
  'PUT /loadbalancers/:name/instances': 'member',
  'POST /loadbalancers/:name/sync': 'member',
  'DELETE /loadbalancers/:name': 'member',
  'GET /loadbalancers/:name/waf-log': 'reader',
  'GET /hosts': 'admin',
  'GET /hosts/:name': 'admin',
  'GET /info': 'admin',
  'POST /hosts': 'admin',
  'DELETE /hosts/:name': 'admin',
  'POST /hosts/:name/evacuate': 'admin',
  'POST /plans': 'member',
  'POST /plans/apply': 'admin',
  'POST /plans/destroy': 'admin',
  'GET /operations': 'reader',
  'GET /operations/:id': 'reader',
  'GET /events': 'reader',
  'GET /audit': 'admin',
  'GET /metrics': 'admin',
};

const RANK: Record<UserRole, number> = { reader: 0, member: 1, admin: 2 };

/** Does `role` include what `need` asks? admin ⊇ member ⊇ reader. */
export const roleAllows = (role: UserRole, need: UserRole): boolean => RANK[role] >= RANK[need];

/** The table's key for a registered route, or undefined for a route outside the API (the dashboard, the docs). */
export function routeKey(method: string, url: string): string | undefined {
  const m = method === 'HEAD' ? 'GET' : method;
  if (url === '/metrics') return `${m} ${url}`;
  if (!url.startsWith(`${API_PREFIX}/`)) return undefined;
  return `${m} ${url.slice(API_PREFIX.length)}`;
}

/** Per server: each API route registered, with the role it was given (for tests and the docs). */
const registered = new WeakMap<FastifyInstance, Map<string, RouteRole>>();
export const registeredRouteRoles = (app: FastifyInstance): ReadonlyMap<string, RouteRole> => registered.get(app) ?? new Map();

const WHO: Record<RouteRole, string> = {
  public: 'Needs no token.',
  ticket: 'Needs a console ticket (which only a member may get).',
  reader: 'Needs the role reader (or member, admin) in the project.',
  member: 'Needs the role member (or admin) in the project.',
  admin: 'Needs the role admin.',
};

/**
 * An onRoute hook, added before any route: each API route gets its role from ROUTE_ROLES (a
 * route missing there fails the server's start), and its OpenAPI entry says so: an
 * `x-kumo-role` extension, a sentence in its description, and the 403 (role) and 404
 * (unknown ?project=) answers.
 */
export function declareRouteRoles(app: FastifyInstance): void {
  const seen = new Map<string, RouteRole>();
  registered.set(app, seen);
  app.addHook('onRoute', (route: RouteOptions) => {
    if (typeof route.method !== 'string') return;
    const key = routeKey(route.method, route.url);
    if (key === undefined) return;
    // kumo's routes are in the table; a route added elsewhere (a test's) must state its role in its config.
    const role = ROUTE_ROLES[key] ?? (route.config as { kumoRole?: RouteRole } | undefined)?.kumoRole;
    if (role === undefined) throw new Error(`route ${key} has no role in ROUTE_ROLES (src/api/roles.ts): every API route must say who may call it`);
    seen.set(key, role);
    route.config = { ...(route.config ?? {}), kumoRole: role };
    // Schemas are plain objects here (zod's type provider does not type them); only documented routes get the note.
    const schema = route.schema as (Record<string, unknown> & { response?: Record<string, unknown>; description?: string }) | undefined;
    if (!schema || schema.hide) return;
    schema['x-kumo-role'] = role;
    if (!schema.description?.includes(WHO[role])) schema.description = [schema.description, WHO[role]].filter(Boolean).join(' ');
    if (schema.response && role !== 'public' && role !== 'ticket') {
      schema.response[403] ??= ErrorBody;
      schema.response[404] ??= ErrorBody;
    }
  });
}

/**
 * The project a request acts in: its actor's, or with ?project=P an admin's pick. Anyone else
 * naming a project not theirs is told it does not exist, as for any project they cannot see.
 */
function pickProject(ctx: Pick<Context, 'projects'>, req: FastifyRequest, actor: Actor): void {
  const asked = (req.query as Record<string, unknown> | undefined)?.project;
  if (asked === undefined) return;
  if (typeof asked !== 'string' || asked === '') throw invalid('?project= names one project', `e.g. ?project=${DEFAULT_PROJECT}`);
  const unknown = notFound(`there is no project "${asked}"`, actor.role === 'admin' ? 'see `kumo project list`' : `leave out ?project=: this ${actor.kind} acts in project "${actor.project}"`);
  if (asked === actor.project) return;
  if (actor.role !== 'admin' || !projectExists(ctx, asked)) throw unknown;
  actor.project = asked;
}

/**
 * An onRequest hook after bearerAuth: the one place roles are enforced. Refuses (FORBIDDEN)
 * an actor whose role is below the route's, naming both; ?project= is settled first, so that a
 * member naming a project not theirs learns nothing of it.
 */
export function enforceRole(ctx: Pick<Context, 'projects'>) {
  return async (req: FastifyRequest): Promise<void> => {
    // A route outside the table cannot be registered; an unknown one (no config) is refused as an admin's.
    const need = req.routeOptions.config.kumoRole ?? 'admin';
    const actor = req.actor;
    if (need === 'public' || need === 'ticket' || !actor) return;
    pickProject(ctx, req, actor);
    if (roleAllows(actor.role, need)) return;
    const who = actor.kind === 'user' ? `user "${actor.name}"` : `token "${actor.name}"`;
    throw forbidden(`${req.method} ${req.routeOptions.url ?? ''} needs the role ${need}; ${who} is a ${actor.role} of project "${actor.project}"`,
      need === 'admin' ? 'ask an admin to do it' : `ask an admin for a ${need} token of the project: kumo token create NAME --project ${actor.project} --role ${need}`);
  };
}

/** The OpenAPI document: every route that takes a token takes ?project= too (an admin's pick of project). */
export function declareProjectParam<T extends { paths?: object }>(doc: T): T {
  type Op = { 'x-kumo-role'?: RouteRole; parameters?: { name: string; in: string }[] };
  for (const item of Object.values(doc.paths ?? {}) as Record<string, Op>[]) {
    for (const op of Object.values(item)) {
      const role = op['x-kumo-role'];
      if (!role || role === 'public' || role === 'ticket' || op.parameters?.some((p) => p.name === 'project' && p.in === 'query')) continue;
      op.parameters = [...(op.parameters ?? []), {
        name: 'project', in: 'query', required: false, schema: { type: 'string' },
        description: 'act in this project (admins only; others may name only their own project)',
      } as { name: string; in: string }];
    }
  }
  return doc;
}
