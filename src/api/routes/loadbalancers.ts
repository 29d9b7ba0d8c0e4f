import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiDeps } from '../server.js';
import { LoadBalancerService } from '../../service/loadbalancers.js';
import { errors, named, timestamp } from '../schemas.js';

const tags = ['loadbalancers'];

export const LoadBalancer = named('LoadBalancer', z.object({
  name: z.string(),
  host: z.string().describe('the host (role lb) its HAProxy and WAF run on'),
  frontend: z.object({ address: z.string(), port: z.number().int() }).describe('the public address and port clients use'),
  instances: z.array(z.string()),
  network: z.string(),
  backendPort: z.number().int(),
  internalPort: z.number().int(),
  waf: z.object({ enabled: z.boolean(), paranoia: z.number().int() }).nullable(),
  createdAt: timestamp,
  running: z.boolean(),
  wafRunning: z.boolean().optional(),
  backends: z.array(z.object({ instance: z.string(), address: z.string().optional(), status: z.string(), check: z.string().optional() })),
}));

/** Read-only for now: the dashboard's topology draws load balancers in front of their instances. */
export const loadBalancerRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, { ctx }) => {
  app.get('/loadbalancers', {
    schema: { tags, operationId: 'listLoadBalancers', summary: 'load balancers with their backends and health', response: { 200: z.array(LoadBalancer), ...errors() } },
  }, async () => new LoadBalancerService(ctx).list());
};
