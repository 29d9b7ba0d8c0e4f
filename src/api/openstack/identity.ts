import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Actor, UserRole } from '../../model/actor.js';
import type { IdentityToken } from '../../service/identity.js';
import { SettingsService } from '../../service/settings.js';
import { baseUrl, guardOpenStack, installOsErrors, OPENSTACK_PATHS, osUuid, OsUnauthorized, role, type OpenStackDeps } from './common.js';
import { invalid } from '../../model/errors.js';

/**
 * Keystone v3 at /identity, as much as OpenStack's clients use: version discovery, and tokens
 * (issue with a password or an application credential, validate, revoke). A token's body carries
 * the catalog of the services kumo serves, built on the address the client reached kumo by.
 */

/** Keystone's errors: {"error": {"code", "title", "message"}}. */
const TITLES: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict', 429: 'Too Many Requests' };
const keystoneFault = (status: number, message: string) => ({ error: { code: status, title: TITLES[status] ?? 'Internal Server Error', message } });

/** kumo's domain: one, as Keystone's "Default" (clients send user_domain_name/project_domain_name Default). */
const DOMAIN = { id: 'default', name: 'Default' };

/** Keystone's roles of a kumo role: admin ⊇ member ⊇ reader, as Keystone's default roles imply. */
const ROLE_NAMES: Record<UserRole, UserRole[]> = { admin: ['admin', 'member', 'reader'], member: ['member', 'reader'], reader: ['reader'] };

const V3 = (base: string) => ({
  id: 'v3.14', status: 'stable', updated: '2020-04-07T00:00:00Z',
  links: [{ rel: 'self', href: `${base}${OPENSTACK_PATHS.identity}/v3/` }],
  'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.identity-v3+json' }],
});

// Clients send more than kumo reads (domains, ids, "nocatalog"): unknown keys pass, the ones read are checked.
const Named = z.object({ id: z.string().optional(), name: z.string().optional() }).passthrough();
const AuthRequest = z.object({
  auth: z.object({
    identity: z.object({
      methods: z.array(z.string()).min(1),
      password: z.object({ user: Named.extend({ password: z.string().min(1).max(1024) }) }).passthrough().optional(),
      application_credential: z.object({ id: z.string().optional(), name: z.string().optional(), secret: z.string().min(1).max(256) }).passthrough().optional(),
    }).passthrough(),
    scope: z.object({ project: Named.optional() }).passthrough().optional(),
  }).passthrough(),
});
type AuthBody = z.infer<typeof AuthRequest>;

/** Keystone's time with microseconds and Z, as its token bodies carry it. */
const keystoneTime = (ms: number) => `${new Date(ms).toISOString().slice(0, 23)}000Z`;

/** The services in the catalog: type, name and path, public and internal at the same address. */
function catalog(base: string, project: string, region: string) {
  const services: [type: string, name: string, url: string][] = [
    ['identity', 'keystone', `${base}${OPENSTACK_PATHS.identity}/v3`],
    ['compute', 'nova', `${base}${OPENSTACK_PATHS.compute}/v2.1`],
    ['image', 'glance', `${base}${OPENSTACK_PATHS.image}`],
    ['network', 'neutron', `${base}${OPENSTACK_PATHS.network}`],
    ['volumev3', 'cinderv3', `${base}${OPENSTACK_PATHS.volume}/v3/${project}`],
    ['block-storage', 'cinder', `${base}${OPENSTACK_PATHS.volume}/v3/${project}`],
  ];
  return services.map(([type, name, url]) => ({
    id: osUuid('service', type), type, name,
    endpoints: ['public', 'internal'].map((iface) => ({ id: osUuid('endpoint', type, iface), interface: iface, region_id: region, region, url })),
  }));
}

/** A token's body as Keystone gives it. */
function tokenBody(req: FastifyRequest, deps: OpenStackDeps, t: Omit<IdentityToken, 'token'>, withCatalog: boolean) {
  const region = new SettingsService(deps.ctx).get('openstack.region');
  const a: Actor = t.actor;
  return {
    token: {
      methods: [t.method], audit_ids: [osUuid('audit', String(t.issuedAt), a.name).slice(0, 22)],
      issued_at: keystoneTime(t.issuedAt), expires_at: keystoneTime(t.expiresAt),
      user: { id: a.kind === 'user' ? a.name : `token-${a.name}`, name: a.name, domain: DOMAIN, password_expires_at: null },
      project: { id: a.project, name: a.project, domain: DOMAIN },
      is_domain: false,
      roles: ROLE_NAMES[a.role].map((r) => ({ id: r, name: r })),
      ...(t.method === 'application_credential' ? { application_credential: { id: a.name, name: a.name, restricted: true } } : {}),
      ...(withCatalog ? { catalog: catalog(baseUrl(req), a.project, region) } : {}),
    },
  };
}

/** The project a scope names: by name or id (kumo's project ids are their names). */
const scopedProject = (body: AuthBody): string | undefined => {
  const p = body.auth.scope?.project;
  return p?.name ?? p?.id;
};

async function authenticate(req: FastifyRequest, deps: OpenStackDeps, body: AuthBody): Promise<IdentityToken> {
  const { identity } = body.auth;
  const project = scopedProject(body);
  if (identity.methods.includes('application_credential') && identity.application_credential) {
    const c = identity.application_credential;
    if (!c.id) throw invalid('an application credential needs its id', 'give the id `kumo token list` shows (application_credential_id)');
    return deps.identity.withApplicationCredential(c.id, c.secret, project);
  }
  if (identity.methods.includes('password') && identity.password) {
    const u = identity.password.user;
    const name = u.name ?? u.id;
    if (!name) throw invalid('a password needs the user\'s name', 'set username (OS_USERNAME) to a kumo user');
    return deps.identity.withPassword(name, u.password, project, req.ip);
  }
  throw invalid(`kumo serves the methods "password" and "application_credential", not "${identity.methods.join(', ')}"`,
    'authenticate with a kumo user\'s password, or with a kumo API token as application credential (id and secret)');
}

export const identityRoutes: FastifyPluginAsync<OpenStackDeps> = async (app, deps) => {
  installOsErrors(app, keystoneFault, deps.ctx.paths.home);
  guardOpenStack(app, deps);

  app.get('/', role('public'), async (req, reply) => reply.code(300).send({ versions: { values: [V3(baseUrl(req))] } }));
  app.get('/v3', role('public'), async (req) => ({ version: V3(baseUrl(req)) }));

  app.post('/v3/auth/tokens', { ...role('public'), schema: { body: AuthRequest } }, async (req, reply) => {
    const t = await authenticate(req, deps, req.body as AuthBody);
    const withCatalog = (req.query as Record<string, unknown>).nocatalog === undefined;
    return reply.code(201).header('x-subject-token', t.token).send(tokenBody(req, deps, t, withCatalog));
  });

  /** Validation: a token may look at itself; an admin at any. */
  const subject = (req: FastifyRequest) => {
    const text = req.headers['x-subject-token'];
    const found = typeof text === 'string' ? deps.identity.verify(text) : undefined;
    if (!found) throw new OsUnauthorized('the X-Subject-Token is not a valid token (expired, revoked, or never issued)');
    if (text !== req.headers['x-auth-token'] && req.actor?.role !== 'admin') throw new OsUnauthorized('only an admin may look at another token');
    return { text: text as string, found };
  };
  app.get('/v3/auth/tokens', role('reader'), async (req, reply) => {
    const { text, found } = subject(req);
    const withCatalog = (req.query as Record<string, unknown>).nocatalog === undefined;
    return reply.header('x-subject-token', text).send(tokenBody(req, deps, { ...found, method: found.actor.kind === 'token' ? 'application_credential' : 'password' }, withCatalog));
  });
  app.delete('/v3/auth/tokens', role('reader'), async (req, reply) => {
    deps.identity.revoke(subject(req).text);
    return reply.code(204).send();
  });
  app.get('/v3/auth/catalog', role('reader'), async (req) =>
    ({ catalog: catalog(baseUrl(req), req.actor!.project, new SettingsService(deps.ctx).get('openstack.region')) }));
};
