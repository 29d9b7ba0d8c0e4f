import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ActorRequest, ApiDeps } from '../deps.js';
import { SnapshotService } from '../../service/snapshots.js';
import { errors, InstanceParams, NoContent, Snapshot, SnapshotCreate, SnapshotParams, SnapshotReverted, SnapshotRevert, optionalBody } from '../schemas.js';

const tags = ['snapshots'];

export const snapshotRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, { ctx, ops }) => {
  const svc = (req: ActorRequest) => new SnapshotService(ctx, req.actor);

  app.get('/instances/:instance/snapshots', {
    schema: { tags, operationId: 'listSnapshots', summary: 'an instance\'s snapshots, oldest first', params: InstanceParams, response: { 200: z.array(Snapshot), ...errors(404) } },
  }, async (req) => svc(req).list(req.params.instance));

  app.post('/instances/:instance/snapshots', {
    schema: {
      tags, operationId: 'createSnapshot', params: InstanceParams, body: optionalBody(SnapshotCreate), response: { 201: Snapshot, ...errors(400, 404, 409) },
      summary: 'take an internal snapshot: the disks, and the memory while it runs',
    },
  }, async (req, reply) => {
    const s = await svc(req).create(req.params.instance, req.body?.name);
    ops.resourceChanged('snapshot', `${s.instance}/${s.name}`, 'created');
    return reply.code(201).send(s);
  });

  app.post('/instances/:instance/snapshots/:name/revert', {
    schema: {
      tags, operationId: 'revertSnapshot', params: SnapshotParams, body: optionalBody(SnapshotRevert), response: { 200: SnapshotReverted, ...errors(400, 404, 409) },
      summary: 'go back to a snapshot; the instance ends in the snapshot\'s state unless "to" says otherwise',
    },
  }, async (req) => {
    const { instance, name } = req.params;
    const state = await svc(req).revert(instance, name, { ...(req.body?.to ? { to: req.body.to } : {}), force: req.body?.force ?? false });
    ops.resourceChanged('snapshot', `${instance}/${name}`, 'reverted');
    return { instance, snapshot: name, state };
  });

  app.delete('/instances/:instance/snapshots/:name', {
    schema: { tags, operationId: 'deleteSnapshot', summary: 'delete a snapshot', params: SnapshotParams, response: { 204: NoContent, ...errors(404) } },
  }, async (req, reply) => {
    await svc(req).delete(req.params.instance, req.params.name);
    ops.resourceChanged('snapshot', `${req.params.instance}/${req.params.name}`, 'deleted');
    return reply.code(204).send();
  });
};
