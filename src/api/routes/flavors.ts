import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ActorRequest, ApiDeps } from '../deps.js';
import { FlavorService } from '../../service/flavors.js';
import { errors, Flavor, FlavorCreate, NameParams, NoContent } from '../schemas.js';

const tags = ['flavors'];

export const flavorRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, { ctx, ops }) => {
  const svc = (req: ActorRequest) => new FlavorService(ctx, req.actor);

  app.get('/flavors', {
    schema: { tags, operationId: 'listFlavors', summary: 'instance sizes (vCPUs, RAM, disk)', response: { 200: z.array(Flavor), ...errors() } },
  }, async (req) => svc(req).list());

  app.get('/flavors/:name', {
    schema: { tags, operationId: 'getFlavor', summary: 'one flavor', params: NameParams, response: { 200: Flavor, ...errors(404) } },
  }, async (req) => svc(req).get(req.params.name));

  app.post('/flavors', {
    schema: { tags, operationId: 'createFlavor', summary: 'a flavor of your own', body: FlavorCreate, response: { 201: Flavor, ...errors(400, 409) } },
  }, async (req, reply) => {
    const b = req.body;
    const f = svc(req).create(b.name, b.vcpus, b.ramMiB, b.diskGiB);
    ops.resourceChanged('flavor', f.name, 'created');
    return reply.code(201).send(f);
  });

  app.delete('/flavors/:name', {
    schema: { tags, operationId: 'deleteFlavor', summary: 'delete a flavor of the project (not a built-in one)', params: NameParams, response: { 204: NoContent, ...errors(400, 403, 404) } },
  }, async (req, reply) => {
    svc(req).delete(req.params.name);
    ops.resourceChanged('flavor', req.params.name, 'deleted');
    return reply.code(204).send();
  });
};
