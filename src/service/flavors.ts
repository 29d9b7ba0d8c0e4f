import type { Context } from './context.js';
import { KumoError, invalid, notFound } from '../model/errors.js';
import { checkName } from '../model/names.js';
import type { Flavor } from '../model/types.js';
import { checkSize } from '../model/sizes.js';
import { machineActor, type Actor } from '../model/actor.js';

/**
 * Flavors: public ones (the built-ins, an admin's) every project may use; a non-admin's flavor
 * is its project's own, and another project's is answered like a missing one.
 */
export class FlavorService {
  constructor(private readonly ctx: Context, private readonly actor: Actor = machineActor()) {}

  list(): Flavor[] {
    return this.ctx.flavors.list(this.actor.project);
  }

  get(name: string): Flavor {
    const f = this.ctx.flavors.get(name);
    if (!f || !this.ctx.flavors.usableBy(name, this.actor.project)) throw notFound(`flavor "${name}" does not exist`, 'see `kumo flavor list`, or pass --vcpus, --ram and --disk-size');
    return f;
  }

  create(name: string, vcpus: number, ramMiB: number, diskGiB: number): Flavor {
    checkName('flavor', name);
    checkSize('vcpus', vcpus);
    checkSize('ram', ramMiB);
    checkSize('disk-size', diskGiB);
    if (this.ctx.flavors.get(name)) throw new KumoError('ALREADY_EXISTS', `flavor "${name}" already exists`, 'pick another name');
    this.ctx.flavors.insert({ name, vcpus, ramMiB, diskGiB }, { project: this.actor.project, public: this.actor.role === 'admin' });
    return this.get(name);
  }

  /**
   * New sizes for a flavor of the user's, checked like create's before anything changes (instances
   * made from it keep their size). In place: a refused size leaves the flavor as it was.
   */
  update(name: string, vcpus: number, ramMiB: number, diskGiB: number): Flavor {
    const f = this.owned(name);
    if (f.builtin) throw invalid(`flavor "${name}" is built in and cannot be changed`);
    checkSize('vcpus', vcpus);
    checkSize('ram', ramMiB);
    checkSize('disk-size', diskGiB);
    this.ctx.flavors.update({ name, vcpus, ramMiB, diskGiB });
    return this.get(name);
  }

  delete(name: string): void {
    const f = this.owned(name);
    if (f.builtin) throw invalid(`flavor "${name}" is built in and cannot be deleted`);
    this.ctx.flavors.delete(name);
  }

  /** A flavor this actor may change: its project's own (an admin acting in that project). */
  private owned(name: string): Flavor {
    const f = this.get(name);
    if (this.ctx.flavors.owner(name) !== this.actor.project) {
      throw new KumoError('FORBIDDEN', `flavor "${name}" is public, shared by every project: only its own project may change it`,
        `make a flavor of your own: kumo flavor create NAME --vcpus N --ram MIB --disk-size GIB`);
    }
    return f;
  }
}
