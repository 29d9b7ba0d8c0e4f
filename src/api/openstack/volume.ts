import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { invalid, notFound } from '../../model/errors.js';
import { projectExists } from '../../service/project-exists.js';
import { VolumeService, type Volume } from '../../service/volumes.js';
import { afterMarker, baseUrl, guardOpenStack, installOsErrors, novaFault, OPENSTACK_PATHS, role, type OpenStackDeps } from './common.js';
import { CINDER_VERSION, cinderV3, DEFAULT_TYPE, volumeDetail, volumeId, volumeStatus, volumeSummary } from './volume-render.js';

/**
 * Cinder v3 at /volume/v3/{project_id}, on kumo's volumes: create, list (summary and detail,
 * filtered and paged), show and delete, with the attachment kumo records (attaching itself goes
 * through Nova's os-volume_attachments). Errors in Nova's shape, as Cinder's.
 */

// Clients send every key of the request, most of them null (osc: snapshot_id, imageRef, ...): null is "not asked".
const VolumeCreate = z.object({
  volume: z.object({
    size: z.union([z.number().int(), z.string().regex(/^\d+$/, 'a whole number of GiB')]),
    name: z.string().nullable().optional(),
    description: z.string().nullable().optional(),
    volume_type: z.string().nullable().optional(),
    metadata: z.record(z.string(), z.unknown()).nullable().optional(),
    multiattach: z.boolean().nullable().optional(),
    availability_zone: z.string().nullable().optional(),
  }).passthrough(),
});
type VolumeCreateBody = z.infer<typeof VolumeCreate>['volume'];
const ProjectParams = z.object({ project: z.string() });
const VolumeParams = ProjectParams.extend({ id: z.string() });
const TypeParams = ProjectParams.extend({ id: z.string() });

/** What kumo's volumes cannot be made from or with: refused by name rather than ignored. */
const NOT_SERVED: [key: string, what: string, fix: string][] = [
  ['snapshot_id', 'from a snapshot', 'create an empty volume'],
  ['source_volid', 'as a copy of another volume', 'create an empty volume'],
  ['imageRef', 'from an image', 'boot an instance from the image instead (openstack server create --image)'],
  ['backup_id', 'from a backup', 'create an empty volume'],
  ['consistencygroup_id', 'in a consistency group', 'leave out the group'],
  ['group_id', 'in a group', 'leave out the group'],
];

function checkServed(v: VolumeCreateBody): void {
  const asked = v as Record<string, unknown>;
  for (const [key, what, fix] of NOT_SERVED) {
    if (asked[key] !== undefined && asked[key] !== null) throw invalid(`kumo makes empty volumes only, not ${what} (${key})`, fix);
  }
  if (v.volume_type && v.volume_type !== DEFAULT_TYPE.name && v.volume_type !== DEFAULT_TYPE.id) {
    throw invalid(`kumo has one volume type, ${DEFAULT_TYPE.name}, not "${v.volume_type}"`, 'leave out --type');
  }
  if (v.multiattach) throw invalid('a kumo volume attaches to one instance at a time', 'leave out --multi-attach');
  if (v.availability_zone && v.availability_zone !== 'nova') throw invalid(`kumo has one availability zone, nova, not "${v.availability_zone}"`, 'leave out --availability-zone');
  if (v.description) throw invalid('kumo keeps no description of a volume', 'leave out --description; the name says what it is');
  if (v.metadata && Object.keys(v.metadata).length) throw invalid('kumo keeps no metadata of a volume', 'leave out --property');
}

/** Cinder's list filters kumo can answer (name, status); others match everything. Then marker and limit. */
function page(all: Volume[], query: Record<string, unknown>): { items: Volume[]; next?: string } {
  const one = (k: string) => (typeof query[k] === 'string' ? query[k] as string : undefined);
  const matching = all.filter((v) => (one('name') === undefined || v.name === one('name')) && (one('status') === undefined || volumeStatus(v) === one('status')));
  const items = afterMarker(matching, (v) => volumeId(v.name), one('marker'),
    (m) => invalid(`marker ${m} is not a volume of this list`, 'start again without --marker'));
  const limitText = one('limit');
  if (limitText === undefined) return { items };
  const limit = Number(limitText);
  if (!Number.isInteger(limit) || limit < 1) throw invalid(`limit must be a whole number from 1, got "${limitText}"`, 'e.g. --limit 10');
  return limit < items.length ? { items: items.slice(0, limit), next: volumeId(items[limit - 1]!.name) } : { items };
}

/**
 * The project in the URL is the token's; an admin may name another, as with ?project= in kumo's
 * API. Every answer names the microversion it was given in (cinderclient reads it).
 */
function projectFromUrl(app: FastifyInstance, deps: OpenStackDeps): void {
  app.addHook('preHandler', async (req) => {
    const project = (req.params as { project?: string } | undefined)?.project;
    const actor = req.actor;
    if (project === undefined || !actor || project === actor.project) return;
    if (actor.role !== 'admin' || !projectExists(deps.ctx, project)) {
      throw notFound(`there is no project "${project}"`, `use the block-storage endpoint of the token's catalog (project "${actor.project}")`);
    }
    actor.project = project;
  });
  app.addHook('onSend', async (_req, reply) => { void reply.header('openstack-api-version', `volume ${CINDER_VERSION}`); });
}

export const volumeRoutes: FastifyPluginAsync<OpenStackDeps> = async (app, deps) => {
  installOsErrors(app, novaFault, deps.ctx.paths.home);
  guardOpenStack(app, deps);
  const volumes = (req: FastifyRequest) => new VolumeService(deps.ctx, req.actor!);
  const query = (req: FastifyRequest) => (req.query ?? {}) as Record<string, unknown>;

  projectFromUrl(app, deps);
  const byId = async (req: FastifyRequest, id: string): Promise<Volume> => {
    const found = (await volumes(req).list()).find((v) => volumeId(v.name) === id);
    if (!found) throw notFound(`Volume ${id} could not be found.`, 'see `openstack volume list`');
    return found;
  };
  const listing = async (req: FastifyRequest, render: (v: Volume) => object) => {
    const { project } = req.params as z.infer<typeof ProjectParams>;
    const { items, next } = page(await volumes(req).list(), query(req));
    const base = `${baseUrl(req)}${OPENSTACK_PATHS.volume}/v3/${project}${req.url.includes('/detail') ? '/volumes/detail' : '/volumes'}`;
    return {
      volumes: items.map(render),
      ...(next ? { volumes_links: [{ rel: 'next', href: `${base}?limit=${String(query(req).limit)}&marker=${next}` }] } : {}),
    };
  };

  app.get('/', role('public'), async (req, reply) => reply.code(300).send({ versions: [cinderV3(baseUrl(req))] }));
  app.get('/v3', role('public'), async (req) => ({ versions: [cinderV3(baseUrl(req))] }));

  app.get('/v3/:project/volumes', { ...role('reader'), schema: { params: ProjectParams } }, async (req) =>
    listing(req, (v) => volumeSummary(baseUrl(req), v)));
  app.get('/v3/:project/volumes/detail', { ...role('reader'), schema: { params: ProjectParams } }, async (req) =>
    listing(req, (v) => volumeDetail(deps.ctx, baseUrl(req), v)));
  app.get('/v3/:project/volumes/:id', { ...role('reader'), schema: { params: VolumeParams } }, async (req) => {
    const v = await byId(req, (req.params as z.infer<typeof VolumeParams>).id);
    return { volume: volumeDetail(deps.ctx, baseUrl(req), await volumes(req).get(v.name)) };
  });

  app.post('/v3/:project/volumes', { ...role('member'), schema: { params: ProjectParams, body: VolumeCreate } }, async (req, reply) => {
    const asked = (req.body as z.infer<typeof VolumeCreate>).volume;
    checkServed(asked);
    // kumo names every volume: one made without a name gets "volume-" and 8 random hex digits.
    const name = asked.name || `volume-${randomUUID().slice(0, 8)}`;
    const v = await volumes(req).create(name, Number(asked.size));
    deps.ops.resourceChanged('volume', v.name, 'created');
    return reply.code(202).send({ volume: volumeDetail(deps.ctx, baseUrl(req), v) });
  });

  app.delete('/v3/:project/volumes/:id', { ...role('member'), schema: { params: VolumeParams } }, async (req, reply) => {
    const v = await byId(req, (req.params as z.infer<typeof VolumeParams>).id);
    await volumes(req).delete(v.name);
    deps.ops.resourceChanged('volume', v.name, 'deleted');
    return reply.code(202).send();
  });

  app.get('/v3/:project/types', { ...role('reader'), schema: { params: ProjectParams } }, async () => ({ volume_types: [DEFAULT_TYPE] }));
  app.get('/v3/:project/types/:id', { ...role('reader'), schema: { params: TypeParams } }, async (req) => {
    const { id } = req.params as z.infer<typeof TypeParams>;
    if (id !== 'default' && id !== DEFAULT_TYPE.id && id !== DEFAULT_TYPE.name) throw notFound(`Volume type ${id} could not be found.`, `kumo has one volume type: ${DEFAULT_TYPE.name}`);
    return { volume_type: DEFAULT_TYPE };
  });
};
