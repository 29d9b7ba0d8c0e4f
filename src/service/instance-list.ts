import type { Context } from './context.js';
import type { Instance, ObservedState } from '../model/types.js';
import type { InstanceRecord } from '../store/instances.js';
import type { VolumeRecord } from '../store/volumes.js';
import { storeChangeMark } from '../store/change-mark.js';
import { attachedVolumes, statesOf } from './instance-states.js';
import { dhcpAddresses } from './leases.js';

/**
 * The instance list kept ready between requests (`GET /api/v1/instances` in `kumo serve`): built
 * once, with its answer rendered (checked against the response schema and serialised), and
 * answered as it is until something it shows may have changed. A request then costs a few
 * checks, not 1,000 views. What makes it build again:
 * - a write to the store, by this process or another one (the CLI): storeChangeMark;
 * - anything the followed states may say differently (an event, a listing, a lost host): the
 *   watch's version. A list whose states were asked of libvirt now (no watch, a host not
 *   followed or lost) is never kept: it is as fresh as the request only;
 * - DHCP leases that changed: they come with no event, so they are read again when older than
 *   LEASES_FRESH_MS (and with every build); the answer is built again only when they differ.
 * It is kept per project, the scope of what a caller sees (service/scope.ts): one project's
 * answer is never handed to another's caller.
 */

/** How long the DHCP leases of a kept list are trusted: a guest's lease comes seconds after its start, with no event. */
export const LEASES_FRESH_MS = 2_000;

/** What a build hands back: the views, and what the kept answer must be checked against. */
export interface BuiltList {
  views: Instance[];
  /** The hosts whose states it shows: all must still be followed fresh for it to stand. */
  hosts: string[];
  /** Every state came from the followed events and listings (none was asked for this request). */
  allObserved: boolean;
  leases: Map<string, string>;
  /** The leases of the same records, read again. */
  readLeases(): Promise<Map<string, string>>;
}

/** What was true when a build began: a kept answer stands only while both are unchanged. */
interface Inputs { store: string; watch: number | undefined }

interface Kept {
  inputs: Inputs;
  render: unknown;
  value: unknown;
  hosts: string[];
  leases: Map<string, string>;
  leasesAt: number;
  readLeases(): Promise<Map<string, string>>;
  /** The leases being read again (one read for every request that finds them old). */
  checking?: Promise<boolean>;
}

interface Building { inputs: Inputs; render: unknown; answer: Promise<unknown> }

interface Lists { kept: Map<string, Kept>; building: Map<string, Building> }

const listsOf = new WeakMap<Context, Lists>();

const sameInputs = (a: Inputs, b: Inputs) => a.store === b.store && a.watch === b.watch;

const sameLeases = (a: Map<string, string>, b: Map<string, string>) => a.size === b.size && [...a].every(([mac, ip]) => b.get(mac) === ip);

/**
 * The project's list as `render` turns it into an answer: the kept one while it stands, else
 * built by `build` (one build at a time per project and inputs; requests that come meanwhile share it).
 * `render` should be one function for the process' life (a module's constant): it is part of the key.
 */
export async function preparedList<T>(ctx: Context, project: string, render: (views: Instance[]) => T, build: () => Promise<BuiltList>): Promise<T> {
  let lists = listsOf.get(ctx);
  if (!lists) listsOf.set(ctx, lists = { kept: new Map(), building: new Map() });
  // Taken before the build reads anything: a write after this mark changes the next request's.
  const inputs: Inputs = { store: storeChangeMark(ctx.db), watch: ctx.observed?.version };
  const kept = lists.kept.get(project);
  if (kept && kept.render === render && sameInputs(kept.inputs, inputs) && hostsFresh(ctx, kept.hosts) && await leasesStand(kept)) {
    return kept.value as T;
  }
  let b = lists.building.get(project);
  if (!b || b.render !== render || !sameInputs(b.inputs, inputs)) {
    const building: Building = { inputs, render, answer: buildAndKeep(lists, project, inputs, render, build) };
    lists.building.set(project, b = building);
    void building.answer.finally(() => { if (lists.building.get(project) === building) lists.building.delete(project); }).catch(() => undefined);
  }
  return b.answer as Promise<T>;
}

async function buildAndKeep<T>(lists: Lists, project: string, inputs: Inputs, render: (views: Instance[]) => T,
  build: () => Promise<BuiltList>): Promise<T> {
  const built = await build();
  const value = render(built.views);
  // Without a watch's version there is nothing to tell a changed state by: not kept.
  if (built.allObserved && inputs.watch !== undefined) {
    lists.kept.set(project, { inputs, render, value, hosts: built.hosts, leases: built.leases, leasesAt: Date.now(), readLeases: built.readLeases });
  } else {
    lists.kept.delete(project);
  }
  return value;
}

/** Each host's states are still followed fresh (a lost one also bumps the version; this holds without relying on it). */
function hostsFresh(ctx: Context, hosts: string[]): boolean {
  return hosts.every((h) => ctx.observed?.of(h) !== undefined);
}

/** The kept leases are young, or read again and found the same. */
async function leasesStand(kept: Kept): Promise<boolean> {
  if (Date.now() - kept.leasesAt <= LEASES_FRESH_MS) return true;
  kept.checking ??= kept.readLeases().then((now) => {
    const same = sameLeases(now, kept.leases);
    if (same) kept.leasesAt = Date.now();
    return same;
  }, () => false).finally(() => { kept.checking = undefined; });
  return kept.checking;
}

/** How InstanceService makes one instance's view (its state, addresses, why a host is silent, attached volumes). */
export type ViewOf = (r: InstanceRecord, observed: ObservedState, leases: Map<string, string>, why: string | undefined, attached: VolumeRecord[]) => Instance;

/** The views of `records`: states from the watch where followed (else asked, one listing per host), leases, volumes in one read each. */
export async function buildList(ctx: Context, records: InstanceRecord[], view: ViewOf): Promise<BuiltList> {
  const readLeases = () => dhcpAddresses(ctx, records);
  if (!records.length) return { views: [], hosts: [], allObserved: true, leases: new Map(), readLeases };
  const { states, silent } = await statesOf(ctx, records);
  const leases = await readLeases();
  const unknown = { state: 'unknown', observedAt: new Date().toISOString(), source: 'asked' } as const;
  const attached = attachedVolumes(ctx);
  const views = records.map((r) => view(r, states.get(r.name) ?? unknown, leases, silent.get(r.host), attached.get(r.name) ?? []));
  const allObserved = records.every((r) => { const s = states.get(r.name)?.source; return s !== undefined && s !== 'asked'; });
  return { views, hosts: [...new Set(records.map((r) => r.host))], allObserved, leases, readLeases };
}
