import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiDeps } from '../deps.js';
import { HostService, type HostView } from '../../service/host.js';
import { hostHaView } from '../../service/ha/hosts.js';
import { MigrationService } from '../../service/migration.js';
import { KumoError } from '../../model/errors.js';
import { Accepted, errors, Host, HostAdd, HostEvacuate, HostInfo, NameParams, NoContent, optionalBody } from '../schemas.js';
import { accepted, ownerOf } from './operations.js';

const tags = ['hosts'];

export const hostRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, { ctx, ops }) => {
  const svc = () => new HostService(ctx);
  const withHa = (h: HostView) => ({ ...h, ...hostHaView(ctx, h.name) });

  app.get('/hosts', {
    schema: { tags, operationId: 'listHosts', summary: 'hosts with capacity, what kumo gave out, and whether they answer', response: { 200: z.array(Host), ...errors() } },
  }, async () => (await svc().list()).map(withHa));

  app.get('/hosts/:name', {
    schema: { tags, operationId: 'getHost', summary: 'one host', params: NameParams, response: { 200: Host, ...errors(404) } },
  }, async (req) => withHa(await svc().get(req.params.name)));

  app.get('/info', {
    schema: { tags, operationId: 'hostInfo', summary: 'this server\'s machine: acceleration, libvirt/QEMU versions, CPUs, memory, missing tools (like `kumo host info`)', response: { 200: HostInfo, ...errors() } },
  }, async () => svc().info());

  app.post('/hosts', {
    schema: {
      tags, operationId: 'addHost', body: HostAdd, response: { 201: Host, ...errors(400, 409, 502) },
      summary: 'register a hypervisor by its libvirt URI, or a storage/lb/edge node by its shell; it must answer now',
    },
  }, async (req, reply) => {
    const h = await svc().add(req.body);
    ops.resourceChanged('host', h.name, 'added');
    return reply.code(201).send(h);
  });

  app.delete('/hosts/:name', {
    schema: { tags, operationId: 'removeHost', summary: 'forget a host that has no instances', params: NameParams, response: { 204: NoContent, ...errors(404, 409) } },
  }, async (req, reply) => {
    svc().remove(req.params.name);
    ops.resourceChanged('host', req.params.name, 'removed');
    return reply.code(204).send();
  });

  app.post('/hosts/:name/evacuate', {
    schema: {
      tags, operationId: 'evacuateHost', params: NameParams, body: optionalBody(HostEvacuate), response: { 202: Accepted, ...errors(400, 404) },
      summary: 'live-migrate every instance off a host (maintenance): an operation whose result lists where each went, or why not',
    },
  }, async (req, reply) => {
    const { name } = req.params;
    await svc().get(name); // an unknown host is a 404 now
    const opts = { parallel: req.body?.parallel ?? 2, ...(req.body?.unsafe ? { unsafe: true } : {}), ...(req.body?.encrypted ? { encrypted: true } : {}) };
    const op = ops.startFor(ownerOf(req), 'host.evacuate', name, async (progress) => {
      progress('migrate');
      const moved = await new MigrationService(ctx).evacuate(name, opts);
      for (const m of moved) if (m.to) ops.resourceChanged('instance', m.name, 'migrated');
      // As `kumo host evacuate`: the operation fails when anything stayed, naming what and why.
      const stayed = moved.filter((m) => m.error);
      if (stayed.length) throw new KumoError('COMMAND_FAILED', `some instances are still on ${name}: ${stayed.map((m) => `${m.name} (${m.error})`).join('; ')}`, 'fix the cause and evacuate again');
      return { moved };
    });
    return accepted(reply, op);
  });
};
