/**
 * Who acts, and where: every use case that reads or changes a project's resources is asked by
 * an Actor. Root on the machine (the CLI) is `admin`; an API token or a logged-in user acts in
 * its project with its role. Roles, from most to least:
 * - `admin`: everything, in every project (hosts, flavors, public images, projects, users);
 * - `member`: create, change and delete in its own project;
 * - `reader`: see its own project.
 */
export const USER_ROLES = ['admin', 'member', 'reader'] as const;
export type UserRole = (typeof USER_ROLES)[number];

/** The project every resource made before projects belongs to, and the CLI's default. */
export const DEFAULT_PROJECT = 'default';

export interface Actor {
  /** How it came: root on the machine (CLI), an API token, or a user logged in with a password. */
  kind: 'machine' | 'token' | 'user';
  /** The token's or user's name; `root` for the machine. */
  name: string;
  /** The project it acts in (an admin may pick another per request). */
  project: string;
  role: UserRole;
}

export const isUserRole = (role: string): role is UserRole => (USER_ROLES as readonly string[]).includes(role);

/** Root on the machine, acting in `project`. */
export const machineActor = (project: string = DEFAULT_PROJECT): Actor => ({ kind: 'machine', name: 'root', project, role: 'admin' });

/** May this actor change things in its project? */
export const canWrite = (a: Actor): boolean => a.role !== 'reader';

/** How the audit log and the operations name an actor: "token:NAME", "login:NAME" (a dashboard user) or "root". */
export const actorLabel = (a: Actor | undefined): string =>
  !a ? 'anonymous' : a.kind === 'token' ? `token:${a.name}` : a.kind === 'user' ? `login:${a.name}` : 'root';
