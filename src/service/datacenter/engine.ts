import { readFile } from 'node:fs/promises';
import type { Context } from '../context.js';
import { KumoError } from '../../model/errors.js';
import { DatacenterSchema, type Datacenter } from '../../model/datacenter.js';
import { parseYamlFile } from '../../model/yaml-file.js';
import type { ResourceKind } from '../../store/datacenter-resources.js';
import type { ApplyRun, Change, Kind } from './kind.js';
import { KINDS } from './registry.js';

export type { Action, Change } from './kind.js';

const kindOf = new Map<ResourceKind, Kind>(KINDS.map((k) => [k.kind, k]));
const reversed = [...KINDS].reverse();

/**
 * `kumo plan|apply|destroy FILE`: observe what runs, compare it with the file, act on the
 * difference (the controller pattern), kind by kind in the registry's order. apply re-plans from
 * reality every time, so it converges from any partial state: an interrupted apply, an
 * instance deleted by hand, a dead daemon. What it made is recorded per datacenter with the
 * spec it applied, and destroy removes exactly that.
 */
export class DatacenterService {
  constructor(private readonly ctx: Context) {}

  async load(file: string): Promise<Datacenter> {
    const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new KumoError('NOT_FOUND', `cannot read datacenter file ${file}: ${e.code ?? e.message}`, 'give the path of a datacenter YAML file, e.g. examples/course-datacenter.yaml');
    });
    return this.parse(text, file);
  }

  /** A datacenter file given as text (the API's request body); errors name `file` with line and column. */
  parse(text: string, file: string): Datacenter {
    return parseYamlFile(text, DatacenterSchema, file);
  }

  /** What apply would do, in the order it does it: deletions first, then every kind in order. */
  async plan(dc: Datacenter): Promise<Change[]> {
    this.checkOwnership(dc);
    const changes: Change[] = [];
    for (const kind of KINDS) changes.push(...await kind.diff({ ctx: this.ctx, dc, changes }));
    return [...this.deletions(dc), ...changes];
  }

  /** Makes it so; returns what it did (empty: nothing to do). */
  async apply(dc: Datacenter, onChange: (c: Change) => void = () => undefined): Promise<Change[]> {
    const changes = await this.plan(dc);
    const run: ApplyRun = { ctx: this.ctx, dc, started: [] };
    for (const c of changes.filter((x) => x.action === 'delete')) {
      onChange(c);
      await kindOf.get(c.kind)!.remove(c.name, this.ctx.datacenterResources.spec(c.kind, c.name), run);
      this.ctx.datacenterResources.release(c.kind, c.name);
    }
    for (const kind of KINDS) await kind.prepare?.(run);
    for (const kind of KINDS) {
      for (const c of changes.filter((x) => x.kind === kind.kind && x.action !== 'delete')) {
        onChange(c);
        const applied = await kind.apply(c, run);
        this.ctx.datacenterResources.claim(dc.name, c.kind, c.name, applied);
      }
      await kind.settle?.(run);
    }
    return changes;
  }

  /** Removes what the file owns (what an apply of it made), in the reverse of apply's order. */
  async destroy(dc: Datacenter, onChange: (c: Change) => void = () => undefined): Promise<Change[]> {
    const done: Change[] = [];
    const owned = this.ctx.datacenterResources.owned(dc.name);
    for (const kind of reversed) {
      for (const r of owned.filter((o) => o.kind === kind.kind)) {
        const c: Change = { action: 'delete', kind: kind.kind, name: r.name, why: `made by ${dc.name}` };
        onChange(c);
        await kind.remove(r.name, r.spec, { ctx: this.ctx, dc });
        this.ctx.datacenterResources.release(kind.kind, r.name);
        done.push(c);
      }
    }
    return done;
  }

  /** What this datacenter made that its file no longer declares, in the order apply removes it. */
  private deletions(dc: Datacenter): Change[] {
    return reversed.filter((k) => k.pruned).flatMap((kind) => {
      const wanted = new Set(kind.wanted(dc));
      return this.ctx.datacenterResources.owned(dc.name, kind.kind).filter((r) => !wanted.has(r.name))
        .map((r): Change => ({ action: 'delete', kind: kind.kind, name: r.name, why: kind.pruned! }));
    });
  }

  /** A resource of an exclusive kind may not belong to another datacenter file. */
  private checkOwnership(dc: Datacenter): void {
    for (const kind of KINDS.filter((k) => k.exclusive)) {
      for (const n of kind.wanted(dc)) {
        const owner = this.ctx.datacenterResources.owner(kind.kind, n);
        if (owner && owner !== dc.name) {
          throw new KumoError('IN_USE', `${kind.kind} "${n}" belongs to datacenter "${owner}"`, `rename it in this file, or destroy ${owner} first`);
        }
      }
    }
  }
}
