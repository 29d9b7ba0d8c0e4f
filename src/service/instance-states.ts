import type { Context } from './context.js';
import type { Virsh } from '../drivers/libvirt/virsh.js';
import { KumoError } from '../model/errors.js';
import type { ObservedState } from '../model/types.js';
import type { InstanceRecord } from '../store/instances.js';
import type { VolumeRecord } from '../store/volumes.js';

/** Why a host's libvirt gave no answer, for the drift line: a stalled one is told apart from a dead one. */
const unanswered = (e: unknown) => (e instanceof KumoError && e.code === 'TIMEOUT' ? ` in time (${e.message})` : '');

const asked = (state: ObservedState['state'], at: string): ObservedState => ({ state, observedAt: at, source: 'asked' });

/**
 * Each record's state, by instance name, with how fresh it is: from the followed events where
 * the host's are known fresh (the API server), else one listing per host asked now (the CLI, a
 * host lost or not followed). A host that does not answer leaves its instances 'unknown', not
 * gone; `silent` says why, per host.
 */
export async function statesOf(ctx: Context, records: InstanceRecord[]): Promise<{ states: Map<string, ObservedState>; silent: Map<string, string> }> {
  const states = new Map<string, ObservedState>();
  const silent = new Map<string, string>();
  for (const host of new Set(records.map((r) => r.host))) {
    const mine = records.filter((x) => x.host === host);
    const observed = ctx.observed?.of(host);
    if (observed) {
      for (const r of mine) states.set(r.name, observed(r.uuid));
      continue;
    }
    const at = new Date().toISOString();
    const listed = await ctx.virshFor(host).listDomains().catch((e: unknown) => void silent.set(host, unanswered(e)));
    for (const r of mine) states.set(r.name, asked(listed ? (listed.find((d) => d.uuid === r.uuid)?.state ?? 'missing') : 'unknown', at));
  }
  return { states, silent };
}

/** One instance's state: from the followed events where fresh, else asked of its libvirt now ('unknown' when it does not answer). */
export async function stateOf(ctx: Context, r: InstanceRecord, virsh: Virsh, id: string, ask = false): Promise<ObservedState> {
  const observed = ask ? undefined : ctx.observed?.of(r.host);
  if (observed) return observed(r.uuid);
  const at = new Date().toISOString();
  return asked(await virsh.domainState(id).catch(() => 'unknown' as const), at);
}

/** Every attached volume by instance, in device order: one read for a whole list, not a query per instance (a fifth of a 1,000-row list's time). */
export function attachedVolumes(ctx: Context): Map<string, VolumeRecord[]> {
  const attached = new Map<string, VolumeRecord[]>();
  for (const v of ctx.volumes.list().sort((a, b) => (a.target ?? '').localeCompare(b.target ?? ''))) {
    if (v.instance) attached.set(v.instance, [...(attached.get(v.instance) ?? []), v]);
  }
  return attached;
}
