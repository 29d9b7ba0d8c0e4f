import type { Context } from './context.js';
import { Nftables, type NftRule, type NftTable, type RuleCounter } from '../drivers/net/nftables.js';
import { EdgeRouter, edgeFilterTable, edgeNatTable, type EdgeSpec } from '../drivers/net/router.js';
import { KumoError } from '../model/errors.js';
import { topologyOf, type Datacenter } from '../model/datacenter.js';
import { interfaceOf } from '../model/hosts-spec.js';
import { dhcpPlan } from '../model/lab.js';

/** A table as nft text, for the faces to show the rules derived from a file. */
export { renderTable } from '../drivers/net/nftables.js';

/** The rules of one host: kumo's own nftables tables there, nothing else is touched. */
export interface HostRules {
  host: string;
  tables: NftTable[];
}

export interface LiveTable {
  host: string;
  family: string;
  name: string;
  /** false: what runs there differs from what the file asks for (apply re-applies it). */
  current: boolean;
  counters: RuleCounter[];
}

/** Where one of kumo's tables is loaded. */
export interface TableRef {
  host: string;
  family: NftTable['family'];
  name: string;
}

/** The edge router of a file: its EdgeSpec and the tables EdgeRouter.enable loads (NAT, then filter). */
export interface EdgeRules {
  host: string;
  spec: EdgeSpec;
  tables: NftTable[];
}

const TABLE = 'kumo';
const EDGE_NAT = 'kumo-nat';
const EDGE_FILTER = 'kumo-edge';
const base = { type: 'filter', priority: 'filter' } as const;
const guarded = (rules: NftRule[]): NftRule[] => [
  { id: 'lo', iif: 'lo', action: 'accept' },
  { id: 'established', ct: ['established', 'related'], action: 'accept' },
  ...rules,
  { id: 'input-drop', action: 'drop' },
];

/**
 * Access rules of the course datacenter, derived from the file and enforced with nftables on
 * the nodes themselves (never trusting the guests):
 * - LB hosts: in, only each load balancer's frontend port on its frontend address; no forwarding;
 * - hypervisors: on their bridges, instances' backend port only from the LB's backend address
 *   (a `bridge` table: it also sees traffic between instances of one bridge);
 * - storage hosts: NFS (2049) only from the instances' DHCP pools of the shares' networks;
 * - what the file's `firewall.allow` opens on an lb or storage node, from a segment or CIDR;
 * - the edge router (deriveEdge): SNAT of its inside segments out of the outside one, each public
 *   port DNATed to a load balancer's frontend, SSH from outside to itself only, nothing else forwarded.
 * Addresses come from the file's topology: its lab's or its hosts'.
 */
export class FirewallService {
  constructor(private readonly ctx: Context) {}

  derive(dc: Datacenter): HostRules[] {
    const lab = topologyOf(dc);
    if (!lab) {
      if (Object.keys(dc.loadbalancers).length || Object.keys(dc.shares).length) {
        throw new KumoError('INVALID_INPUT', 'access rules are derived from the topology\'s addresses; this file has neither lab nor hosts',
          'add `lab: course` (one machine) or `hosts:` (real hosts)');
      }
      return [];
    }
    const out: HostRules[] = [];
    // Nodes whose input is filtered, with what each lets in.
    const inputs = new Map<string, NftRule[]>();
    const open = (node: string, rules: NftRule[]) => inputs.set(node, [...(inputs.get(node) ?? []), ...rules]);
    const lbs = Object.entries(dc.loadbalancers);
    // By destination only: with an edge, forwarded clients keep their outside source address
    // (DNAT, no SNAT) and arrive on the LB's inside segment; they match this too.
    for (const [name, l] of lbs) open(l.host, [{ id: `lb-${name}`, daddr: l.frontend.address, proto: 'tcp', dport: l.frontend.port, action: 'accept' }]);
    const shareNetworks = [...new Set(Object.values(dc.shares).flatMap((s) => s.networks))];
    if (shareNetworks.length) {
      const pools = shareNetworks.filter((net) => lab.segments[net]?.instances).map((net) => dhcpPlan(lab.segments[net]!.cidr).pool);
      for (const [node] of Object.entries(lab.nodes).filter(([, x]) => x.roles.includes('storage'))) {
        open(node, pools.length ? [{ id: 'nfs-from-instances', saddr: pools, proto: 'tcp', dport: 2049, action: 'accept' }] : []);
      }
    }
    // What the file opens explicitly (firewall.allow), from a segment or a CIDR.
    dc.firewall.allow.forEach((a, k) => open(a.host, [{ id: `allow-${k + 1}`, saddr: lab.segments[a.from]?.cidr ?? a.from, proto: a.proto, dport: a.port, action: 'accept' }]));
    for (const [host, rules] of inputs) {
      out.push({ host, tables: [{
        family: 'inet', name: TABLE,
        chains: [
          { name: 'input', base: { ...base, hook: 'input', policy: 'drop' }, rules: guarded(rules) },
          { name: 'forward', base: { ...base, hook: 'forward', policy: 'drop' }, rules: [{ id: 'forward-drop', action: 'drop' }] },
        ],
      }] });
    }
    for (const [node, n] of Object.entries(lab.nodes).filter(([, x]) => x.roles.includes('hypervisor'))) {
      const rules: NftRule[] = [];
      for (const [name, l] of lbs.filter(([, x]) => x.network in n.links)) {
        const from = lab.nodes[l.host]?.links[l.network];
        if (from) rules.push({ id: `from-lb-${name}`, oif: 'vnet*', saddr: from, proto: 'tcp', dport: l.backend_port, action: 'accept' });
        rules.push({ id: `to-instances-${name}`, oif: 'vnet*', proto: 'tcp', dport: l.backend_port, action: 'drop' });
      }
      if (rules.length) {
        out.push({ host: node, tables: [{ family: 'bridge', name: TABLE, chains: [{ name: 'forward', base: { ...base, hook: 'forward', policy: 'accept' }, rules }] }] });
      }
    }
    return out;
  }

  /** The file's edge router, or none, on the node's interfaces (a lab node's are named after their segments). */
  deriveEdge(dc: Datacenter): EdgeRules | undefined {
    const edge = dc.edge;
    if (!edge) return undefined;
    const lab = topologyOf(dc);
    const node = lab?.nodes[edge.host];
    if (!lab || !node) {
      throw new KumoError('INVALID_INPUT', `the edge router "${edge.host}" is not a node of the file's lab or hosts`, 'add a node with role edge and name it under edge.host');
    }
    const spec: EdgeSpec = {
      outside: interfaceOf(lab, edge.host, edge.outside), publicAddress: edge.public_address, natTable: EDGE_NAT,
      internal: Object.keys(node.links).filter((seg) => seg !== edge.outside).map((seg) => lab.segments[seg]!.cidr),
      forwards: edge.forwards.map((f) => {
        const lb = dc.loadbalancers[f.to]!;
        return { proto: 'tcp', port: f.port, to: lb.frontend.address, toPort: lb.frontend.port };
      }),
    };
    return { host: edge.host, spec, tables: [edgeNatTable(spec), edgeFilterTable(spec, { ssh: edge.ssh, name: EDGE_FILTER })] };
  }

  /** What differs on the edge node from the file's edge (empty: it routes as asked). */
  async edgeDrift(dc: Datacenter): Promise<string[]> {
    const e = this.deriveEdge(dc);
    if (!e) return [];
    if (!this.ctx.hosts.get(e.host)) return [`host ${e.host} is not registered`];
    const router = new EdgeRouter(this.ctx.shellOf(e.host));
    const out: string[] = [];
    for (const t of e.tables) if (!(await router.nft.matches(t))) out.push(`table ${t.family} ${t.name} differs`);
    if (!(await router.ipForwarding())) out.push('IPv4 forwarding is off');
    return out;
  }

  /** NAT and filter in one transaction, then forwarding on (EdgeRouter.enable). */
  async applyEdge(dc: Datacenter): Promise<void> {
    const e = this.deriveEdge(dc);
    if (!e) return;
    await new EdgeRouter(this.ctx.shellOf(e.host)).enable(e.spec, e.tables.slice(1));
  }

  /** Forwarding off, then the edge's tables go (a host that is gone has nothing left to remove). */
  async removeEdge(host: string): Promise<void> {
    if (!this.ctx.hosts.get(host)) return;
    const router = new EdgeRouter(this.ctx.shellOf(host));
    await router.disable(EDGE_NAT);
    await router.nft.delete('inet', EDGE_FILTER);
  }

  /** Hosts whose kumo tables differ from the file's. */
  async drift(dc: Datacenter): Promise<string[]> {
    const stale: string[] = [];
    for (const h of this.derive(dc)) {
      if (!this.ctx.hosts.get(h.host)) { stale.push(h.host); continue; }
      const nft = new Nftables(this.ctx.shellOf(h.host));
      for (const t of h.tables) if (!(await nft.matches(t))) { stale.push(h.host); break; }
    }
    return stale;
  }

  /** Loads the file's tables on every host (atomically per host; unchanged ones stay, counters too). */
  async apply(dc: Datacenter): Promise<void> {
    for (const h of this.derive(dc)) await new Nftables(this.ctx.shellOf(h.host)).apply(h.tables);
  }

  /** The file's tables as they run, with packet counters per rule. */
  async show(dc: Datacenter): Promise<LiveTable[]> {
    const out: LiveTable[] = [];
    for (const h of this.derive(dc)) {
      const nft = new Nftables(this.ctx.shellOf(h.host));
      for (const t of h.tables) {
        out.push({ host: h.host, family: t.family, name: t.name, current: await nft.matches(t), counters: await nft.counters(t.family, t.name) });
      }
    }
    const e = this.deriveEdge(dc);
    if (e && this.ctx.hosts.get(e.host)) {
      const nft = new Nftables(this.ctx.shellOf(e.host));
      for (const t of e.tables) {
        out.push({ host: e.host, family: t.family, name: t.name, current: await nft.matches(t), counters: await nft.counters(t.family, t.name) });
      }
    }
    return out;
  }

  /** Deletes kumo's tables named (on hosts still registered; a table already gone is fine). */
  async removeTables(tables: TableRef[]): Promise<void> {
    for (const t of tables) {
      if (!this.ctx.hosts.get(t.host)) continue;
      await new Nftables(this.ctx.shellOf(t.host)).delete(t.family, t.name).catch(() => undefined);
    }
  }
}
