import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ActorRequest, ApiDeps } from '../deps.js';
import { ShareService } from '../../service/shares.js';
import { errors, NameParams, NoContent, Share, ShareCreate } from '../schemas.js';

const tags = ['shares'];

/** `kumo share`: folders served over NFS to instance networks by the storage host. */
export const shareRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, { ctx, ops }) => {
  const svc = (req: ActorRequest) => new ShareService(ctx, req.actor);

  app.get('/shares', {
    schema: { tags, operationId: 'listShares', summary: 'shares with their folder, networks and the mount command for guests', response: { 200: z.array(Share), ...errors() } },
  }, async (req) => svc(req).list());

  app.get('/shares/:name', {
    schema: { tags, operationId: 'getShare', summary: 'one share', params: NameParams, response: { 200: Share, ...errors(404) } },
  }, async (req) => svc(req).get(req.params.name));

  app.post('/shares', {
    schema: {
      tags, operationId: 'createShare', body: ShareCreate, response: { 201: Share, ...errors(400, 404, 409, 500, 503) },
      summary: 'serve a folder over NFSv4.1, mountable only from the named networks; the server restarts with the new exports (about a second)',
    },
  }, async (req, reply) => {
    const { name, networks, path, readOnly } = req.body;
    const s = await svc(req).create(name, { networks, ...(path ? { path } : {}), readOnly: readOnly ?? false });
    ops.resourceChanged('share', s.name, 'created');
    return reply.code(201).send(s);
  });

  app.delete('/shares/:name', {
    schema: { tags, operationId: 'deleteShare', summary: 'stop serving a share (its folder and files stay)', params: NameParams, response: { 204: NoContent, ...errors(404) } },
  }, async (req, reply) => {
    await svc(req).delete(req.params.name);
    ops.resourceChanged('share', req.params.name, 'deleted');
    return reply.code(204).send();
  });
};
