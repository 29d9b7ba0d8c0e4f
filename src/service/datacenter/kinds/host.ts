import type { Context } from '../../context.js';
import { HostService } from '../../host.js';
import { describeShell, type ShellSpec } from '../../../exec/shells.js';
import { KumoError } from '../../../model/errors.js';
import type { HostNode, HostsSpec } from '../../../model/hosts-spec.js';
import type { HostRole } from '../../../model/roles.js';
import type { Kind } from '../kind.js';

/** How kumo reaches a node of the file's hosts: ssh, or a network namespace of this machine. */
export const nodeShell = (n: HostNode): ShellSpec => (n.ssh !== undefined ? { kind: 'ssh', destination: n.ssh } : { kind: 'netns', netns: n.netns! });

/** A hypervisor node's libvirt URI (the file's, else qemu+ssh to its ssh login); none for other nodes. */
export function nodeUri(n: HostNode): string | undefined {
  if (!n.roles.includes('hypervisor')) return undefined;
  return n.uri ?? `qemu+ssh://${n.ssh}/system`;
}

/** The segments of the file's hosts without instances: recorded for shares' CIDRs. */
const plainSegments = (hosts: HostsSpec | undefined) => Object.entries(hosts?.segments ?? {}).filter(([, s]) => !s.instances).map(([seg]) => seg);

/** 'missing', or 'current'; a host of that name registered otherwise is a problem naming the fix. */
function hostState(ctx: Context, name: string, n: HostNode): 'missing' | 'current' | KumoError {
  const have = ctx.hosts.get(name);
  if (!have) return 'missing';
  const want = { shell: nodeShell(n), uri: nodeUri(n), roles: [...n.roles].sort() };
  const same = JSON.stringify(have.shell) === JSON.stringify(want.shell) && have.uri === want.uri && [...have.roles].sort().join() === want.roles.join();
  if (!same) {
    return new KumoError('ALREADY_EXISTS',
      `host "${name}" is registered already as ${describeShell(have.shell)}${have.uri ? `, ${have.uri}` : ''}, roles ${have.roles.join(',')}; the file says ${describeShell(want.shell)}${want.uri ? `, ${want.uri}` : ''}, roles ${want.roles.join(',')}`,
      `make the file's node match, or remove the registration first (kumo host remove ${name})`);
  }
  return 'current';
}

/** Segments without instances are recorded too (no lease file): a share's CIDR comes from there. */
function recordSubnets(ctx: Context, hosts: HostsSpec): void {
  for (const [seg, s] of Object.entries(hosts.segments)) {
    if (!s.instances && ctx.networkSubnets.get(seg)?.cidr !== s.cidr) ctx.networkSubnets.upsert({ network: seg, cidr: s.cidr });
  }
}

/** Forgets recorded segments without instances (a segment with a lease file belongs to its DHCP server). */
function forgetSubnets(ctx: Context, segments: string[]): void {
  for (const seg of segments) {
    const s = ctx.networkSubnets.get(seg);
    if (s && !s.leaseFile) ctx.networkSubnets.delete(seg);
  }
}

/** A node of the file's `hosts:`, registered as a kumo host (as `kumo host add` does). */
export const hostKind: Kind = {
  kind: 'host',
  exclusive: true,
  pruned: 'no longer in the file\'s hosts',
  wanted: (dc) => Object.keys(dc.hosts?.nodes ?? {}),

  async diff({ ctx, dc, refuse }) {
    return Object.entries(dc.hosts?.nodes ?? {}).filter(([name, n]) => {
      const state = hostState(ctx, name, n);
      if (state instanceof KumoError) refuse(['hosts', 'nodes', name], state);
      return state === 'missing';
    }).map(([name, n]) => ({
      action: 'create' as const, kind: 'host' as const, name,
      why: `${n.roles.join(',')} via ${n.ssh !== undefined ? `ssh ${n.ssh}` : `netns ${n.netns}`}${nodeUri(n) ? `, ${nodeUri(n)}` : ''}`,
    }));
  },

  // A share's CIDR comes from network_subnets: record the hosts' segments (a record, not a resource).
  async prepare({ ctx, dc }) {
    if (dc.hosts) recordSubnets(ctx, dc.hosts);
  },

  async apply(c, { ctx, dc }) {
    const node = dc.hosts!.nodes[c.name]!;
    const uri = nodeUri(node);
    await new HostService(ctx).add({
      name: c.name, roles: node.roles as HostRole[], shell: nodeShell(node),
      // Live migration goes to the hypervisor's first address, as in the lab.
      ...(uri ? { uri, migrationAddress: Object.values(node.links)[0]! } : {}),
    });
    return { node, segments: plainSegments(dc.hosts) };
  },

  // Unregistered unless instances still run there (they keep it).
  async remove(name, applied, { ctx, dc }) {
    if (ctx.hosts.get(name) && !ctx.instances.list().some((i) => i.host === name)) ctx.hosts.delete(name);
    const recorded = (applied as { segments?: string[] } | undefined)?.segments ?? [];
    forgetSubnets(ctx, [...new Set([...recorded, ...plainSegments(dc.hosts)])]);
  },
};

/** The libvirt of a hypervisor node of the file's hosts, reached at its URI. */
export const nodeVirsh = (ctx: Context, hosts: HostsSpec, node: string) => ctx.virshAt(nodeUri(hosts.nodes[node]!)!);

