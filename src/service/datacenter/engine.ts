import { readFile } from 'node:fs/promises';
import type { Context } from '../context.js';
import { KumoError } from '../../model/errors.js';
import { DatacenterSchema, type Datacenter } from '../../model/datacenter.js';
import { locatorOf, parseYamlFile } from '../../model/yaml-file.js';
import type { ResourceKind } from '../../store/datacenter-resources.js';
import type { ApplyRun, Change, FilePath, Kind } from './kind.js';
import { KINDS } from './registry.js';
import { projectProblems } from './quota.js';
import { stepBoundary } from '../fault-points.js';

export type { Action, Change } from './kind.js';

/** A problem plan found: the key of the file it is about (none: the file as a whole), and the error. */
interface PlanProblem {
  path: FilePath;
  error: KumoError;
}

/**
 * `kumo plan|apply|destroy FILE`: observe what runs, compare it with the file, act on the
 * difference (the controller pattern), kind by kind in the registry's order. apply re-plans from
 * reality every time, so it converges from any partial state: an interrupted apply, an
 * instance deleted by hand, a dead daemon. What it made is recorded per datacenter with the
 * spec it applied, and destroy removes exactly that.
 */
export class DatacenterService {
  private readonly kindOf: Map<ResourceKind, Kind>;
  private readonly reversed: readonly Kind[];

  /** `kinds`: the registry's, in its order (a test gives its own). */
  constructor(private readonly ctx: Context, private readonly kinds: readonly Kind[] = KINDS) {
    this.kindOf = new Map(kinds.map((k) => [k.kind, k]));
    this.reversed = [...kinds].reverse();
  }

  async load(file: string): Promise<Datacenter> {
    const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new KumoError('NOT_FOUND', `cannot read datacenter file ${file}: ${e.code ?? e.message}`, 'give the path of a datacenter YAML file, e.g. examples/course-datacenter.yaml');
    });
    return this.parse(text, file);
  }

  /** A datacenter file given as text (the API's request body); errors name `file` with line and column. */
  parse(text: string, file: string): Datacenter {
    return parseYamlFile(text, DatacenterSchema, file, 'datacenter');
  }

  /**
   * What apply would do, in the order it does it: deletions first, then every kind in order.
   * Every problem that the file and the current state show is found first and refused at once,
   * each with the file's line and column: nothing is made from a plan with a problem.
   */
  async plan(dc: Datacenter): Promise<Change[]> {
    const problems = this.ownershipProblems(dc);
    const refuse = (path: FilePath, error: KumoError) => { problems.push({ path, error }); };
    const changes: Change[] = [];
    for (const kind of this.kinds) {
      // A kind that cannot plan at all (what it reads does not answer) is one problem; the next kinds still look for theirs.
      try {
        changes.push(...await kind.diff({ ctx: this.ctx, dc, changes, refuse }));
      } catch (e) {
        if (!(e instanceof KumoError)) throw e;
        problems.push({ path: [], error: e });
      }
    }
    problems.push(...projectProblems(this.ctx, dc, changes));
    if (problems.length) throw refusal(dc, problems);
    return [...this.deletions(dc), ...changes];
  }

  /**
   * Makes it so; returns what it did (empty: nothing to do). Each change is recorded as soon as
   * it is made, so a failure part-way leaves a state the next apply plans from and continues;
   * the error says what was done before it.
   */
  async apply(dc: Datacenter, onChange: (c: Change) => void = () => undefined): Promise<Change[]> {
    const changes = await this.plan(dc);
    const done: Change[] = [];
    try {
      await this.act({ ctx: this.ctx, dc, started: [] }, changes, onChange, (c) => { done.push(c); });
    } catch (e) {
      throw unfinished(e, done, changes.length);
    }
    return changes;
  }

  private async act(run: ApplyRun, changes: Change[], starting: (c: Change) => void, made: (c: Change) => void): Promise<void> {
    const { dc } = run;
    // Before and after each resource is made, before it is recorded (the fault tests kill kumo
    // here; the services' operations have their own steps).
    const boundary = () => stepBoundary(`apply datacenter ${dc.name}`);
    for (const c of changes.filter((x) => x.action === 'delete')) {
      starting(c);
      await this.kindOf.get(c.kind)!.remove(c.name, this.ctx.datacenterResources.spec(c.kind, c.name), run);
      boundary();
      this.ctx.datacenterResources.release(c.kind, c.name);
      made(c);
    }
    for (const kind of this.kinds) await kind.prepare?.(run);
    for (const kind of this.kinds) {
      for (const c of changes.filter((x) => x.kind === kind.kind && x.action !== 'delete')) {
        starting(c);
        const applied = await this.claimed(dc, c, () => kind.apply(c, run), boundary);
        boundary();
        this.ctx.datacenterResources.claim(dc.name, c.kind, c.name, applied, dc.project);
        made(c);
      }
      await kind.settle?.(run);
    }
  }

  /**
   * A resource to create is claimed (without a spec) before it is made: if kumo dies between
   * making it and recording it, the next apply finds it already the file's (it would otherwise
   * see one it does not own and never record it, and destroy would leave it). A create that
   * fails here gives the claim back; one that was never made is made by the next apply, and
   * removing a resource that is not there is nothing to every kind.
   */
  private async claimed(dc: Datacenter, c: Change, make: () => Promise<unknown>, boundary: () => void): Promise<unknown> {
    const claims = c.action === 'create' && !this.ctx.datacenterResources.owner(c.kind, c.name);
    if (!claims) return make();
    this.ctx.datacenterResources.claim(dc.name, c.kind, c.name, undefined, dc.project);
    boundary();
    try {
      return await make();
    } catch (e) {
      this.ctx.datacenterResources.release(c.kind, c.name);
      throw e;
    }
  }

  /** Removes what the file owns (what an apply of it made), in the reverse of apply's order. */
  async destroy(dc: Datacenter, onChange: (c: Change) => void = () => undefined): Promise<Change[]> {
    const done: Change[] = [];
    const owned = this.ctx.datacenterResources.owned(dc.name);
    for (const kind of this.reversed) {
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
    return this.reversed.filter((k) => k.pruned).flatMap((kind) => {
      const wanted = new Set(kind.wanted(dc));
      return this.ctx.datacenterResources.owned(dc.name, kind.kind).filter((r) => !wanted.has(r.name))
        .map((r): Change => ({ action: 'delete', kind: kind.kind, name: r.name, why: kind.pruned! }));
    });
  }

  /** A resource of an exclusive kind may not belong to another datacenter file. */
  private ownershipProblems(dc: Datacenter): PlanProblem[] {
    return this.kinds.filter((k) => k.exclusive).flatMap((kind) => kind.wanted(dc).flatMap((n): PlanProblem[] => {
      const owner = this.ctx.datacenterResources.owner(kind.kind, n);
      if (!owner || owner === dc.name) return [];
      return [{ path: [], error: new KumoError('IN_USE', `${kind.kind} "${n}" belongs to datacenter "${owner}"`, `rename it in this file, or destroy ${owner} first`) }];
    }));
  }
}

/**
 * One error for every problem plan found: each on a line of its own, at its key's line and
 * column where the file has it. The first problem's code decides the exit code.
 */
function refusal(dc: Datacenter, problems: PlanProblem[]): KumoError {
  const locate = locatorOf(dc);
  const lines = problems.map(({ path, error }) => {
    if (!path.length) return error.message;
    return `${locate ? `${locate(path)}: ` : ''}${path.join('.')}: ${error.message}`;
  });
  const fixes = [...new Set(problems.map((p) => p.error.fix).filter((f): f is string => f !== undefined))];
  return new KumoError(problems[0]!.error.code, lines.join('\n'), fixes.length ? fixes.join('; ') : undefined, problems.length === 1 ? { cause: problems[0]!.error } : undefined);
}

/** A failure part-way through apply, saying what was done before it and that apply again continues (what was made is recorded). */
function unfinished(e: unknown, done: Change[], total: number): unknown {
  if (!(e instanceof KumoError)) return e;
  const what = done.length
    ? `${done.length} of ${total} change(s) were made before it (${done.map((c) => `${c.action} ${c.kind} ${c.name}`).join(', ')})`
    : `none of the ${total} change(s) was complete before it`;
  return new KumoError(e.code, `${e.message}\napply stopped: ${what}; running apply again continues from there`, e.fix, { cause: e });
}
