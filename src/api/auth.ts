import { timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { tokenActorOf, type TokenService, type TokenView } from '../service/tokens.js';
import type { SessionService } from '../service/sessions.js';
import type { Actor } from '../model/actor.js';
import { forbidden } from '../model/errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The API token the request came with (set by bearerAuth; absent for a dashboard session). */
    apiToken?: TokenView;
    /** Who the request acts as, in which project and role (set by bearerAuth, the project maybe by ?project=). */
    actor?: Actor;
  }
}

/**
 * A request without a valid token. Not a KumoError: no CLI command can fail this way, and its
 * answer needs a WWW-Authenticate header (RFC 6750), which the error handler adds.
 */
export class Unauthorized extends Error {
  constructor(message: string, readonly fix: string) {
    super(message);
    this.name = 'Unauthorized';
  }
}

/** The dashboard's session cookie, and the header its writes must echo the session's CSRF value in. */
export const SESSION_COOKIE = 'kumo_session';
export const CSRF_HEADER = 'x-kumo-csrf';

const MAKE_ONE = 'send "Authorization: Bearer TOKEN"; the admin token was printed by the first `kumo serve`, and `kumo token create NAME` makes more';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** One cookie's value from the Cookie header (no cookie library: kumo reads exactly one). */
export function cookieOf(req: FastifyRequest, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

const sameText = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/**
 * An onRequest hook: every route it guards needs "Authorization: Bearer <token>" with a token
 * kumo made, or the dashboard's session cookie. A browser sends a cookie on its own, also on
 * requests another site makes it send: so a write with the cookie must carry the session's
 * CSRF value in X-Kumo-CSRF, which another site can neither read nor set. A bearer token needs
 * none (nothing sends it on its own).
 */
export function bearerAuth(tokens: TokenService, sessions?: SessionService) {
  return async (req: FastifyRequest): Promise<void> => {
    const header = req.headers.authorization;
    const cookie = header ? undefined : sessions && cookieOf(req, SESSION_COOKIE);
    if (cookie !== undefined && sessions) {
      const s = sessions.lookup(cookie);
      if (!s) throw new Unauthorized('the dashboard session has ended (logged out, expired, or its user was deleted or given a new password)', 'log in again');
      if (!SAFE_METHODS.has(req.method)) {
        const sent = req.headers[CSRF_HEADER];
        if (typeof sent !== 'string' || !sameText(sent, s.csrf)) {
          throw forbidden(`a change made with the dashboard's session cookie needs the session's ${CSRF_HEADER} header`,
            'send the csrf value the login (or GET /api/v1/session) answered in the X-Kumo-CSRF header, or use a bearer token');
        }
      }
      req.actor = { ...s.actor };
      return;
    }
    if (!header) throw new Unauthorized('this needs an API token', MAKE_ONE);
    const m = /^Bearer +(\S+) *$/i.exec(header);
    if (!m) throw new Unauthorized('the Authorization header is not "Bearer TOKEN"', MAKE_ONE);
    const token = tokens.verify(m[1]!);
    if (!token) throw new Unauthorized('the API token is not valid (mistyped, or revoked)', `check it, see \`kumo token list\` on the server, or make a new one: kumo token create NAME`);
    req.apiToken = token;
    req.actor = tokenActorOf(token);
  };
}
