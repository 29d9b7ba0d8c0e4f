import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiDeps } from '../deps.js';
import { actorLabel } from '../../model/actor.js';
import type { Operation as Op } from '../../service/operations.js';
import { API_PREFIX, errors, IdParams, Operation } from '../schemas.js';

const tags = ['operations'];

/**
 * Whose operation a request starts (the concurrency cap counts per owner): its API token's
 * name, or "login:NAME" for a dashboard user (token names cannot hold a colon).
 */
export const ownerOf = (req: FastifyRequest): string => req.apiToken?.name ?? actorLabel(req.actor);

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
  }, async () => ops.list());

  app.get('/operations/:id', {
    schema: { tags, operationId: 'getOperation', summary: 'the state of one operation', params: IdParams, response: { 200: Operation, ...errors(404) } },
  }, async (req) => ops.get(req.params.id));
};
