import type { Context } from './context.js';
import { DEFAULT_PROJECT, machineActor, type Actor } from '../model/actor.js';
import { KumoError } from '../model/errors.js';
import { SettingsService } from './settings.js';

/** The built-in networks (networks.ts BUILTIN_NETWORKS): every project's instances may use them. */
const SHARED_BUILTINS = ['default', 'testnet'];

/**
 * Which project a libvirt network belongs to. kumo records the project of every network it
 * defines; one without a record was made before projects (default's), or is shared: the
 * built-ins, the site's instance networks (`kumo lab up` sets its segments there) and the
 * segments a datacenter file's hosts were given, which are the room's common infrastructure
 * rather than a tenant's.
 */
export function networkOwner(ctx: Context, name: string): { project: string } | 'shared' {
  const project = ctx.projects.networkProject(name);
  if (project) return { project };
  const site = new SettingsService(ctx).get('instance.networks').split(',').filter(Boolean);
  const shared = SHARED_BUILTINS.includes(name) || site.includes(name) || ctx.projects.datacenterSegment(name);
  return shared ? 'shared' : { project: DEFAULT_PROJECT };
}

/** An actor that sees the network (its project's root): for what reads a network whose use was checked already (a share's). */
export function networkReader(ctx: Context, name: string): Actor {
  const owner = networkOwner(ctx, name);
  return machineActor(owner === 'shared' ? DEFAULT_PROJECT : owner.project);
}

/** Whether a project sees (and its instances may attach) a network. */
export function networkVisible(ctx: Context, project: string, name: string): boolean {
  const owner = networkOwner(ctx, name);
  return owner === 'shared' || owner.project === project;
}

/**
 * Refuses a network of another project in the words used for a missing one: an instance
 * attaches its project's networks and the shared ones only, and learns nothing of the rest.
 */
export function attachableNetwork(ctx: Context, project: string, name: string): string {
  if (!networkVisible(ctx, project, name)) {
    throw new KumoError('NOT_FOUND', `network "${name}" is not defined yet`,
      `create it first (e.g. \`kumo network create ${name} --mode nat --cidr 192.168.222.0/24\`), or use --network default`);
  }
  return name;
}
