import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ActorRequest, ApiDeps } from '../deps.js';
import { InstanceService } from '../../service/instances.js';
import { MigrationService } from '../../service/migration.js';
import { HostService } from '../../service/host.js';
import type { Instance as InstanceView } from '../../model/types.js';
import {
  Accepted, errors, Instance, InstanceAction, InstanceCreate, InstanceDeleted, InstanceMigrate, InstanceResize, InstanceResized,
  InstanceStarted, InstanceStop, InstanceStopped, NameParams, optionalBody, Text,
} from '../schemas.js';
import { accepted, ownerOf } from './operations.js';
import { parseReadyCheck } from '../../model/readiness.js';

const tags = ['instances'];

/** The root password's hash stays on the server: it could be cracked offline. */
export function renderInstance({ passwordHash, ...rest }: InstanceView): z.output<typeof Instance> {
  return { ...rest, ha: rest.ha === true, passwordSet: passwordHash !== undefined };
}

const InstanceList = z.array(Instance);

/**
 * The list's body, checked against its response schema and serialised exactly as the route's
 * serializer would (zod's encode, then JSON), once per build of the kept list (service/
 * instance-list.ts) instead of once per request: the guarantee that every body sent matches
 * the schema holds, since a body that does not is never made.
 */
export function renderInstanceList(views: InstanceView[]): Buffer {
  const checked = z.safeEncode(InstanceList, views.map(renderInstance));
  if (!checked.success) throw new Error(`the instance list does not match its response schema: ${checked.error.message}`);
  return Buffer.from(JSON.stringify(checked.data)); // bytes: sent as they are, not encoded again per request
}

export const instanceRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, { ctx, ops }) => {
  const svc = (req: ActorRequest) => new InstanceService(ctx, req.actor);

  app.get('/instances', {
    schema: { tags, operationId: 'listInstances', summary: 'every instance, with libvirt\'s state and DHCP addresses', response: { 200: InstanceList, ...errors() } },
  }, async (req, reply) => reply.type('application/json; charset=utf-8').send(await svc(req).listRendered(renderInstanceList)));

  app.get('/instances/:name', {
    schema: { tags, operationId: 'getInstance', summary: 'one instance: NICs, volumes, VNC address, drift', params: NameParams, response: { 200: Instance, ...errors(404) } },
  }, async (req) => {
    const { readiness, ...inst } = await svc(req).show(req.params.name);
    return { ...renderInstance(inst), readiness };
  });

  app.post('/instances', {
    schema: {
      tags, operationId: 'createInstance', body: InstanceCreate, response: { 202: Accepted, ...errors(400, 404, 409) },
      summary: 'create and start an instance: checked at once (400/404/409), then made by an operation whose result is the Instance',
    },
  }, async (req, reply) => {
    const { wait, waitFor, ...request } = req.body;
    const s = svc(req);
    // Everything that can be refused is refused now, as an answer, not as a failed operation.
    const check = waitFor !== undefined ? parseReadyCheck(waitFor, 'waitFor') : undefined;
    await s.validate(request);
    const op = ops.startFor(ownerOf(req), 'instance.create', request.name, async (progress) => {
      await s.create(request, progress);
      if (wait || check) {
        progress('boot');
        await s.waitReady(request.name, undefined, check ? { check } : {});
      }
      return renderInstance(await s.get(request.name, { ask: true }));
    });
    return accepted(reply, op);
  });

  app.delete('/instances/:name', {
    schema: {
      tags, operationId: 'deleteInstance', params: NameParams, response: { 200: InstanceDeleted, ...errors(404) },
      summary: 'remove the instance with its disks and seed; attached volumes are kept, detached',
    },
  }, async (req) => {
    const r = await svc(req).delete(req.params.name);
    ops.resourceChanged('instance', req.params.name, 'deleted');
    return r;
  });

  app.get('/instances/:name/xml', {
    schema: { tags, operationId: 'getInstanceXml', summary: 'the libvirt domain XML, like virsh dumpxml', params: NameParams, response: { 200: Text('the domain XML', 'application/xml'), ...errors(404) } },
  }, async (req, reply) => reply.type('application/xml; charset=utf-8').send(await svc(req).xml(req.params.name)));

  app.get('/instances/:name/console-log', {
    schema: { tags, operationId: 'getConsoleLog', summary: 'what the serial console printed so far, like `kumo instance console --log`', params: NameParams, response: { 200: Text('the console log'), ...errors(404) } },
  }, async (req, reply) => reply.type('text/plain; charset=utf-8').send(await svc(req).readConsoleLog(req.params.name)));

  await app.register(instanceActionRoutes, { ctx, ops });
};

/** What is done to an instance: start, stop, reboot, destroy (power), migrate, resize. */
const instanceActionRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, { ctx, ops }) => {
  const svc = (req: ActorRequest) => new InstanceService(ctx, req.actor);
  // After kumo's own change: asked of libvirt (the change's event may trail its answer).
  const view = async (req: ActorRequest, name: string) => renderInstance(await svc(req).get(name, { ask: true }));

  app.post('/instances/:name/start', {
    schema: { tags, operationId: 'startInstance', summary: 'start a stopped instance', params: NameParams, response: { 200: InstanceStarted, ...errors(404) } },
  }, async (req) => {
    const started = await svc(req).start(req.params.name);
    ops.resourceChanged('instance', req.params.name, 'started');
    return { started, instance: await view(req, req.params.name) };
  });

  app.post('/instances/:name/stop', {
    schema: {
      tags, operationId: 'stopInstance', params: NameParams, body: optionalBody(InstanceStop), response: { 200: InstanceStopped, ...errors(400, 404) },
      summary: 'shut down cleanly (ACPI), forcing it off after the grace period; answers when it is off',
    },
  }, async (req) => {
    const r = await svc(req).stop(req.params.name, (req.body?.timeoutSeconds ?? 60) * 1000);
    ops.resourceChanged('instance', req.params.name, 'stopped');
    return { forced: r.forced, instance: await view(req, req.params.name) };
  });

  app.post('/instances/:name/reboot', {
    schema: { tags, operationId: 'rebootInstance', summary: 'reboot a running instance', params: NameParams, response: { 200: InstanceAction, ...errors(400, 404) } },
  }, async (req) => {
    await svc(req).reboot(req.params.name);
    ops.resourceChanged('instance', req.params.name, 'rebooted');
    return { instance: await view(req, req.params.name) };
  });

  app.post('/instances/:name/destroy', {
    schema: { tags, operationId: 'destroyInstance', summary: 'force off, like virsh destroy (the instance stays)', params: NameParams, response: { 200: InstanceAction, ...errors(404) } },
  }, async (req) => {
    await svc(req).destroy(req.params.name);
    ops.resourceChanged('instance', req.params.name, 'destroyed');
    return { instance: await view(req, req.params.name) };
  });

  app.post('/instances/:name/migrate', {
    schema: {
      tags, operationId: 'migrateInstance', params: NameParams, body: InstanceMigrate, response: { 202: Accepted, ...errors(400, 404) },
      summary: 'live-migrate a running instance to another host: an operation whose result has the duration and QEMU\'s downtime',
    },
  }, async (req, reply) => {
    const { name } = req.params;
    const { to, unsafe, encrypted } = req.body;
    // Unknown names are a 404 now; everything libvirt decides shows in the operation.
    const from = (await svc(req).get(name)).host;
    await new HostService(ctx).get(to);
    // Missing certificates are a 400 now, not a failed operation.
    if (encrypted) await new MigrationService(ctx).checkTls(from, to);
    const op = ops.startFor(ownerOf(req), 'instance.migrate', name, async (progress) => {
      progress('migrate');
      const r = await new MigrationService(ctx).migrate(name, to, { unsafe: unsafe ?? false, encrypted: encrypted ?? false });
      return { from: r.from, to: r.to, durationMs: r.durationMs, ...(r.downtimeMs !== undefined ? { downtimeMs: r.downtimeMs } : {}), instance: await view(req, name) };
    });
    return accepted(reply, op);
  });

  app.post('/instances/:name/resize', {
    schema: {
      tags, operationId: 'resizeInstance', params: NameParams, body: InstanceResize, response: { 200: InstanceResized, ...errors(400, 404, 409) },
      summary: 'grow the root disk of a stopped instance; the guest grows its filesystem when it starts',
    },
  }, async (req) => {
    const r = await svc(req).resize(req.params.name, req.body.diskGiB);
    ops.resourceChanged('instance', req.params.name, 'resized');
    return r;
  });
};
