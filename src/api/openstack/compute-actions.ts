import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { invalid, KumoError, notFound } from '../../model/errors.js';
import type { Instance } from '../../model/types.js';
import { DETACH_TIMEOUT_MS, VolumeService } from '../../service/volumes.js';
import { ownerOf } from '../routes/operations.js';
import { osUuid, role, type OpenStackDeps } from './common.js';
import { novaState } from './compute-render.js';
import { actorOf, ServerFinder } from './compute-find.js';

/**
 * What is done to a Nova server: delete (204; the server stays visible with task_state
 * "deleting" until it is gone), the actions os-start, os-stop and reboot (202; each runs as a
 * kumo operation the server shows as its task), os-getConsoleOutput, and its volume attachments.
 */

const IdParams = z.object({ id: z.string() });
const AttachmentParams = z.object({ id: z.string(), volumeId: z.string() });

const ServerAction = z.looseObject({
  'os-start': z.unknown().optional(),
  'os-stop': z.unknown().optional(),
  reboot: z.looseObject({ type: z.enum(['SOFT', 'HARD', 'soft', 'hard']) }).optional(),
  'os-getConsoleOutput': z.looseObject({ length: z.union([z.number().int(), z.string().regex(/^-?\d+$/), z.null()]).optional() }).optional(),
});
const SERVED_ACTIONS = ['os-start', 'os-stop', 'reboot', 'os-getConsoleOutput'];

const AttachRequest = z.looseObject({
  volumeAttachment: z.looseObject({ volumeId: z.string().min(1), device: z.string().nullable().optional() }),
});

/** Nova's 409: the server's state does not allow the action. */
const conflict = (action: string, id: string, state: string) =>
  new KumoError('IN_USE', `Cannot '${action}' instance ${id} while it is in ${state}`, state.startsWith('task_state')
    ? 'wait for the server\'s current task to end (openstack server show: OS-EXT-STS:task_state)'
    : 'see its status (openstack server show): start a SHUTOFF server, stop or reboot an ACTIVE one');

/** The instance behind a server that exists in kumo (not a create still queued, nor a failed one), with no task running. */
async function idleInstance(finder: ServerFinder, req: FastifyRequest, id: string, action: string): Promise<Instance> {
  const found = await finder.find(req, id);
  if (!found.inst) throw conflict(action, id, `vm_state ${found.op.state === 'failed' ? 'error' : 'building'}`);
  const task = finder.runningTask(req, found.inst.name);
  if (task) throw conflict(action, id, `task_state ${novaState(found.inst.state, task.kind).task_state ?? task.kind}`);
  return found.inst;
}

function deleteRoute(app: FastifyInstance, deps: OpenStackDeps, finder: ServerFinder): void {
  app.delete('/v2.1/servers/:id', { ...role('member'), schema: { params: IdParams } }, async (req, reply) => {
    const { id } = req.params as { id: string };
    const found = await finder.find(req, id);
    finder.dismiss(id);
    // A failed create left nothing: deleting it only hides it.
    if (found.op?.state === 'failed') return reply.code(204).send();
    const { name } = ServerFinder.idName(found);
    const running = finder.runningTask(req, name);
    if (running?.kind === 'instance.delete') return reply.code(204).send();
    const s = finder.instances(req);
    deps.ops.start('instance.delete', name, async () => {
      // A server still building is deleted once its create has ended, either way.
      if (running?.kind === 'instance.create') await deps.ops.wait(running.id);
      const record = deps.ctx.instances.byUuid(id);
      if (!record) return { detachedVolumes: [] };
      const r = await s.delete(record.name);
      deps.ops.resourceChanged('instance', record.name, 'deleted');
      return r;
    }, undefined, ownerOf(req));
    return reply.code(204).send();
  });
}

/** The power actions: checked against the state now (409 as Nova), then done by an operation. */
function powerAction(deps: OpenStackDeps, finder: ServerFinder, req: FastifyRequest, inst: Instance, action: string, hard: boolean): void {
  const s = finder.instances(req);
  const { name, uuid, state } = inst;
  const vm = `vm_state ${novaState(state).vm_state}`;
  const run = (kind: string, work: () => Promise<unknown>, change: string) => {
    deps.ops.start(kind, name, async () => {
      await work();
      deps.ops.resourceChanged('instance', name, change);
      return { instance: name };
    }, undefined, ownerOf(req));
  };
  if (action === 'os-start') {
    if (state !== 'shut off' && state !== 'crashed') throw conflict('start', uuid, vm);
    return run('instance.start', () => s.start(name), 'started');
  }
  if (action === 'os-stop') {
    if (state === 'shut off' || state === 'missing' || state === 'unknown') throw conflict('stop', uuid, vm);
    return run('instance.stop', () => s.stop(name), 'stopped');
  }
  if (state !== 'running' && !(hard && state !== 'missing' && state !== 'unknown')) throw conflict('reboot', uuid, vm);
  return hard
    ? run('instance.reboot-hard', async () => { await s.destroy(name); await s.start(name); }, 'rebooted')
    : run('instance.reboot', () => s.reboot(name), 'rebooted');
}

function actionRoute(app: FastifyInstance, deps: OpenStackDeps, finder: ServerFinder): void {
  app.post('/v2.1/servers/:id/action', { ...role('member'), schema: { params: IdParams, body: ServerAction } }, async (req, reply) => {
    const { id } = req.params as { id: string };
    const body = req.body as z.infer<typeof ServerAction>;
    const keys = Object.keys(body);
    const action = keys[0];
    if (keys.length !== 1 || action === undefined) throw invalid(`an action body has one key, the action; got ${keys.length ? keys.join(', ') : 'none'}`, `send e.g. {"os-stop": null}`);
    if (!SERVED_ACTIONS.includes(action)) throw invalid(`the server action "${action}" is not served by kumo`, `kumo serves ${SERVED_ACTIONS.join(', ')}`);
    if (action === 'os-getConsoleOutput') {
      const found = await finder.find(req, id);
      if (!found.inst) return { output: '' };
      const text = await finder.instances(req).readConsoleLog(found.inst.name);
      const length = Number(body['os-getConsoleOutput']?.length ?? -1);
      const lines = text.split('\n');
      if (lines.at(-1) === '') lines.pop();
      return { output: length >= 0 ? lines.slice(-length || lines.length).join('\n') : text };
    }
    const inst = await idleInstance(finder, req, id, action.replace(/^os-/, ''));
    powerAction(deps, finder, req, inst, action, body.reboot?.type.toUpperCase() === 'HARD');
    return reply.code(202).send();
  });
}

/** A volume attachment as Nova 2.1 shows it: its id is the volume's. */
const attachment = (serverId: string, volumeName: string, device: string) =>
  ({ id: osUuid('volume', volumeName), serverId, volumeId: osUuid('volume', volumeName), device });

function attachmentRoutes(app: FastifyInstance, deps: OpenStackDeps, finder: ServerFinder): void {
  const volumes = (req: FastifyRequest) => new VolumeService(deps.ctx, actorOf(req));
  const attached = async (req: FastifyRequest, id: string, volumeId: string) => {
    const inst = (await finder.find(req, id)).inst;
    const v = inst?.volumes.find((x) => osUuid('volume', x.name) === volumeId);
    if (!inst || !v) throw notFound(`volume ${volumeId} is not attached to server ${id}`, 'see `openstack server show` (volumes_attached)');
    return { inst, v };
  };
  app.get('/v2.1/servers/:id/os-volume_attachments', { ...role('reader'), schema: { params: IdParams } }, async (req) => {
    const { id } = req.params as { id: string };
    const inst = (await finder.find(req, id)).inst;
    return { volumeAttachments: (inst?.volumes ?? []).map((v) => attachment(id, v.name, v.device)) };
  });
  app.get('/v2.1/servers/:id/os-volume_attachments/:volumeId', { ...role('reader'), schema: { params: AttachmentParams } }, async (req) => {
    const { id, volumeId } = req.params as z.infer<typeof AttachmentParams>;
    const { v } = await attached(req, id, volumeId);
    return { volumeAttachment: attachment(id, v.name, v.device) };
  });
  app.post('/v2.1/servers/:id/os-volume_attachments', { ...role('member'), schema: { params: IdParams, body: AttachRequest } }, async (req) => {
    const { id } = req.params as { id: string };
    const { volumeId } = (req.body as z.infer<typeof AttachRequest>).volumeAttachment;
    const inst = await idleInstance(finder, req, id, 'attach_volume');
    const volume = (await volumes(req).list()).find((v) => osUuid('volume', v.name) === volumeId || v.name === volumeId);
    if (!volume) throw notFound(`volume ${volumeId} could not be found`, 'see `openstack volume list`');
    const r = await volumes(req).attach(volume.name, inst.name);
    deps.ops.resourceChanged('volume', volume.name, 'attached');
    return { volumeAttachment: attachment(id, volume.name, `/dev/${r.volume.device ?? '?'}`) };
  });
  app.delete('/v2.1/servers/:id/os-volume_attachments/:volumeId', { ...role('member'), schema: { params: AttachmentParams } }, async (req, reply) => {
    const { id, volumeId } = req.params as z.infer<typeof AttachmentParams>;
    const { v } = await attached(req, id, volumeId);
    // Answered once the guest has released the disk: a client may delete the volume right after.
    await volumes(req).detach(v.name, DETACH_TIMEOUT_MS);
    deps.ops.resourceChanged('volume', v.name, 'detached');
    return reply.code(202).send();
  });
}

export function serverActionRoutes(app: FastifyInstance, deps: OpenStackDeps, finder: ServerFinder): void {
  deleteRoute(app, deps, finder);
  actionRoute(app, deps, finder);
  attachmentRoutes(app, deps, finder);
}
