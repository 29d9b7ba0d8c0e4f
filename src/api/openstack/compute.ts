import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { FlavorService } from '../../service/flavors.js';
import { KeypairService, type Keypair } from '../../service/keypairs.js';
import { ProjectService } from '../../service/projects.js';
import { baseUrl, cinderTime, guardOpenStack, installOsErrors, novaFault, OPENSTACK_PATHS, role, type OpenStackDeps } from './common.js';
import { novaLinks, renderFlavor } from './compute-render.js';
import { actorOf, ServerFinder } from './compute-find.js';
import { serverRoutes } from './compute-servers.js';
import { serverActionRoutes } from './compute-actions.js';

/**
 * Nova (compute API 2.1, no higher microversion) at /compute: version discovery, servers
 * (compute-servers.ts, compute-actions.ts), flavors, keypairs and limits, on kumo's instances,
 * flavors, keypairs and project quotas.
 */

const VERSION = '2.1';

const v21 = (req: FastifyRequest) => ({
  id: 'v2.1', status: 'CURRENT', version: VERSION, min_version: VERSION, updated: '2013-07-23T11:33:21Z',
  links: [{ rel: 'self', href: `${baseUrl(req)}${OPENSTACK_PATHS.compute}/v2.1/` }],
  'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.compute+json;version=2.1' }],
});

/** A Fastify error with a status: installOsErrors renders it in Nova's shape (406 notAcceptable). */
const statusError = (statusCode: number, message: string) => Object.assign(new Error(message), { statusCode });

/**
 * The microversion a request asks for (X-OpenStack-Nova-API-Version: 2.N, or OpenStack-API-Version:
 * compute 2.N): kumo serves 2.1 alone, "latest" is 2.1, anything else is refused as Nova refuses it.
 */
export function checkMicroversion(req: FastifyRequest): void {
  const legacy = req.headers['x-openstack-nova-api-version'];
  const modern = String(req.headers['openstack-api-version'] ?? '').split(',').map((p) => p.trim().split(/\s+/))
    .find(([service]) => service?.toLowerCase() === 'compute')?.[1];
  const asked = modern ?? (typeof legacy === 'string' ? legacy.trim() : undefined);
  if (asked === undefined || asked === '' || asked.toLowerCase() === 'latest' || asked === VERSION) return;
  if (!/^\d+\.\d+$/.test(asked)) throw statusError(400, `Invalid API version request: ${asked}; give a version such as 2.1`);
  throw statusError(406, `Version ${asked} is not supported by the API. Minimum is ${VERSION} and maximum is ${VERSION}.`);
}

function versionRoutes(app: FastifyInstance): void {
  app.get('/', role('public'), async (req) => ({ versions: [v21(req)] }));
  app.get('/v2.1', role('public'), async (req) => ({ version: v21(req) }));
}

function flavorRoutes(app: FastifyInstance, deps: OpenStackDeps): void {
  const flavors = (req: FastifyRequest) => new FlavorService(deps.ctx, actorOf(req));
  // A flavor any project may use: Nova's is_public (project '' is never a project: only public flavors are usable by it).
  const isPublic = (name: string) => deps.ctx.flavors.usableBy(name, '');
  const listed = (req: FastifyRequest) => {
    const q = req.query as Record<string, unknown>;
    const minRam = Number(q.minRam ?? 0);
    const minDisk = Number(q.minDisk ?? 0);
    const all = flavors(req).list().filter((f) => f.ramMiB >= (minRam || 0) && f.diskGiB >= (minDisk || 0));
    const at = typeof q.marker === 'string' ? all.findIndex((f) => f.name === q.marker) + 1 : 0;
    return all.slice(at, q.limit === undefined ? undefined : at + Math.max(0, Number(q.limit) || 0));
  };
  app.get('/v2.1/flavors', role('reader'), async (req) =>
    ({ flavors: listed(req).map((f) => ({ id: f.name, name: f.name, links: novaLinks(baseUrl(req), 'flavors', f.name) })) }));
  app.get('/v2.1/flavors/detail', role('reader'), async (req) =>
    ({ flavors: listed(req).map((f) => renderFlavor(baseUrl(req), f, isPublic(f.name))) }));
  app.get('/v2.1/flavors/:id', role('reader'), async (req) => {
    const f = flavors(req).get((req.params as { id: string }).id);
    return { flavor: renderFlavor(baseUrl(req), f, isPublic(f.name)) };
  });
  app.get('/v2.1/flavors/:id/os-extra_specs', role('reader'), async (req) => {
    flavors(req).get((req.params as { id: string }).id);
    return { extra_specs: {} };
  });
}

const KeypairCreate = z.looseObject({
  keypair: z.looseObject({
    name: z.string().min(1).max(255),
    public_key: z.string().max(16_384).optional(),
    type: z.enum(['ssh']).optional(),
  }),
});

/** A keypair as Nova 2.1 lists it, and (`full`) shows it. */
const keypairBody = (k: Keypair, full: boolean, user: string) => ({
  name: k.name, public_key: k.publicKey, fingerprint: k.fingerprint,
  ...(full ? { user_id: user, id: k.id, created_at: cinderTime(k.createdAt), deleted: false, deleted_at: null, updated_at: null } : {}),
});

function keypairRoutes(app: FastifyInstance, deps: OpenStackDeps): void {
  const keypairs = (req: FastifyRequest) => new KeypairService(deps.ctx, actorOf(req));
  const user = (req: FastifyRequest) => actorOf(req).name;
  app.get('/v2.1/os-keypairs', role('reader'), async (req) =>
    ({ keypairs: keypairs(req).list().map((k) => ({ keypair: keypairBody(k, false, user(req)) })) }));
  app.get('/v2.1/os-keypairs/:name', role('reader'), async (req) =>
    ({ keypair: keypairBody(keypairs(req).get((req.params as { name: string }).name), true, user(req)) }));
  // Nova 2.1 answers a create with 200 and a delete with 202 (201 and 204 came with 2.2).
  app.post('/v2.1/os-keypairs', { ...role('member'), schema: { body: KeypairCreate } }, async (req) => {
    const { name, public_key: publicKey } = (req.body as z.infer<typeof KeypairCreate>).keypair;
    if (publicKey !== undefined) return { keypair: { ...keypairBody(keypairs(req).import(name, publicKey), false, user(req)), user_id: user(req) } };
    const made = await keypairs(req).generate(name);
    return { keypair: { ...keypairBody(made.keypair, false, user(req)), user_id: user(req), private_key: made.privateKey } };
  });
  app.delete('/v2.1/os-keypairs/:name', role('member'), async (req, reply) => {
    keypairs(req).delete((req.params as { name: string }).name);
    return reply.code(202).send();
  });
}

/** Nova's absolute limits from the project's quotas and use; -1 is no cap, as Nova says it. */
function limitRoutes(app: FastifyInstance, deps: OpenStackDeps): void {
  app.get('/v2.1/limits', role('reader'), async (req) => {
    const actor = actorOf(req);
    const { limits, use } = new ProjectService(deps.ctx, actor).show(actor.project);
    const cap = (n: number | undefined) => n ?? -1;
    const keys = new KeypairService(deps.ctx, actor).list().length;
    return {
      limits: {
        rate: [],
        absolute: {
          maxTotalCores: cap(limits.vcpus), totalCoresUsed: use.vcpus,
          maxTotalInstances: cap(limits.instances), totalInstancesUsed: use.instances,
          maxTotalRAMSize: cap(limits.ramMiB), totalRAMUsed: use.ramMiB,
          maxTotalKeypairs: -1, totalKeypairsUsed: keys,
          maxServerMeta: 0, maxImageMeta: 0, maxPersonality: 0, maxPersonalitySize: 0,
          maxSecurityGroups: -1, maxSecurityGroupRules: -1, totalSecurityGroupsUsed: 0,
          maxTotalFloatingIps: 0, totalFloatingIpsUsed: 0, maxServerGroups: 0, maxServerGroupMembers: 0, totalServerGroupsUsed: 0,
        },
      },
    };
  });
}

export const computeRoutes: FastifyPluginAsync<OpenStackDeps> = async (app, deps) => {
  installOsErrors(app, novaFault, deps.ctx.paths.home);
  // Before the token's check: every answer, a 401 too, says the microversion served.
  app.addHook('onRequest', async (req, reply) => {
    void reply.header('openstack-api-version', `compute ${VERSION}`).header('x-openstack-nova-api-version', VERSION)
      .header('vary', 'OpenStack-API-Version, X-OpenStack-Nova-API-Version');
    checkMicroversion(req);
  });
  guardOpenStack(app, deps);
  versionRoutes(app);
  flavorRoutes(app, deps);
  keypairRoutes(app, deps);
  limitRoutes(app, deps);
  const finder = new ServerFinder(deps);
  serverRoutes(app, deps, finder);
  serverActionRoutes(app, deps, finder);
};
