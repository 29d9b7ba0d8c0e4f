import { FirewallService } from '../../firewall.js';
import type { Change, Kind } from '../kind.js';

/** The edge router (the course's extra item 3): SNAT out, the public port DNATed to a load balancer, SSH to itself. */
export const edgeKind: Kind = {
  kind: 'edge',
  exclusive: true,
  pruned: 'no longer in the file',
  wanted: (dc) => (dc.edge ? [dc.edge.host] : []),

  async diff({ ctx, dc }) {
    const edge = dc.edge;
    if (!edge) return [];
    const owned = ctx.datacenterResources.owner('edge', edge.host);
    if (!owned) {
      const forwards = edge.forwards.map((f) => `, :${f.port} -> ${f.to}`).join('');
      return [{ action: 'create', kind: 'edge', name: edge.host, why: `route ${edge.outside} (${edge.public_address}) with SNAT${forwards}${edge.ssh ? ', SSH in' : ''}` }];
    }
    const drift = await new FirewallService(ctx).edgeDrift(dc);
    return drift.length ? [{ action: 'update', kind: 'edge', name: edge.host, why: drift.join('; ') } satisfies Change] : [];
  },

  async apply(_c, { ctx, dc }) {
    await new FirewallService(ctx).applyEdge(dc);
    return dc.edge;
  },

  async remove(host, _applied, { ctx }) {
    await new FirewallService(ctx).removeEdge(host);
  },
};
