import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ApiDeps } from '../deps.js';
import { DatacenterService, type Change } from '../../service/datacenter/engine.js';
import { KumoError } from '../../model/errors.js';
import { Accepted, errors, Plan, PlanRequest } from '../schemas.js';
import { accepted, ownerOf } from './operations.js';

const tags = ['datacenter'];
const DEFAULT_FILENAME = 'datacenter.yaml';

/** An operation's step for a change: what `kumo apply` prints per line. */
const step = (c: Change) => `${c.action} ${c.kind} ${c.name}`;

/**
 * `kumo plan|apply|destroy FILE` with the file's text in the body. The file is read (and, for
 * apply, planned) before answering, so a bad file is a 400 naming its line and column, and only
 * the work itself runs in the operation.
 */
export const planRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, { ctx, ops }) => {
  const svc = () => new DatacenterService(ctx);

  /** One apply or destroy per datacenter at a time: two would race over the same resources. */
  const checkIdle = (datacenter: string) => {
    const busy = ops.list().find((o) => o.state === 'running' && o.kind.startsWith('datacenter.') && o.target === datacenter);
    if (busy) throw new KumoError('IN_USE', `datacenter "${datacenter}" is busy: operation ${busy.id} (${busy.kind}) runs`, `wait for it: GET /api/v1/operations/${busy.id}`);
  };

  app.post('/plans', {
    schema: {
      tags, operationId: 'planDatacenter', body: PlanRequest, response: { 200: Plan, ...errors(400, 409, 502) },
      summary: 'what apply would change for a datacenter file (create / update / start / recreate / delete, per resource), like `kumo plan FILE`',
    },
  }, async (req) => {
    const s = svc();
    const dc = s.parse(req.body.file, req.body.filename ?? DEFAULT_FILENAME);
    return { datacenter: dc.name, changes: await s.plan(dc) };
  });

  app.post('/plans/apply', {
    schema: {
      tags, operationId: 'applyDatacenter', body: PlanRequest, response: { 202: Accepted, ...errors(400, 409, 502) },
      summary: 'make the datacenter match the file, like `kumo apply FILE`: checked and planned at once, then an operation (a step per change) whose result is the changes made',
    },
  }, async (req, reply) => {
    const s = svc();
    const dc = s.parse(req.body.file, req.body.filename ?? DEFAULT_FILENAME);
    checkIdle(dc.name);
    // Refusals (another datacenter's resource, a lab of another shape) answer now, not as a failed operation.
    await s.plan(dc);
    const op = ops.startFor(ownerOf(req), 'datacenter.apply', dc.name, async (progress) => {
      const changes = await s.apply(dc, (c) => progress(step(c)));
      ops.resourceChanged('datacenter', dc.name, 'applied');
      return { datacenter: dc.name, changes };
    });
    return accepted(reply, op);
  });

  app.post('/plans/destroy', {
    schema: {
      tags, operationId: 'destroyDatacenter', body: PlanRequest, response: { 202: Accepted, ...errors(400, 409) },
      summary: 'remove what applying the file made, like `kumo destroy FILE`: an operation (a step per resource) whose result is the changes made',
    },
  }, async (req, reply) => {
    const s = svc();
    const dc = s.parse(req.body.file, req.body.filename ?? DEFAULT_FILENAME);
    checkIdle(dc.name);
    const op = ops.startFor(ownerOf(req), 'datacenter.destroy', dc.name, async (progress) => {
      const changes = await s.destroy(dc, (c) => progress(step(c)));
      ops.resourceChanged('datacenter', dc.name, 'destroyed');
      return { datacenter: dc.name, changes };
    });
    return accepted(reply, op);
  });
};
