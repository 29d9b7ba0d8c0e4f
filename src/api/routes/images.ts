import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ActorRequest, ApiDeps } from '../deps.js';
import { ImageService } from '../../service/images.js';
import { Accepted, errors, Image, ImageBuild, ImageImport, ImageUpdate, NameParams, NoContent } from '../schemas.js';
import { accepted, ownerOf } from './operations.js';

const tags = ['images'];

export const imageRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, { ctx, ops }) => {
  const svc = (req: ActorRequest) => new ImageService(ctx, req.actor);

  app.get('/images', {
    schema: { tags, operationId: 'listImages', summary: 'cloud images instances are made from', response: { 200: z.array(Image), ...errors() } },
  }, async (req) => svc(req).list());

  app.get('/images/:name', {
    schema: { tags, operationId: 'getImage', summary: 'one image', params: NameParams, response: { 200: Image, ...errors(404) } },
  }, async (req) => svc(req).get(req.params.name));

  app.post('/images/build', {
    schema: {
      tags, operationId: 'buildImage', body: ImageBuild, response: { 202: Accepted, ...errors(400) },
      summary: 'build an image from Debian packages (tiny: the busybox test image; debian-12: a Debian cloud image); an operation, its result is an ImageBuilt',
    },
  }, async (req, reply) => {
    const { recipe, name, sizeGiB, packages } = req.body;
    const op = ops.startFor(ownerOf(req), 'image.build', name ?? recipe, async (progress) => {
      const r = recipe === 'tiny' ? await svc(req).buildTiny(progress)
        : await svc(req).buildDebian({ recipe, ...(name ? { name } : {}), ...(sizeGiB ? { sizeGiB } : {}), ...(packages ? { packages } : {}), onProgress: progress });
      ops.resourceChanged('image', r.image.name, r.built ? 'built' : 'unchanged');
      return r;
    });
    return accepted(reply, op);
  });

  app.post('/images/import', {
    schema: {
      tags, operationId: 'importImage', body: ImageImport, response: { 202: Accepted, ...errors(400) },
      summary: 'add a cloud image from an http(s) URL (public addresses, or a mirror the site named), like `kumo image import`; an operation, its result is the Image. Files on the server: only `kumo image import` on the machine',
    },
  }, async (req, reply) => {
    const { name, source, ...opts } = req.body;
    // A server path, a kernel file or a forbidden address is a 400 now, before any operation.
    await svc(req).checkSource(source, opts, 'cloud');
    const op = ops.startFor(ownerOf(req), 'image.import', name, async (progress) => {
      progress('import');
      const image = await svc(req).import(name, source, opts, 'cloud');
      ops.resourceChanged('image', image.name, 'imported');
      return image;
    });
    return accepted(reply, op);
  });

  app.patch('/images/:name', {
    schema: {
      tags, operationId: 'updateImage', body: ImageUpdate, params: NameParams, response: { 200: Image, ...errors(400, 403, 404) },
      summary: 'change how instances of the image are known ready (`kumo image set --ready`); only the image\'s own project',
    },
  }, async (req) => {
    const image = svc(req).setReady(req.params.name, req.body.ready ?? undefined);
    ops.resourceChanged('image', image.name, 'updated');
    return image;
  });

  app.delete('/images/:name', {
    schema: { tags, operationId: 'deleteImage', summary: 'delete an image no instance uses', params: NameParams, response: { 204: NoContent, ...errors(403, 404, 409) } },
  }, async (req, reply) => {
    await svc(req).delete(req.params.name);
    ops.resourceChanged('image', req.params.name, 'deleted');
    return reply.code(204).send();
  });
};
