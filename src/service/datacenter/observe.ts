import type { Context } from '../context.js';
import type { HostView } from '../host.js';
import { statesOf } from '../instance-states.js';
import type { InstanceRecord } from '../../store/instances.js';

/**
 * What plan reads of the hypervisors, every host at once: each read is one round trip on the
 * host's persistent protocol connection (Context.libvirt), so a plan's cost grows with the
 * slowest host, not with their number; never a process per host or a question per instance.
 */

const byHost = <T extends { host: string }>(items: T[]): Map<string, T[]> => {
  const out = new Map<string, T[]>();
  for (const i of items) out.set(i.host, [...(out.get(i.host) ?? []), i]);
  return out;
};

/**
 * The state of each of the project's instances (name → state), from one listing per host, all
 * hosts in parallel. Only states: plan needs neither addresses nor volumes, which a full
 * instance list also reads.
 */
export async function instanceStates(ctx: Context, project: string): Promise<Map<string, string>> {
  const perHost = await Promise.all([...byHost(ctx.instances.list(project)).values()].map((records) => statesOf(ctx, records)));
  return new Map(perHost.flatMap(({ states }) => [...states].map(([name, s]) => [name, s.state] as const)));
}

/**
 * The hosts as placement sees them (chooseHost): capacity from one node-info read per
 * hypervisor, all in parallel, and what kumo's instances (every project's) were given, counted
 * from one read of the records. A host that does not answer is down, with why. Unlike `kumo host
 * list` it leaves out what placement does not use (the anti-spoofing probe, the shells of
 * nodes without libvirt).
 */
export async function placementHosts(ctx: Context): Promise<HostView[]> {
  const given = byHost<InstanceRecord>(ctx.instances.list());
  return Promise.all(ctx.hosts.list().map(async (h): Promise<HostView> => {
    const mine = given.get(h.name) ?? [];
    let why: string | undefined;
    const node = h.uri ? await ctx.virshFor(h.name).nodeInfo().catch((e: unknown) => void (why = (e as Error).message)) : undefined;
    return {
      ...h, up: node !== undefined, ...(why ? { why } : {}),
      ...(node ? { cpus: node.cpus, memoryMiB: node.memoryMiB } : {}),
      allocatedVcpus: mine.reduce((n, i) => n + i.vcpus, 0),
      allocatedMiB: mine.reduce((n, i) => n + i.ramMiB, 0),
      instances: mine.length,
    };
  }));
}
