import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ActorRequest, ApiDeps } from '../deps.js';
import { DETACH_TIMEOUT_MS, VolumeService } from '../../service/volumes.js';
import { errors, NameParams, NoContent, Volume, VolumeAttach, VolumeAttached, VolumeCreate, VolumeDetach, VolumeDetached, VolumeResize, VolumeResized, optionalBody } from '../schemas.js';

const tags = ['volumes'];

export const volumeRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, { ctx, ops }) => {
  const svc = (req: ActorRequest) => new VolumeService(ctx, req.actor);

  app.get('/volumes', {
    schema: { tags, operationId: 'listVolumes', summary: 'data volumes and where they are attached', response: { 200: z.array(Volume), ...errors() } },
  }, async (req) => svc(req).list());

  app.get('/volumes/:name', {
    schema: { tags, operationId: 'getVolume', summary: 'one volume: size, file, attachment, drift', params: NameParams, response: { 200: Volume, ...errors(404) } },
  }, async (req) => svc(req).get(req.params.name));

  app.post('/volumes', {
    schema: { tags, operationId: 'createVolume', summary: 'an empty qcow2 volume', body: VolumeCreate, response: { 201: Volume, ...errors(400, 409) } },
  }, async (req, reply) => {
    const v = await svc(req).create(req.body.name, req.body.sizeGiB);
    ops.resourceChanged('volume', v.name, 'created');
    return reply.code(201).send(v);
  });

  app.post('/volumes/:name/attach', {
    schema: {
      tags, operationId: 'attachVolume', params: NameParams, body: VolumeAttach, response: { 200: VolumeAttached, ...errors(400, 404, 409) },
      summary: 'attach to a running instance (hot-plug) or a stopped one (seen on its next start)',
    },
  }, async (req) => {
    const r = await svc(req).attach(req.params.name, req.body.instance);
    ops.resourceChanged('volume', req.params.name, 'attached');
    return r;
  });

  app.post('/volumes/:name/detach', {
    schema: {
      tags, operationId: 'detachVolume', params: NameParams, body: optionalBody(VolumeDetach), response: { 200: VolumeDetached, ...errors(400, 404, 504) },
      summary: 'detach from its instance; answers once a running guest has released it',
    },
  }, async (req) => {
    const s = svc(req);
    const instance = await s.detach(req.params.name, (req.body?.timeoutSeconds ?? DETACH_TIMEOUT_MS / 1000) * 1000);
    ops.resourceChanged('volume', req.params.name, 'detached');
    return { volume: await s.get(req.params.name), instance };
  });

  app.delete('/volumes/:name', {
    schema: { tags, operationId: 'deleteVolume', summary: 'delete a detached volume and its data', params: NameParams, response: { 204: NoContent, ...errors(404, 409) } },
  }, async (req, reply) => {
    await svc(req).delete(req.params.name);
    ops.resourceChanged('volume', req.params.name, 'deleted');
    return reply.code(204).send();
  });

  app.post('/volumes/:name/resize', {
    schema: {
      tags, operationId: 'resizeVolume', params: NameParams, body: VolumeResize, response: { 200: VolumeResized, ...errors(400, 404) },
      summary: 'grow a volume, also while attached to a running instance (the guest then sees the new size at once)',
    },
  }, async (req) => {
    const r = await svc(req).resize(req.params.name, req.body.sizeGiB);
    ops.resourceChanged('volume', req.params.name, 'resized');
    return r;
  });
};
