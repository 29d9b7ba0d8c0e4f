import { FirewallService, type TableRef } from '../../firewall.js';
import type { Kind } from '../kind.js';

/** Which tables apply loaded where: what destroy deletes, whatever the file says by then. */
interface AppliedRules {
  tables: TableRef[];
}

/** The access rules derived from the file (nftables on its nodes), one resource per file, loaded last. */
export const firewallKind: Kind = {
  kind: 'firewall',
  exclusive: false,
  wanted: (dc) => [dc.name],

  async diff({ ctx, dc }) {
    const firewall = new FirewallService(ctx);
    if (!firewall.derive(dc).length) return [];
    const stale = await firewall.drift(dc);
    if (!stale.length) return [];
    const action = ctx.datacenterResources.owner('firewall', dc.name) ? 'update' : 'create';
    return [{ action, kind: 'firewall', name: dc.name, why: `access rules to load on ${stale.join(', ')}` }];
  },

  async apply(_c, { ctx, dc }) {
    const firewall = new FirewallService(ctx);
    await firewall.apply(dc);
    return { tables: firewall.derive(dc).flatMap((h) => h.tables.map((t) => ({ host: h.host, family: t.family, name: t.name }))) } satisfies AppliedRules;
  },

  async remove(_name, applied, { ctx, dc }) {
    const firewall = new FirewallService(ctx);
    const tables = (applied as AppliedRules | undefined)?.tables
      ?? firewall.derive(dc).flatMap((h) => h.tables.map((t) => ({ host: h.host, family: t.family, name: t.name })));
    await firewall.removeTables(tables);
  },
};
