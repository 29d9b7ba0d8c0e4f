import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ActorRequest, ApiDeps } from '../deps.js';
import { ProjectService } from '../../service/projects.js';
import { QUOTA_INFO, QUOTAS, type QuotaName } from '../../model/quotas.js';
import { errors, named, NameParams, NoContent, timestamp } from '../schemas.js';

const tags = ['projects'];

const cap = (q: QuotaName) => z.number().int().min(0).max(QUOTA_INFO[q].max).describe(`at most this many ${QUOTA_INFO[q].many}`);
const shape = <T extends z.ZodType>(each: (q: QuotaName) => T) => Object.fromEntries(QUOTAS.map((q) => [q, each(q)])) as Record<QuotaName, T>;

const Limits = named('QuotaLimits', z.strictObject(shape((q) => cap(q).optional())), 'caps; a quota left out has no cap');
const LimitsChange = named('QuotaChange', z.strictObject(shape((q) => cap(q).nullable().optional())),
  'new caps: a number sets one, null lifts it, a quota left out stays as it is');
const Use = z.object(shape(() => z.number().int())).describe('what the project uses now');
const Project = named('Project', z.object({ name: z.string(), limits: Limits, use: Use, createdAt: timestamp }));
const ProjectCreate = named('ProjectCreate', z.strictObject({ name: z.string().min(1).max(63).describe('the project\'s name'), limits: Limits.optional() }));
const ProjectUpdate = named('ProjectUpdate', z.strictObject({ limits: LimitsChange }));

/**
 * Projects and their quotas. Admin only: create, change, delete, and every project in the list.
 * Anyone else sees its own project (its use against its caps); another one is a 404.
 */
export const projectRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, { ctx }) => {
  const svc = (req: ActorRequest) => new ProjectService(ctx, req.actor);

  app.get('/projects', {
    schema: { tags, operationId: 'listProjects', summary: 'projects with use against caps (an admin: all; anyone else: its own)', response: { 200: z.array(Project), ...errors() } },
  }, async (req) => svc(req).list());

  app.get('/projects/:name', {
    schema: { tags, operationId: 'getProject', summary: 'one project: each quota\'s use and cap (its own project, or any for an admin)', params: NameParams, response: { 200: Project, ...errors(404) } },
  }, async (req) => svc(req).show(req.params.name));

  app.post('/projects', {
    schema: { tags, operationId: 'createProject', summary: 'make a project (admin)', body: ProjectCreate, response: { 201: Project, ...errors(400, 403, 409) } },
  }, async (req, reply) => reply.code(201).send(svc(req).create(req.body.name, req.body.limits ?? {})));

  app.patch('/projects/:name', {
    schema: { tags, operationId: 'updateProject', summary: 'change caps (admin); a cap below the use stops new creates only', params: NameParams, body: ProjectUpdate, response: { 200: Project, ...errors(400, 403, 404) } },
  }, async (req) => svc(req).set(req.params.name, req.body.limits));

  app.delete('/projects/:name', {
    schema: { tags, operationId: 'deleteProject', summary: 'delete an empty project (admin); refused while it holds anything', params: NameParams, response: { 204: NoContent, ...errors(403, 404, 409) } },
  }, async (req, reply) => {
    svc(req).delete(req.params.name);
    return reply.code(204).send();
  });
};
