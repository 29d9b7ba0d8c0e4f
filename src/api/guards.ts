import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Context } from '../service/context.js';
import type { OperationRegistry } from '../service/operations.js';
import { AuditService } from '../service/audit.js';
import { actorLabel } from '../model/actor.js';
import { ownerLabel } from './routes/operations.js';
import { operationLimits } from '../service/settings.js';
import { API_PREFIX } from './schemas.js';
import { isOpenStackUrl } from './openstack/paths.js';

/**
 * What every answer carries, the dashboard's and the API's alike. The dashboard is Vite's
 * bundle from 'self' (no inline script, no eval): scripts stay 'self' only. Styles need
 * 'unsafe-inline' because xterm.js and noVNC insert <style> elements at run time; images
 * need data: (noVNC's cursor) and blob:. WebSockets go to the same host: CSP 3's 'self'
 * covers ws:/wss: of the page's own origin. Nothing may frame kumo (clickjacking a console).
 * Set in an onSend hook rather than @fastify/helmet, which is not a dependency.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': [
    "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data: blob:",
    "font-src 'self' data:", "connect-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
  ].join('; '),
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
};

/** How long a client told 429 should wait before trying again, in seconds. */
export const RETRY_AFTER_SECONDS = 30;

/** Why a request failed, as the error handler decided: for the audit line. */
const failures = new WeakMap<FastifyRequest, { code: string; detail?: string }>();

/** The error handler notes each failure's code (and, when the caller was not shown it, the detail). */
export function noteFailure(req: FastifyRequest, code: string, detail?: string): void {
  failures.set(req, { code, ...(detail !== undefined ? { detail } : {}) });
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The resource a request is about: its path's names, or a create's body.name. Never anything else of a body. */
function targetOf(req: FastifyRequest): string | undefined {
  const params = Object.values((req.params ?? {}) as Record<string, unknown>).filter((v): v is string => typeof v === 'string' && v !== '');
  if (params.length) return params.join('/');
  const name = (req.body as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' ? name : undefined;
}

/**
 * The hooks that guard every answer: security headers, the audit log (each mutating API request
 * and how each long operation ended) and the cap on concurrent operations.
 */
export function installGuards(app: FastifyInstance, ctx: Context, ops: OperationRegistry): void {
  app.addHook('onSend', async (req, reply, payload) => {
    reply.headers(SECURITY_HEADERS);
    // Every answer names its request: the id the server log (JSON lines) and the audit log have it under.
    reply.header('x-request-id', req.id);
    return payload;
  });
  ops.limitConcurrency(() => operationLimits(ctx));

  const audit = new AuditService(ctx);
  app.addHook('onResponse', async (req, reply) => {
    if (!MUTATING.has(req.method) || !(req.url.startsWith(`${API_PREFIX}/`) || isOpenStackUrl(req.url))) return;
    const failure = failures.get(req);
    const target = targetOf(req);
    audit.record({
      actor: actorLabel(req.actor), ...(req.actor ? { project: req.actor.project } : {}), via: 'api', action: `${req.method} ${req.routeOptions.url ?? req.url.split('?')[0]}`,
      ...(target !== undefined ? { target } : {}),
      result: reply.statusCode < 400 ? 'ok' : failure?.code ?? `HTTP_${reply.statusCode}`,
      ...(failure?.detail !== undefined ? { detail: failure.detail } : {}),
      requestId: req.id,
    });
  });

  // How each operation ended, with the detail its caller was not shown.
  const withheld = new Map<string, string>();
  const offWithheld = ops.onWithheldFailure((op, err) => {
    withheld.set(op.id, err instanceof Error ? err.message : String(err));
    app.log.error({ err, operation: op.id, kind: op.kind, target: op.target }, 'operation failed');
  });
  const offFinished = ops.subscribe(({ event }) => {
    if (event.type !== 'operation' || event.operation.state === 'running') return;
    const op = event.operation;
    const detail = withheld.get(op.id);
    withheld.delete(op.id);
    audit.record({
      actor: ownerLabel(op.owner), ...(op.project ? { project: op.project } : {}), via: 'operation', action: op.kind, target: op.target,
      result: op.state === 'succeeded' ? 'ok' : op.error?.code ?? 'INTERNAL', ...(detail !== undefined ? { detail } : {}),
    });
  });
  app.addHook('onClose', async () => {
    offWithheld();
    offFinished();
  });
}

/**
 * Every route that starts an operation (it answers 202) may answer 429 when too many run
 * (OperationRegistry.startFor): the OpenAPI document says so, with the error body.
 */
export function declareTooBusy<T extends { paths?: object }>(doc: T): T {
  type Op = { responses?: Record<string, unknown> };
  for (const item of Object.values(doc.paths ?? {}) as Record<string, Op>[]) {
    for (const op of Object.values(item)) {
      const responses = op.responses;
      if (!responses?.['202'] || responses['429']) continue;
      const error = responses['400'] ?? responses['401'];
      if (error) {
        responses['429'] = { ...(error as object), description: 'too many long operations run (the token\'s or the server\'s cap); the Retry-After header says when to try again' };
      }
    }
  }
  return doc;
}

/**
 * Every route that may write (anything but GET) may answer 507 NO_SPACE when the filesystem under
 * KUMO_HOME is full (service/disk-full.ts): the store, disks, seeds and snapshots all live there.
 */
export function declareNoSpace<T extends { paths?: object }>(doc: T): T {
  type Op = { responses?: Record<string, unknown> };
  for (const item of Object.values(doc.paths ?? {}) as Record<string, Op>[]) {
    for (const [method, op] of Object.entries(item)) {
      const responses = op.responses;
      const error = responses?.['401'];
      if (method === 'get' || !responses || !error || responses['507']) continue;
      responses['507'] = { ...(error as object), description: 'the filesystem under KUMO_HOME is full: nothing was made; free space there, then retry' };
    }
  }
  return doc;
}
