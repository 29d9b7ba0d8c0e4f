import type { Context } from '../context.js';
import type { Datacenter } from '../../model/datacenter.js';
import type { KumoError } from '../../model/errors.js';
import type { ResourceKind } from '../../store/datacenter-resources.js';

export type Action = 'create' | 'update' | 'start' | 'recreate' | 'delete';

/** One step of a plan: what apply will do to one resource, and why. */
export interface Change {
  action: Action;
  kind: ResourceKind;
  name: string;
  /** Why, in words (what differs between the file and what runs). */
  why: string;
  /** An instance to create: the hypervisor the plan placed it on (when the hosts are known yet). */
  host?: string;
}

/** A key of the datacenter file (instances.web.flavor is ['instances', 'web', 'flavor']). */
export type FilePath = readonly (string | number)[];

/**
 * What a kind sees while planning: the file, the changes the kinds before it planned, and
 * where to report a problem with a key of the file. Plan collects every problem and refuses
 * them all at once (each with the key's line and column), so a kind reports and goes on.
 */
export interface PlanRun {
  ctx: Context;
  dc: Datacenter;
  changes: readonly Change[];
  refuse(path: FilePath, problem: KumoError): void;
}

/** What a kind sees while applying: the file, and the instances this apply created or started. */
export interface ApplyRun {
  ctx: Context;
  dc: Datacenter;
  started: string[];
}

/**
 * One kind of resource of the datacenter file (a file under kinds/), as a level-triggered
 * controller: it compares the file with what runs (diff), makes one change real (apply) and
 * removes what it made (remove). The engine owns the order, the ownership records and the
 * deletions of what left the file; a kind knows only its own resources.
 */
export interface Kind {
  readonly kind: ResourceKind;
  /** The names of this kind the file declares. */
  wanted(dc: Datacenter): string[];
  /** A name belongs to one datacenter file only (another file declaring it is an error). */
  readonly exclusive: boolean;
  /**
   * apply deletes what the file no longer declares (the reason shown); without it, only
   * destroy removes this kind (a lab, built images, access rules).
   */
  readonly pruned?: string;
  /** Creates, updates, starts and recreates that make this kind match the file. */
  diff(run: PlanRun): Promise<Change[]>;
  /** Makes one change real; returns what was applied, recorded for destroy. */
  apply(change: Change, run: ApplyRun): Promise<unknown>;
  /**
   * Removes one resource this datacenter made; `applied` is what apply recorded for it
   * (undefined for records older than that), `dc` today's file.
   */
  remove(name: string, applied: unknown, run: { ctx: Context; dc: Datacenter }): Promise<void>;
  /** Before any creation or update of any kind (after the deletions). */
  prepare?(run: ApplyRun): Promise<void>;
  /** After this kind's changes, before the next kind's: e.g. new instances must answer first. */
  settle?(run: ApplyRun): Promise<void>;
}
