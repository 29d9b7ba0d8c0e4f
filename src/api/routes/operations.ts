import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiDeps } from '../deps.js';
import { actorLabel, DEFAULT_PROJECT } from '../../model/actor.js';
import { notFound } from '../../model/errors.js';
import type { Operation as Op, OperationOwner } from '../../service/operations.js';
import { API_PREFIX, errors, IdParams, Operation } from '../schemas.js';

const tags = ['operations'];

/**
 * Whose operation a request starts (the concurrency cap counts per owner): its API token's
 * name, or "login:NAME" for a dashboard user (token names cannot hold a colon).
 */
export const ownerOf = (req: FastifyRequest): OperationOwner =>
  ({ name: req.apiToken?.name ?? actorLabel(req.actor), project: req.actor?.project ?? DEFAULT_PROJECT });

/** Whether the request's actor may see an operation: an admin sees all, anyone else its project's. */
const visibleTo = (req: FastifyRequest) => (op: Op): boolean =>
  req.actor?.role === 'admin' || (op.project ?? DEFAULT_PROJECT) === req.actor?.project;

/** An operation's owner as the audit log names actors. */
export const ownerLabel = (owner: string | undefined): string =>
  owner === undefined ? 'anonymous' : owner.startsWith('login:') ? owner : `token:${owner}`;

/** The answer to a request that started an operation: 202, with where to follow it. */
export function accepted(reply: FastifyReply, operation: Op) {
  return reply.code(202).header('location', `${API_PREFIX}/operations/${operation.id}`).send({ operation });
}

export const operationRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, { ops }) => {
  app.get('/operations', {
    schema: { tags, operationId: 'listOperations', summary: 'operations this server ran or runs, newest first', response: { 200: z.array(Operation), ...errors() } },
  }, async (req) => ops.list().filter(visibleTo(req)));

  app.get('/operations/:id', {
    schema: { tags, operationId: 'getOperation', summary: 'the state of one operation', params: IdParams, response: { 200: Operation, ...errors(404) } },
  }, async (req) => {
    const op = ops.get(req.params.id);
    // Another project's operation is answered as a missing one.
    if (!visibleTo(req)(op)) throw notFound(`there is no operation "${req.params.id}"`, 'operations are kept in memory by the running server; see GET /api/v1/operations');
    return op;
  });
};
