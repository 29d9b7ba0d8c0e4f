import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiDeps } from '../deps.js';
import { AuditService } from '../../service/audit.js';
import { errors, named, timestamp } from '../schemas.js';

const AuditEntry = named('AuditEntry', z.object({
  id: z.number().int(),
  at: timestamp,
  actor: z.string().describe('"token:NAME" (an API token), "login:NAME" (a dashboard user) or "user:NAME(uid N)" (the CLI, run on the machine)'),
  project: z.string().optional().describe('the project the request acted in (absent for the CLI\'s own lines)'),
  via: z.enum(['api', 'cli', 'operation']).describe('an API request, a CLI command, or how a long operation ended'),
  action: z.string().describe('API: "METHOD /route"; CLI: the command ("instance create"); operation: its kind'),
  target: z.string().optional().describe('the resource\'s name'),
  result: z.string().describe('"ok" or the error code it ended with'),
  detail: z.string().optional().describe('the detail of a failure its caller was not shown (a failed command\'s output, a bug\'s message)'),
  requestId: z.string().optional().describe('API requests: the request\'s id, as its answer\'s X-Request-Id header and the server log (reqId) give it'),
}), 'one line of the audit log; never a password, token or user-data');

/** GET /audit: who did what, in every project: an admin's (see ROUTE_ROLES in roles.ts). */
export const auditRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, { ctx }) => {
  app.get('/audit', {
    schema: {
      tags: ['audit'], operationId: 'listAudit', summary: 'the audit log, newest first: who (token or local user) did what, to what, and the result, like `kumo audit`',
      querystring: z.object({ limit: z.coerce.number().int().min(1).max(10_000).default(50).describe('how many entries, newest first') }),
      response: { 200: z.array(AuditEntry), ...errors(400) },
    },
  }, async (req) => new AuditService(ctx).recent(req.query.limit));
};
