import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiDeps } from '../server.js';
import { HostService } from '../../service/host.js';
import { errors, Host, NameParams } from '../schemas.js';

const tags = ['hosts'];

export const hostRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, { ctx }) => {
  const svc = () => new HostService(ctx);

  app.get('/hosts', {
    schema: { tags, operationId: 'listHosts', summary: 'hosts with capacity, what kumo gave out, and whether they answer', response: { 200: z.array(Host), ...errors() } },
  }, async () => svc().list());

  app.get('/hosts/:name', {
    schema: { tags, operationId: 'getHost', summary: 'one host', params: NameParams, response: { 200: Host, ...errors(404) } },
  }, async (req) => svc().get(req.params.name));
};
