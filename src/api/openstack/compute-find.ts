import type { FastifyRequest } from 'fastify';
import { DEFAULT_PROJECT, type Actor } from '../../model/actor.js';
import { notFound } from '../../model/errors.js';
import type { Instance } from '../../model/types.js';
import { InstanceService } from '../../service/instances.js';
import { KeypairService } from '../../service/keypairs.js';
import type { Operation } from '../../service/operations.js';
import { baseUrl, OsUnauthorized, UUID_TEXT, type OpenStackDeps } from './common.js';
import { renderOperationServer, renderServer, TASK_KINDS, type ServerContext } from './compute-render.js';

/**
 * Where a Nova server comes from: a kumo instance (its libvirt UUID is the server's id), or, for
 * a create started here, the create operation itself (the operation's id is the UUID the instance
 * gets): BUILD before the instance is recorded, ERROR once it failed and nothing is left. Which
 * task a server is in is the kumo operation running on it. Nothing is kept here but the ids of
 * failed creates a client deleted (DELETE of an ERROR server), in memory like the operations.
 */
export type Server = { inst: Instance; op?: undefined } | { op: Operation; inst?: undefined };

/** The actor of an authenticated request (guardOpenStack sets it on every route that is not public). */
export function actorOf(req: FastifyRequest): Actor {
  if (!req.actor) throw new OsUnauthorized('this needs a Keystone token in X-Auth-Token');
  return req.actor;
}

const serverMissing = (id: string) => notFound(`server ${id} could not be found`, 'see `openstack server list`; a server is named by its id here (the client looks names up in the list)');

export class ServerFinder {
  /** Failed creates a client deleted: hidden from then on (the operation itself stays in kumo's list). */
  private readonly dismissed = new Set<string>();

  constructor(private readonly deps: OpenStackDeps) {}

  instances(req: FastifyRequest): InstanceService {
    return new InstanceService(this.deps.ctx, actorOf(req));
  }

  dismiss(id: string): void {
    this.dismissed.add(id);
    // Bounded by the operations kept: an id whose operation is forgotten needs no hiding.
    const known = new Set(this.deps.ops.list().map((o) => o.id));
    for (const d of this.dismissed) if (!known.has(d)) this.dismissed.delete(d);
  }

  /** The operations of the request's project the compute face shows as tasks or servers, newest first. */
  private projectOps(req: FastifyRequest): Operation[] {
    const project = actorOf(req).project;
    return this.deps.ops.list().filter((o) => (o.project ?? DEFAULT_PROJECT) === project && TASK_KINDS.has(o.kind));
  }

  /** The kind of the newest operation running on the instance named `name`. */
  runningTask(req: FastifyRequest, name: string, ops = this.projectOps(req)): Operation | undefined {
    return ops.find((o) => o.state === 'running' && o.target === name);
  }

  /** One server by id; names and other projects' ids are not found, as Nova answers them. */
  async find(req: FastifyRequest, id: string): Promise<Server> {
    if (!UUID_TEXT.test(id)) throw serverMissing(id);
    const record = this.deps.ctx.instances.byUuid(id);
    if (record) {
      try {
        return { inst: await this.instances(req).get(record.name) };
      } catch (e) {
        throw (e as { code?: string }).code === 'NOT_FOUND' ? serverMissing(id) : e;
      }
    }
    const op = this.projectOps(req).find((o) => o.id === id.toLowerCase() && o.kind === 'instance.create');
    if (op && this.shown(op, (name) => this.deps.ctx.instances.get(name) !== undefined)) return { op };
    throw serverMissing(id);
  }

  /**
   * Whether a create operation is a server of its own: running before its instance is recorded,
   * or failed with no instance of its name (a create of kumo's API that failed its readiness wait
   * left the instance, which is the server), and not deleted by a client.
   */
  private shown(op: Operation, hasInstance: (name: string) => boolean): boolean {
    return op.state !== 'succeeded' && !this.dismissed.has(op.id) && !hasInstance(op.target);
  }

  /** Every server of the project: its instances, then creates not recorded yet and failed ones, newest first. */
  async list(req: FastifyRequest): Promise<Server[]> {
    const views = await this.instances(req).list();
    const names = new Set(views.map((v) => v.name));
    const uuids = new Set(views.map((v) => v.uuid));
    const pending = this.projectOps(req).filter((o) => o.kind === 'instance.create' && !uuids.has(o.id) && this.shown(o, (name) => names.has(name)));
    const all: Server[] = [...views.map((inst) => ({ inst })), ...pending.map((op) => ({ op }))];
    const created = (s: Server) => (s.inst ? s.inst.createdAt : s.op!.createdAt);
    return all.sort((a, b) => created(b).localeCompare(created(a)));
  }

  /** The server's id and name, whichever way it is known. */
  static idName(s: Server): { id: string; name: string } {
    return s.inst ? { id: s.inst.uuid, name: s.inst.name } : { id: s.op!.id, name: s.op!.target };
  }

  /** A renderer of full server bodies for this request (its address, project, role, running tasks, keypairs). */
  renderer(req: FastifyRequest): (s: Server) => unknown {
    const actor = actorOf(req);
    const ops = this.projectOps(req);
    const keyNames = new Map(new KeypairService(this.deps.ctx, actor).list().map((k) => [k.publicKey, k.name]));
    const base: Omit<ServerContext, 'task'> = { base: baseUrl(req), project: actor.project, admin: actor.role === 'admin' };
    return (s) => {
      if (s.op) return renderOperationServer(base, s.op);
      const keyName = s.inst.sshKeys.map((k) => keyNames.get(k)).find((n) => n !== undefined);
      return { ...renderServer({ ...base, task: this.runningTask(req, s.inst.name, ops)?.kind }, s.inst), key_name: keyName ?? null };
    };
  }
}
