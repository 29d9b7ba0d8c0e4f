import type { FastifyRequest } from 'fastify';
import type { TokenService, TokenView } from '../service/tokens.js';
import { DEFAULT_PROJECT, type Actor } from '../model/actor.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The API token the request came with (set by bearerAuth). */
    apiToken?: TokenView;
    /** Who the request acts as, in which project and role (set by bearerAuth). */
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

const MAKE_ONE = 'send "Authorization: Bearer TOKEN"; the admin token was printed by the first `kumo serve`, and `kumo token create NAME` makes more';

/** An onRequest hook: every route it guards needs "Authorization: Bearer <token>" with a token kumo made. */
export function bearerAuth(tokens: TokenService) {
  return async (req: FastifyRequest): Promise<void> => {
    const header = req.headers.authorization;
    if (!header) throw new Unauthorized('this needs an API token', MAKE_ONE);
    const m = /^Bearer +(\S+) *$/i.exec(header);
    if (!m) throw new Unauthorized('the Authorization header is not "Bearer TOKEN"', MAKE_ONE);
    const token = tokens.verify(m[1]!);
    if (!token) throw new Unauthorized('the API token is not valid (mistyped, or revoked)', `check it, see \`kumo token list\` on the server, or make a new one: kumo token create NAME`);
    req.apiToken = token;
    // Every token is an admin of the default project until tokens carry a project and role.
    req.actor = { kind: 'token', name: token.name, project: DEFAULT_PROJECT, role: 'admin' };
  };
}
