import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiDeps } from '../server.js';
import { ImageService } from '../../service/images.js';
import { Accepted, errors, Image, ImageBuild, NameParams, NoContent } from '../schemas.js';
import { accepted } from './operations.js';

const tags = ['images'];

export const imageRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, { ctx, ops }) => {
  const svc = () => new ImageService(ctx);

  app.get('/images', {
    schema: { tags, operationId: 'listImages', summary: 'cloud images instances are made from', response: { 200: z.array(Image), ...errors() } },
  }, async () => svc().list());

  app.get('/images/:name', {
    schema: { tags, operationId: 'getImage', summary: 'one image', params: NameParams, response: { 200: Image, ...errors(404) } },
  }, async (req) => svc().get(req.params.name));

  app.post('/images/build', {
    schema: {
      tags, operationId: 'buildImage', body: ImageBuild, response: { 202: Accepted, ...errors(400) },
      summary: 'build an image from Debian packages (tiny: the busybox test image); an operation, its result is an ImageBuilt',
    },
  }, async (req, reply) => {
    const op = ops.start('image.build', req.body.recipe, async (progress) => {
      const r = await svc().buildTiny(progress);
      ops.resourceChanged('image', r.image.name, r.built ? 'built' : 'unchanged');
      return r;
    });
    return accepted(reply, op);
  });

  app.delete('/images/:name', {
    schema: { tags, operationId: 'deleteImage', summary: 'delete an image no instance uses', params: NameParams, response: { 204: NoContent, ...errors(404, 409) } },
  }, async (req, reply) => {
    await svc().delete(req.params.name);
    ops.resourceChanged('image', req.params.name, 'deleted');
    return reply.code(204).send();
  });
};
