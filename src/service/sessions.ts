import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Context } from './context.js';
import { SessionRepo } from '../store/sessions.js';
import { UserService } from './users.js';
import { KumoError } from '../model/errors.js';
import type { Actor } from '../model/actor.js';

/** How long a dashboard login lasts: a working day, then the password again. */
export const SESSION_TTL_MS = 12 * 3600_000;
/** Failed logins for one user name before each further try must wait; an address (a classroom behind one NAT) gets four times as many. */
export const FREE_FAILURES = 5;
const freeFailures = (key: string) => (key.startsWith('ip:') ? 4 * FREE_FAILURES : FREE_FAILURES);
const MAX_LOCK_MS = 15 * 60_000;

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * Slows password guessing, in memory (a restart forgets it; the scrypt cost still stands):
 * every failed login answers later the more failures its user name and its address have had,
 * and after FREE_FAILURES of them for a user (four times that for an address) further tries
 * are refused (TOO_BUSY) for 30 s, doubling with each new failure up to 15 minutes. A
 * success clears both counts.
 */
export class LoginThrottle {
  private readonly failures = new Map<string, { count: number; last: number }>();

  constructor(readonly delayPerFailureMs = 250, readonly maxDelayMs = 2000) {}

  /** Refuses when any key is locked now; says for how long. */
  check(keys: string[], now = Date.now()): void {
    for (const k of keys) {
      const f = this.failures.get(k);
      const free = freeFailures(k);
      if (!f || f.count < free) continue;
      const until = f.last + Math.min(MAX_LOCK_MS, 30_000 * 2 ** (f.count - free));
      if (now < until) {
        throw new KumoError('TOO_BUSY', `too many failed logins for this user or from this address: try again in ${Math.ceil((until - now) / 1000)} s`,
          'check the user name and password; root on the server can set a new one: kumo user passwd NAME');
      }
    }
  }

  /** Counts a failure; returns how long its answer should wait (ms). */
  fail(keys: string[], now = Date.now()): number {
    let worst = 0;
    for (const k of keys) {
      const f = this.failures.get(k) ?? { count: 0, last: now };
      f.count++;
      f.last = now;
      this.failures.set(k, f);
      worst = Math.max(worst, f.count);
    }
    if (this.failures.size > 100_000) this.failures.clear(); // bounded: a flood of names must not fill memory
    return Math.min(this.maxDelayMs, this.delayPerFailureMs * worst);
  }

  succeed(keys: string[]): void {
    for (const k of keys) this.failures.delete(k);
  }

  /**
   * A user's name and password checked under the throttle, for every door that takes them (the
   * dashboard's login, Keystone's password method): TOO_BUSY while locked; a wrong pair answers
   * undefined after the failure's wait; a right one clears the counts.
   */
  async verify(users: UserService, name: string, password: string, from: string, now = Date.now()): Promise<Actor | undefined> {
    const keys = [`user:${name}`, `ip:${from}`];
    this.check(keys, now);
    const actor = await users.verify(name, password);
    if (!actor) {
      await sleep(this.fail(keys, now));
      return undefined;
    }
    this.succeed(keys);
    return actor;
  }
}

export interface OpenSession {
  /** The cookie's value: 256 random bits; kumo keeps only its sha256. */
  cookie: string;
  csrf: string;
  actor: Actor;
  expiresAt: number;
}

/**
 * Dashboard logins: a user name and password open a session, kept server-side by the sha256 of
 * a random cookie, with its own CSRF value. A session acts as its user does *today*: a role
 * changed or a user deleted applies to open sessions at their next request.
 */
export class SessionService {
  private readonly repo: SessionRepo;
  private readonly users: UserService;

  constructor(ctx: Pick<Context, 'db' | 'projects'>, private readonly throttle = new LoginThrottle()) {
    this.repo = new SessionRepo(ctx.db);
    this.users = new UserService(ctx);
  }

  /** A new session, or undefined for a wrong name or password (after the throttle's wait). TOO_BUSY while locked. */
  async login(name: string, password: string, from: string, now = Date.now()): Promise<OpenSession | undefined> {
    const actor = await this.throttle.verify(this.users, name, password, from, now);
    if (!actor) return undefined;
    this.repo.sweep(now);
    const cookie = randomBytes(32).toString('base64url');
    const csrf = randomBytes(32).toString('base64url');
    const expiresAt = now + SESSION_TTL_MS;
    this.repo.insert({ hash: sha256(cookie), user: actor.name, csrf, expiresAt });
    return { cookie, csrf, actor, expiresAt };
  }

  /** The session a cookie opens now: its user's actor and CSRF value; undefined when unknown or expired. */
  lookup(cookie: string, now = Date.now()): { actor: Actor; csrf: string; expiresAt: number } | undefined {
    if (!/^[A-Za-z0-9_-]{43}$/.test(cookie)) return undefined;
    const s = this.repo.get(sha256(cookie));
    if (!s) return undefined;
    if (s.expiresAt <= now) {
      this.repo.delete(s.hash);
      return undefined;
    }
    const actor = this.users.actor(s.user);
    return actor && { actor, csrf: s.csrf, expiresAt: s.expiresAt };
  }

  logout(cookie: string): void {
    this.repo.delete(sha256(cookie));
  }
}
