import type { Context } from './context.js';
import { UserRepo, type UserRecord } from '../store/users.js';
import { SessionRepo } from '../store/sessions.js';
import { isUserRole, USER_ROLES, type Actor, type UserRole } from '../model/actor.js';
import { invalid, KumoError, notFound } from '../model/errors.js';
import { checkName } from '../model/names.js';
import { hashLoginPassword, verifyLoginPassword } from '../model/login-password.js';
import { requireProject } from './project-exists.js';

/** A user as shown: never the password hash. */
export interface UserView {
  name: string;
  project: string;
  role: UserRole;
  createdAt: string;
}

const view = (u: UserRecord): UserView => ({ name: u.name, project: u.project, role: u.role, createdAt: u.createdAt });

/** The role a user or token gets, refused in kumo's words when it is not one. */
export function checkRole(role: string): UserRole {
  if (!isUserRole(role)) throw invalid(`role "${role}" is not one of ${USER_ROLES.join(', ')}`, 'admin: everything; member: create and change in its project; reader: see its project');
  return role;
}

/** Hashed once, on first need: an unknown user's login costs what a known one's does. */
let dummyHash: Promise<string> | undefined;

/**
 * Users who log in with a password (the dashboard): each belongs to one project with one role.
 * Managed by root on the machine (`kumo user ...`); the password never comes on a command line
 * (a file or a terminal prompt: see cli/commands/user.ts) and is kept as an scrypt hash.
 */
export class UserService {
  private readonly repo: UserRepo;

  // Context has no user repo: the service opens one on the same database, as TokenService does.
  constructor(private readonly ctx: Pick<Context, 'db' | 'projects'>) {
    this.repo = new UserRepo(ctx.db);
  }

  async create(name: string, project: string, role: string, password: string): Promise<UserView> {
    checkName('user', name);
    const r = checkRole(role);
    requireProject(this.ctx, project);
    if (this.repo.get(name)) throw exists(name);
    const record: UserRecord = { name, project, role: r, passwordHash: await hashLoginPassword(password), createdAt: new Date().toISOString() };
    if (!this.repo.insert(record)) throw exists(name);
    return view(record);
  }

  list(): UserView[] {
    return this.repo.list().map(view);
  }

  get(name: string): UserView {
    const u = this.repo.get(name);
    if (!u) throw missing(name);
    return view(u);
  }

  /** Deletes a user; their dashboard sessions end with them. */
  delete(name: string): UserView {
    const u = this.get(name);
    this.repo.delete(name);
    return u;
  }

  /** A new password; sessions opened with the old one end (the store drops them). */
  async passwd(name: string, password: string): Promise<UserView> {
    const u = this.get(name);
    const hash = await hashLoginPassword(password);
    if (!this.repo.setPasswordHash(name, hash)) throw missing(name);
    new SessionRepo(this.ctx.db).deleteOfUser(name);
    return u;
  }

  /**
   * The actor a login with this name and password is, or undefined. An unknown name costs a
   * hash too, so the time an answer takes does not tell which names exist.
   */
  async verify(name: string, password: string): Promise<Actor | undefined> {
    const u = this.repo.get(name);
    dummyHash ??= hashLoginPassword('not a password of anyone');
    const ok = await verifyLoginPassword(password, u?.passwordHash ?? await dummyHash);
    return u && ok ? this.actorOf(u) : undefined;
  }

  /** The actor a (still existing) user is now: their role and project as the store has them today. */
  actor(name: string): Actor | undefined {
    const u = this.repo.get(name);
    return u && this.actorOf(u);
  }

  private actorOf(u: UserRecord): Actor {
    return { kind: 'user', name: u.name, project: u.project, role: u.role };
  }
}

const exists = (name: string) => new KumoError('ALREADY_EXISTS', `a user named "${name}" already exists`, `pick another name, or delete it: kumo user delete ${name}`);
const missing = (name: string) => notFound(`there is no user "${name}"`, 'see `kumo user list`');
