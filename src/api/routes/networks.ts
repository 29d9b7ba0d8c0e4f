import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ActorRequest, ApiDeps } from '../deps.js';
import { NetworkService } from '../../service/networks.js';
import { errors, NameParams, Network, NetworkAutostart, NetworkCreate, NetworkDefine, NoContent, Text } from '../schemas.js';

const tags = ['networks'];

export const networkRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, { ctx, ops }) => {
  const svc = (req: ActorRequest) => new NetworkService(ctx, ctx.virsh, req.actor);

  app.get('/networks', {
    schema: { tags, operationId: 'listNetworks', summary: 'like virsh net-list --all, plus mode, subnet, bridge and users', response: { 200: z.array(Network), ...errors() } },
  }, async (req) => svc(req).list());

  app.get('/networks/:name', {
    schema: { tags, operationId: 'getNetwork', summary: 'one network', params: NameParams, response: { 200: Network, ...errors(404) } },
  }, async (req) => svc(req).get(req.params.name));

  app.post('/networks', {
    schema: {
      tags, operationId: 'createNetwork', body: NetworkCreate, response: { 201: Network, ...errors(400, 409, 503) },
      summary: 'define and start a network (nat, isolated, host bridge or Open vSwitch), checked against every other first',
    },
  }, async (req, reply) => {
    const n = await svc(req).create(req.body);
    ops.resourceChanged('network', n.name, 'created');
    return reply.code(201).send(n);
  });

  app.delete('/networks/:name', {
    schema: { tags, operationId: 'deleteNetwork', summary: 'delete a network no instance uses', params: NameParams, response: { 204: NoContent, ...errors(403, 404, 409) } },
  }, async (req, reply) => {
    await svc(req).delete(req.params.name);
    ops.resourceChanged('network', req.params.name, 'deleted');
    return reply.code(204).send();
  });

  app.post('/networks/:name/start', {
    schema: { tags, operationId: 'startNetwork', summary: 'start a defined network', params: NameParams, response: { 200: Network, ...errors(404) } },
  }, async (req) => {
    await svc(req).start(req.params.name);
    ops.resourceChanged('network', req.params.name, 'started');
    return svc(req).get(req.params.name);
  });

  app.post('/networks/:name/stop', {
    schema: { tags, operationId: 'stopNetwork', summary: 'stop a network no instance uses (it stays defined)', params: NameParams, response: { 200: Network, ...errors(403, 404, 409) } },
  }, async (req) => {
    await svc(req).stop(req.params.name);
    ops.resourceChanged('network', req.params.name, 'stopped');
    return svc(req).get(req.params.name);
  });

  app.post('/networks/define', {
    schema: {
      tags, operationId: 'defineNetwork', body: NetworkDefine, response: { 201: Network, ...errors(400, 409) },
      summary: 'define a network from libvirt XML (checked against libvirt\'s schema first), like `kumo network define`; start it with /start',
    },
  }, async (req, reply) => {
    const n = await svc(req).define(req.body.xml);
    ops.resourceChanged('network', n.name, 'defined');
    return reply.code(201).send(n);
  });

  app.post('/networks/:name/autostart', {
    schema: { tags, operationId: 'autostartNetwork', summary: 'whether libvirtd starts it by itself', params: NameParams, body: NetworkAutostart, response: { 200: Network, ...errors(400, 403, 404) } },
  }, async (req) => {
    await svc(req).autostart(req.params.name, req.body.enabled);
    ops.resourceChanged('network', req.params.name, 'autostart');
    return svc(req).get(req.params.name);
  });

  app.get('/networks/:name/xml', {
    schema: { tags, operationId: 'getNetworkXml', summary: 'the libvirt network XML, like virsh net-dumpxml', params: NameParams, response: { 200: Text('the network XML', 'application/xml'), ...errors(404) } },
  }, async (req, reply) => reply.type('application/xml; charset=utf-8').send(await svc(req).xml(req.params.name)));
};
