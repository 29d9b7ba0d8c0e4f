import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { SESSION_TTL_MS, type SessionService } from '../../service/sessions.js';
import { USER_ROLES } from '../../model/actor.js';
import { cookieOf, SESSION_COOKIE, Unauthorized } from '../auth.js';
import { errors, named, NoContent } from '../schemas.js';

const tags = ['session'];

const Actor = named('Actor', z.object({
  kind: z.enum(['machine', 'token', 'user']).describe('an API token, or a user logged in with a password'),
  name: z.string(),
  project: z.string().describe('the project requests act in (an admin may pick another with ?project=)'),
  role: z.enum(USER_ROLES),
}), 'who a request acts as');

const Session = named('Session', z.object({
  actor: Actor,
  csrf: z.string().optional().describe('with the session cookie: send it back in the X-Kumo-CSRF header with every request that is not a GET'),
  expiresAt: z.number().optional().describe('with the session cookie: when it ends (epoch ms)'),
}));

const Login = named('Login', z.strictObject({
  name: z.string().min(1).max(63).describe('the user\'s name (kumo user create)'),
  password: z.string().min(1).max(1024),
}));

/** The cookie: script cannot read it, other sites' requests do not carry it, and over https it never goes in clear. */
function setSessionCookie(req: FastifyRequest, reply: FastifyReply, value: string, maxAgeSeconds: number): void {
  const secure = req.protocol === 'https' ? '; Secure' : '';
  void reply.header('set-cookie', `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure}`);
}

/** POST /login: needs no token (it is how the dashboard gets a session). */
export function loginRoutes(sessions: SessionService): FastifyPluginAsyncZod {
  return async (app) => {
    app.post('/login', {
      schema: {
        tags, operationId: 'login', security: [], body: Login, response: { 200: Session, ...errors(400, 429) },
        summary: `log in with a user name and password: sets the session cookie (HttpOnly, SameSite=Strict, ${SESSION_TTL_MS / 3600_000} h) and answers its CSRF value; failed tries are slowed, then refused for a while (429)`,
      },
    }, async (req, reply) => {
      const s = await sessions.login(req.body.name, req.body.password, req.ip);
      if (!s) throw new Unauthorized('the user name or password is wrong', 'check both; root on the server can set a new password: kumo user passwd NAME');
      setSessionCookie(req, reply, s.cookie, Math.floor(SESSION_TTL_MS / 1000));
      return { actor: s.actor, csrf: s.csrf, expiresAt: s.expiresAt };
    });
  };
}

/** GET /session and POST /logout, behind bearerAuth like the rest. */
export function sessionRoutes(sessions: SessionService): FastifyPluginAsyncZod {
  return async (app) => {
    app.get('/session', {
      schema: { tags, operationId: 'getSession', summary: 'who this request acts as (token or dashboard session), and the session\'s CSRF value', response: { 200: Session, ...errors() } },
    }, async (req) => {
      const cookie = req.apiToken ? undefined : cookieOf(req, SESSION_COOKIE);
      const s = cookie !== undefined ? sessions.lookup(cookie) : undefined;
      // req.actor is set by bearerAuth on every request that got here.
      return { actor: req.actor!, ...(s ? { csrf: s.csrf, expiresAt: s.expiresAt } : {}) };
    });

    app.post('/logout', {
      schema: { tags, operationId: 'logout', summary: 'end the dashboard session (the cookie stops working at once); with a token, does nothing', response: { 204: NoContent, ...errors() } },
    }, async (req, reply) => {
      const cookie = req.apiToken ? undefined : cookieOf(req, SESSION_COOKIE);
      if (cookie !== undefined) {
        sessions.logout(cookie);
        setSessionCookie(req, reply, '', 0);
      }
      return reply.code(204).send();
    });
  };
}
