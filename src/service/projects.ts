import type { Context } from './context.js';
import { DEFAULT_PROJECT, machineActor, type Actor } from '../model/actor.js';
import { forbidden, KumoError, notFound } from '../model/errors.js';
import { checkName } from '../model/names.js';
import { checkLimit, QUOTAS, type QuotaChange, type QuotaLimits, type QuotaUse } from '../model/quotas.js';
import type { Holdings } from '../store/projects.js';

/** A project with its caps and what it uses now (computed from the store on every read). */
export interface ProjectView {
  name: string;
  limits: QuotaLimits;
  use: QuotaUse;
  createdAt: string;
}

const HOLDING_WORDS: Record<keyof Holdings, string> = {
  instances: 'instances', volumes: 'volumes', shares: 'shares', networks: 'networks', loadBalancers: 'load balancers',
  images: 'images', flavors: 'flavors', datacenterResources: 'datacenter-file resources',
};

/**
 * Projects (issue 15): a tenant's room, capped by quotas. Who may: an admin makes, changes and
 * deletes projects and sees every one (root on the machine through the CLI is an admin); a
 * member or reader sees its own project only, with its use against its caps.
 * Lowering a cap below what the project already uses is allowed: nothing is taken away, new
 * creates are refused until the use is under the cap again (as OpenStack does).
 */
export class ProjectService {
  constructor(private readonly ctx: Context, private readonly actor: Actor = machineActor()) {}

  create(name: string, limits: QuotaLimits = {}): ProjectView {
    this.adminOnly('create projects');
    checkName('project', name);
    const checked = checkLimits(limits);
    if (!this.ctx.projects.insert({ name, limits: checked, createdAt: new Date().toISOString() })) {
      throw new KumoError('ALREADY_EXISTS', `project "${name}" already exists`, `pick another name, or change its quotas: kumo project set ${name} --max-instances N`);
    }
    return this.show(name);
  }

  /** An admin: every project. Anyone else: its own. */
  list(): ProjectView[] {
    const all = this.ctx.projects.list();
    return all.filter((p) => this.actor.role === 'admin' || p.name === this.actor.project).map((p) => this.view(p.name));
  }

  show(name: string): ProjectView {
    // Another project is answered like a missing one: its name is not revealed to a non-admin.
    if (this.actor.role !== 'admin' && name !== this.actor.project) throw missing(name);
    return this.view(name);
  }

  /** Changes caps: a number sets one, null lifts it, a quota left out stays as it is. */
  set(name: string, change: QuotaChange): ProjectView {
    this.adminOnly('change project quotas');
    this.view(name);
    const checked: QuotaChange = {};
    for (const q of QUOTAS) {
      const v = change[q];
      if (v !== undefined) checked[q] = v === null ? null : checkLimit(q, v);
    }
    this.ctx.projects.setLimits(name, checked);
    return this.view(name);
  }

  /** Refuses while the project holds anything, naming what; `default` is never deleted. */
  delete(name: string): void {
    this.adminOnly('delete projects');
    this.view(name);
    if (name === DEFAULT_PROJECT) {
      throw new KumoError('IN_USE', `project "${DEFAULT_PROJECT}" cannot be deleted: it holds the built-in flavors and is where root acts by default`,
        'leave it; it may be emptied and capped instead (kumo project set default --max-instances 0)');
    }
    const held = this.ctx.projects.deleteIfEmpty(name);
    if (!held) return;
    const parts = (Object.keys(held) as (keyof Holdings)[]).filter((k) => held[k].length)
      .map((k) => `${held[k].length} ${HOLDING_WORDS[k]} (${held[k].slice(0, 5).join(', ')}${held[k].length > 5 ? ', ...' : ''})`);
    throw new KumoError('IN_USE', `project "${name}" still holds ${parts.join(', ')}`,
      `delete them first (e.g. kumo --project ${name} instance list), then delete the project`);
  }

  private view(name: string): ProjectView {
    const p = this.ctx.projects.get(name);
    if (!p) throw missing(name);
    return { name: p.name, limits: p.limits, use: this.ctx.projects.use(name), createdAt: p.createdAt };
  }

  private adminOnly(what: string): void {
    if (this.actor.role !== 'admin') {
      throw forbidden(`only an admin may ${what}; ${this.actor.name} is ${this.actor.role} of project ${this.actor.project}`,
        'ask an admin of this kumo (root on the server acts as admin: kumo project ...)');
    }
  }
}

const missing = (name: string) => notFound(`project "${name}" does not exist`, 'see `kumo project list`');

function checkLimits(limits: QuotaLimits): QuotaLimits {
  const out: QuotaLimits = {};
  for (const q of QUOTAS) {
    const v = limits[q];
    if (v !== undefined) out[q] = checkLimit(q, v);
  }
  return out;
}
