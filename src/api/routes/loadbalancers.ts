import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ActorRequest, ApiDeps } from '../deps.js';
import { LoadBalancerService } from '../../service/loadbalancers.js';
import { errors, LoadBalancer, LoadBalancerCreate, LoadBalancerInstances, NameParams, NoContent, WafEvent, WafLogQuery } from '../schemas.js';

const tags = ['loadbalancers'];

/** `kumo lb` and `kumo waf log`: HAProxy with health checks on an lb host, optionally behind the WAF. */
export const loadBalancerRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, { ctx, ops }) => {
  const svc = (req: ActorRequest) => new LoadBalancerService(ctx, req.actor);

  app.get('/loadbalancers', {
    schema: { tags, operationId: 'listLoadBalancers', summary: 'load balancers with their backends and health', response: { 200: z.array(LoadBalancer), ...errors() } },
  }, async (req) => svc(req).list());

  app.get('/loadbalancers/:name', {
    schema: { tags, operationId: 'getLoadBalancer', summary: 'one load balancer: frontend, daemons, backends with their last health check', params: NameParams, response: { 200: LoadBalancer, ...errors(404) } },
  }, async (req) => svc(req).get(req.params.name));

  app.post('/loadbalancers', {
    schema: {
      tags, operationId: 'createLoadBalancer', body: LoadBalancerCreate, response: { 201: LoadBalancer, ...errors(400, 404, 409, 500, 503) },
      summary: 'start HAProxy (and the WAF) on an lb host for instances on a network; answers when it runs',
    },
  }, async (req, reply) => {
    const { backendPort, waf, ...rest } = req.body;
    const lb = await svc(req).create({
      ...rest, ...(backendPort !== undefined ? { backendPort } : {}),
      ...(waf ? { waf: { enabled: waf.enabled, ...(waf.paranoia !== undefined ? { paranoia: waf.paranoia } : {}) } } : {}),
    });
    ops.resourceChanged('loadbalancer', lb.name, 'created');
    return reply.code(201).send(lb);
  });

  app.put('/loadbalancers/:name/instances', {
    schema: {
      tags, operationId: 'setLoadBalancerInstances', params: NameParams, body: LoadBalancerInstances, response: { 200: LoadBalancer, ...errors(400, 404) },
      summary: 'change the instances behind it (like `kumo lb set`); HAProxy reloads without dropping connections',
    },
  }, async (req) => {
    const lb = await svc(req).setInstances(req.params.name, req.body.instances);
    ops.resourceChanged('loadbalancer', lb.name, 'updated');
    return lb;
  });

  app.post('/loadbalancers/:name/sync', {
    schema: {
      tags, operationId: 'syncLoadBalancer', params: NameParams, response: { 200: LoadBalancer, ...errors(404, 500) },
      summary: 'make the lb host match kumo\'s record again: instance addresses, configuration, daemons',
    },
  }, async (req) => {
    const s = svc(req);
    await s.sync(req.params.name);
    ops.resourceChanged('loadbalancer', req.params.name, 'synced');
    return s.get(req.params.name);
  });

  app.delete('/loadbalancers/:name', {
    schema: { tags, operationId: 'deleteLoadBalancer', summary: 'stop its daemons and remove it', params: NameParams, response: { 204: NoContent, ...errors(404) } },
  }, async (req, reply) => {
    await svc(req).delete(req.params.name);
    ops.resourceChanged('loadbalancer', req.params.name, 'deleted');
    return reply.code(204).send();
  });

  app.get('/loadbalancers/:name/waf-log', {
    schema: {
      tags, operationId: 'getWafLog', params: NameParams, querystring: WafLogQuery, response: { 200: z.array(WafEvent), ...errors(400, 404) },
      summary: 'recent requests the web application firewall blocked (or flagged), with the rules that matched, like `kumo waf log`',
    },
  }, async (req) => svc(req).wafLog(req.params.name, req.query.limit ?? 50));
};
