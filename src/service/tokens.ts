import { createHash, randomBytes } from 'node:crypto';
import type { Context } from './context.js';
import { TokenRepo, type TokenRecord } from '../store/tokens.js';
import { invalid, KumoError, notFound } from '../model/errors.js';
import { checkName } from '../model/names.js';
import { DEFAULT_PROJECT, type Actor, type UserRole } from '../model/actor.js';
import { checkRole } from './users.js';
import { requireProject } from './project-exists.js';

/**
 * API bearer tokens. A token is "kumo_" + 32 random bytes in base64url: 256 bits no one can
 * guess, so a plain sha256 of it is enough to store (a slow password hash such as scrypt
 * protects guessable human passwords; it would add nothing here but cost on every request),
 * and the hash is what a request is looked up by. The prefix lets secret scanners spot a
 * leaked token. The token itself is shown once, when it is made, and never stored.
 */
export const TOKEN_PREFIX = 'kumo_';
const TOKEN_TEXT = /^kumo_[A-Za-z0-9_-]{43}$/;
/** A token's public id: 8 hex digits. No name may take this form, so an id or a name is never both. */
const TOKEN_ID = /^[0-9a-f]{8}$/;
/** last_used_at is written at most this often per token: a write per request would be waste. */
const TOUCH_EVERY_MS = 60_000;
const ADMIN_DONE = 'api.admin-token-created';

export interface TokenView {
  id: string;
  name: string;
  /** The project it acts in, and its role there. */
  project: string;
  role: UserRole;
  createdAt: string;
  lastUsedAt?: string;
}

export interface NewToken extends TokenView {
  /** The secret: shown to the user once, never stored. */
  token: string;
}

export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

const view = (t: TokenRecord): TokenView =>
  ({ id: t.id, name: t.name, project: t.project, role: t.role, createdAt: t.createdAt, ...(t.lastUsedAt ? { lastUsedAt: t.lastUsedAt } : {}) });

/** Who a request with this token acts as. */
export const tokenActorOf = (t: TokenView): Actor => ({ kind: 'token', name: t.name, project: t.project, role: t.role });

/** Where a new token acts: an admin of default unless told otherwise (what every token was before roles). */
export interface TokenScope {
  project?: string;
  role?: string;
}

export class TokenService {
  private readonly repo: TokenRepo;

  // Context has no token repo (yet): the service opens one on the same database.
  constructor(private readonly ctx: Context) {
    this.repo = new TokenRepo(ctx.db);
  }

  create(name: string, scope: TokenScope = {}): NewToken {
    // The token-id form first: its message is the more telling one for "12345678".
    if (TOKEN_ID.test(name)) {
      throw invalid(`token name "${name}" is not valid: 8 hex digits is the form of a token id, and revoke takes an id or a name`,
        'pick a name that is not 8 hex digits, e.g. "ci" or "dashboard"');
    }
    checkName('token', name);
    const role = checkRole(scope.role ?? 'admin');
    const project = requireProject(this.ctx, scope.project ?? DEFAULT_PROJECT);
    if (this.repo.byName(name)) throw exists(name);
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    let id: string;
    // Unique, and not an older token's name either (one made before names were kept from the id form).
    do id = randomBytes(4).toString('hex'); while (this.repo.byId(id) || this.repo.byName(id));
    const record: TokenRecord = { id, name, hash: hashToken(token), project, role, createdAt: new Date().toISOString() };
    if (!this.repo.insert(record)) throw exists(name);
    return { ...view(record), token };
  }

  list(): TokenView[] {
    return this.repo.list().map(view);
  }

  /**
   * Revokes by id or name; requests with it fail from now on. An id wins: names cannot take an
   * id's form, and one that did (made before that rule) is still revoked by its own id.
   */
  revoke(idOrName: string): TokenView {
    const t = this.repo.byId(idOrName) ?? this.repo.byName(idOrName);
    if (!t) throw notFound(`there is no API token "${idOrName}"`, 'see `kumo token list` (give its id or name)');
    this.repo.delete(t.id);
    return view(t);
  }

  /** The token a request presented, if it is one kumo made and has not revoked. */
  verify(presented: string): TokenView | undefined {
    if (!TOKEN_TEXT.test(presented)) return undefined;
    const t = this.repo.byHash(hashToken(presented));
    if (!t) return undefined;
    const now = Date.now();
    if (!t.lastUsedAt || now - Date.parse(t.lastUsedAt) > TOUCH_EVERY_MS) this.repo.touch(t.id, new Date(now).toISOString());
    return view(t);
  }

  /**
   * On the API's first start: makes the "admin" token, to be printed once. Only ever once per
   * KUMO_HOME, and not when tokens exist already: revoking every token must not make a restart
   * hand out a new one (`kumo token create` does that, for whoever is root on the host).
   */
  ensureAdmin(): NewToken | undefined {
    if (this.ctx.settings.get(ADMIN_DONE)) return undefined;
    const made = this.repo.count() === 0 ? this.create('admin') : undefined;
    this.ctx.settings.set(ADMIN_DONE, '1');
    return made;
  }
}

const exists = (name: string) =>
  new KumoError('ALREADY_EXISTS', `an API token named "${name}" already exists`, `pick another name, or revoke it: kumo token revoke ${name}`);
