import { createHash, randomBytes } from 'node:crypto';
import type { Context } from './context.js';
import { IdentityTokenRepo, type IdentitySubjectKind } from '../store/identity-tokens.js';
import { TokenRepo } from '../store/tokens.js';
import { tokenActorOf, TokenService } from './tokens.js';
import { UserService } from './users.js';
import { LoginThrottle } from './sessions.js';
import { projectExists } from './project-exists.js';
import type { Actor } from '../model/actor.js';

/** Keystone's default token lifetime; keystoneauth asks for a new token before it ends. */
export const IDENTITY_TOKEN_TTL_MS = 3600_000;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const TOKEN_TEXT = /^[A-Za-z0-9_-]{43}$/;

/** How a token was asked for: Keystone's two methods kumo serves. */
export type IdentityMethod = 'password' | 'application_credential';

export interface IdentityToken {
  /** The token's text (X-Subject-Token): shown once, only its sha256 is kept. */
  token: string;
  actor: Actor;
  method: IdentityMethod;
  issuedAt: number;
  expiresAt: number;
}

/** Why a token was refused, in words the client shows (Keystone answers 401 for each). */
export class IdentityRefused extends Error {
  constructor(message: string, readonly fix: string) {
    super(message);
    this.name = 'IdentityRefused';
  }
}

/**
 * Keystone's tokens for the OpenStack API: a kumo user's name and password (scoped to the user's
 * project, or any project for an admin) or a kumo API token as an application credential (its id
 * and its secret, acting in the token's project). A token expires after an hour and acts as its
 * subject does *today*: a user deleted, a role changed or an API token revoked applies at the next
 * request. Password tries share the dashboard's throttle, so two doors do not double the guesses.
 */
export class IdentityService {
  private readonly repo: IdentityTokenRepo;
  private readonly users: UserService;
  private readonly apiTokens: TokenService;
  private readonly tokenRecords: TokenRepo;

  constructor(private readonly ctx: Context, private readonly throttle = new LoginThrottle()) {
    this.repo = new IdentityTokenRepo(ctx.db);
    this.users = new UserService(ctx);
    this.apiTokens = new TokenService(ctx);
    this.tokenRecords = new TokenRepo(ctx.db);
  }

  /** A token for a user's name and password; `project` (Keystone's scope) defaults to the user's own. */
  async withPassword(name: string, password: string, project: string | undefined, from: string, now = Date.now()): Promise<IdentityToken> {
    const actor = await this.throttle.verify(this.users, name, password, from, now);
    if (!actor) throw new IdentityRefused('the user name or password is wrong', 'check both; root on the server can set a new password: kumo user passwd NAME');
    return this.issue('user', actor.name, this.scope(actor, project), 'password', now);
  }

  /** A token for a kumo API token given as an application credential: id (8 hex digits) and secret (the kumo_… text). */
  withApplicationCredential(id: string, secret: string, project: string | undefined, now = Date.now()): IdentityToken {
    const t = this.apiTokens.verify(secret);
    if (!t || t.id !== id) {
      throw new IdentityRefused('the application credential is not valid (its id and secret do not match a kumo API token)',
        'use the id `kumo token list` shows and the secret `kumo token create` printed');
    }
    return this.issue('token', t.id, this.scope(tokenActorOf(t), project), 'application_credential', now);
  }

  /** The actor a token acts as now, with its times; undefined when unknown, expired or its subject is gone. */
  verify(token: string, now = Date.now()): Omit<IdentityToken, 'token' | 'method'> | undefined {
    if (!TOKEN_TEXT.test(token)) return undefined;
    const r = this.repo.get(sha256(token));
    if (!r) return undefined;
    if (r.expiresAt <= now) {
      this.repo.delete(r.hash);
      return undefined;
    }
    const actor = this.subjectActor(r.subjectKind, r.subject);
    if (!actor) return undefined;
    // An admin keeps the project it scoped to; anyone else acts in its own (a role or project changed since).
    if (actor.role === 'admin' && projectExists(this.ctx, r.project)) actor.project = r.project;
    return { actor, issuedAt: r.issuedAt, expiresAt: r.expiresAt };
  }

  /** DELETE /v3/auth/tokens: the token stops working at once. */
  revoke(token: string): void {
    if (TOKEN_TEXT.test(token)) this.repo.delete(sha256(token));
  }

  private subjectActor(kind: IdentitySubjectKind, subject: string): Actor | undefined {
    if (kind === 'user') return this.users.actor(subject);
    const t = this.tokenRecords.byId(subject);
    return t && tokenActorOf(t);
  }

  /** A project the actor may scope to: its own, or for an admin any that exists. */
  private scope(actor: Actor, project: string | undefined): string {
    if (project === undefined || project === actor.project) return actor.project;
    if (actor.role === 'admin' && projectExists(this.ctx, project)) return project;
    throw new IdentityRefused(`${actor.kind === 'user' ? 'user' : 'API token'} "${actor.name}" has no access to project "${project}"`,
      `scope the token to its project "${actor.project}" (OS_PROJECT_NAME=${actor.project})`);
  }

  private issue(kind: IdentitySubjectKind, subject: string, project: string, method: IdentityMethod, now: number): IdentityToken {
    this.repo.sweep(now);
    const token = randomBytes(32).toString('base64url');
    const expiresAt = now + IDENTITY_TOKEN_TTL_MS;
    this.repo.insert({ hash: sha256(token), subjectKind: kind, subject, project, issuedAt: now, expiresAt });
    const actor = this.subjectActor(kind, subject)!;
    return { token, actor: { ...actor, project }, method, issuedAt: now, expiresAt };
  }
}
