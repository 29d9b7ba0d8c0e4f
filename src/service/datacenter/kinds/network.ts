import { hypervisorSegments } from '../../../model/topology.js';
import { interfaceOf } from '../../../model/hosts-spec.js';
import { bridgeNetworkState, ensureBridgeNetwork } from '../../bridge-networks.js';
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
    if (!dc.hosts) return [];
    const out: Change[] = [];
    for (const [node, seg] of hypervisorSegments(dc.hosts)) {
      // Missing while its host is not registered yet.
      const state = ctx.hosts.get(node) ? await bridgeNetworkState(nodeVirsh(ctx, dc.hosts, node), seg) : 'missing';
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
