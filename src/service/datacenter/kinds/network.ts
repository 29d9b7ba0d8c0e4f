import { hypervisorSegments } from '../../../model/topology.js';
import { interfaceOf } from '../../../model/hosts-spec.js';
import { bridgeNetworkStateIn, ensureBridgeNetwork } from '../../bridge-networks.js';
import { nodeVirsh } from './host.js';
import type { Change, Kind } from '../kind.js';

/** A `network` resource's name: the hypervisor and the segment. */
export const networkResource = (node: string, seg: string) => `${node}:${seg}`;
const parse = (name: string) => { const [node, seg] = name.split(':'); return { node: node!, seg: seg! }; };

/** A libvirt bridge network per hypervisor of the file's hosts and instance segment it links. */
export const networkKind: Kind = {
  kind: 'network',
  exclusive: true,
  pruned: 'no longer in the file\'s hosts',
  wanted: (dc) => (dc.hosts ? hypervisorSegments(dc.hosts).map(([node, seg]) => networkResource(node, seg)) : []),

  async diff({ ctx, dc }) {
    const hosts = dc.hosts;
    if (!hosts) return [];
    const pairs = hypervisorSegments(hosts);
    // One listing per hypervisor, all at once; missing while its host is not registered yet.
    const nodes = [...new Set(pairs.map(([node]) => node))].filter((node) => ctx.hosts.get(node));
    const listed = new Map(await Promise.all(nodes.map(async (node) => [node, await nodeVirsh(ctx, hosts, node).listNetworks()] as const)));
    const out: Change[] = [];
    for (const [node, seg] of pairs) {
      const state = bridgeNetworkStateIn(listed.get(node) ?? [], seg);
      const name = networkResource(node, seg);
      if (state === 'missing') out.push({ action: 'create', kind: 'network', name, why: `libvirt bridge network ${seg} on ${node}` });
      else if (state === 'inactive') out.push({ action: 'update', kind: 'network', name, why: 'it is not active' });
    }
    return out;
  },

  async apply(c, { ctx, dc }) {
    const { node, seg } = parse(c.name);
    await ensureBridgeNetwork(nodeVirsh(ctx, dc.hosts!, node), seg, interfaceOf(dc.hosts!, node, seg));
    return { node, seg };
  },

  async remove(name, _applied, { ctx }) {
    const { node, seg } = parse(name);
    if (!ctx.hosts.get(node)?.uri) return; // its host is gone: nothing left to remove
    await ctx.virshFor(node).removeNetwork(seg);
  },
};
