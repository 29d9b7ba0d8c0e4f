import { type Executor, local } from '../../exec/exec.js';
import { KumoError, invalid } from '../../model/errors.js';
import { type ApplyOutcome, type NftRule, type NftTable, Nftables, checkAddr, checkIfname, checkName, checkPort } from './nftables.js';

/**
 * What an edge router node needs besides its filter rules: IPv4 forwarding (a per-network-namespace
 * sysctl, set through the node's executor), source NAT of internal networks out of the outside
 * interface, and port forwards (DNAT) from the outside to internal nodes such as the LB.
 */

export interface PortForward {
  readonly proto: 'tcp' | 'udp';
  /** The public port on the router. */
  readonly port: number;
  /** The internal node it goes to, and its port (default: the same). */
  readonly to: string;
  readonly toPort?: number;
}

export interface EdgeSpec {
  /** The interface facing the outside network. */
  readonly outside: string;
  /** The router's address there: forwards match only it, and SNAT uses it. Without it: masquerade. */
  readonly publicAddress?: string;
  /** Networks whose traffic to the outside is source-NATed and let through. */
  readonly internal: readonly string[];
  readonly forwards: readonly PortForward[];
  /** The ip-family NAT table's name (default kumo-nat). */
  readonly natTable?: string;
}

export function checkEdgeSpec(spec: EdgeSpec): void {
  checkIfname(spec.outside, 'edge router outside interface');
  if (spec.outside.endsWith('*')) throw invalid('edge router: the outside interface must be one interface, not a prefix', 'name the interface, e.g. eth0');
  if (spec.publicAddress !== undefined) {
    const a = checkAddr(spec.publicAddress, 'edge router public address');
    if (a.first !== a.last) throw invalid(`edge router: public address ${spec.publicAddress} is a network`, 'write the router\'s own address, e.g. 10.5.1.1');
  }
  if (spec.internal.length === 0) throw invalid('edge router: no internal networks to route', 'list the internal networks, e.g. ["10.5.2.0/24"]');
  spec.internal.forEach((c) => checkAddr(c, 'edge router internal network'));
  const ports = new Set<string>();
  for (const f of spec.forwards) {
    const where = `edge router forward of ${f.proto} ${f.port}`;
    if (f.proto !== 'tcp' && f.proto !== 'udp') throw invalid(`${where}: protocol ${JSON.stringify(f.proto)} is not supported`, 'use tcp or udp');
    checkPort(f.port, where);
    if (f.toPort !== undefined) checkPort(f.toPort, where);
    const to = checkAddr(f.to, where);
    if (to.first !== to.last) throw invalid(`${where}: ${f.to} is a network`, 'forward to one node\'s address, e.g. 10.5.2.10');
    if (ports.has(`${f.proto}/${f.port}`)) throw invalid(`${where}: the port is forwarded twice`, 'forward each public port to one node');
    ports.add(`${f.proto}/${f.port}`);
  }
  checkName(spec.natTable ?? 'kumo-nat', 'edge router NAT table');
}

const forwardId = (f: PortForward) => `fwd-${f.proto}-${f.port}`;

/** The router's NAT table (family ip): DNAT of each public port, SNAT/masquerade of the internal networks. */
export function edgeNatTable(spec: EdgeSpec): NftTable {
  checkEdgeSpec(spec);
  const dnat: NftRule[] = spec.forwards.map((f) => ({
    id: `dnat-${f.proto}-${f.port}`, iif: spec.outside,
    ...(spec.publicAddress ? { daddr: spec.publicAddress } : {}),
    proto: f.proto, dport: f.port, action: { dnat: f.to, port: f.toPort ?? f.port },
  }));
  return {
    family: 'ip', name: spec.natTable ?? 'kumo-nat',
    chains: [
      { name: 'prerouting', base: { type: 'nat', hook: 'prerouting', priority: 'dstnat' }, rules: dnat },
      {
        name: 'postrouting', base: { type: 'nat', hook: 'postrouting', priority: 'srcnat' },
        rules: [{
          id: 'snat-out', oif: spec.outside, saddr: spec.internal,
          // A fixed public address: snat (no per-packet address lookup); otherwise follow the interface.
          action: spec.publicAddress ? { snat: spec.publicAddress } : 'masquerade',
        }],
      },
    ],
  };
}

/**
 * Rules for the router's filter forward chain (put them before a final drop): replies, the
 * port forwards (only connections the NAT table translated), and internal networks going out.
 */
export function edgeForwardRules(spec: EdgeSpec): NftRule[] {
  checkEdgeSpec(spec);
  return [
    { id: 'fwd-established', ct: ['established', 'related'], action: 'accept' },
    { id: 'fwd-invalid', ct: ['invalid'], action: 'drop' },
    ...spec.forwards.map((f): NftRule => ({
      id: forwardId(f), iif: spec.outside, daddr: f.to, proto: f.proto, dport: f.toPort ?? f.port, ctStatus: 'dnat', action: 'accept',
    })),
    { id: 'fwd-internal-out', iif: { not: spec.outside }, oif: spec.outside, saddr: spec.internal, action: 'accept' },
  ];
}

const FORWARD_KEY = 'net.ipv4.ip_forward';

/** An edge router node reached through its executor (its network namespace, or ssh). */
export class EdgeRouter {
  readonly nft: Nftables;

  constructor(private readonly exec: Executor = local, nft?: Nftables) {
    this.nft = nft ?? new Nftables(exec);
  }

  async ipForwarding(): Promise<boolean> {
    const r = await this.exec.run('sysctl', ['-n', FORWARD_KEY]);
    return r.stdout.trim() === '1';
  }

  async setIpForwarding(on: boolean): Promise<void> {
    await this.exec.run('sysctl', ['-q', '-w', `${FORWARD_KEY}=${on ? 1 : 0}`]);
    if ((await this.ipForwarding()) !== on) {
      throw new KumoError('COMMAND_FAILED', `${FORWARD_KEY} did not change to ${on ? 1 : 0} on ${this.exec.description}`,
        'the node may run in a container that forbids it: set it on the host or allow sysctl writes');
    }
  }

  /**
   * Makes the node route: NAT table and the given filter tables in one transaction first, then
   * forwarding on, so the node never forwards without its rules.
   */
  async enable(spec: EdgeSpec, filters: readonly NftTable[] = []): Promise<ApplyOutcome[]> {
    const outcomes = await this.nft.apply([edgeNatTable(spec), ...filters]);
    await this.setIpForwarding(true);
    return outcomes;
  }

  /**
   * Stops forwarding first (nothing passes un-NATed or unfiltered meanwhile), then removes the
   * NAT table. Filter tables are the caller's to delete: the node's own input rules may outlive routing.
   */
  async disable(natTable = 'kumo-nat'): Promise<void> {
    checkName(natTable, 'edge router NAT table');
    await this.setIpForwarding(false);
    await this.nft.delete('ip', natTable);
  }
}

/**
 * The router's own filter table (family inet): in, only SSH from the outside (when asked) plus
 * loopback and replies; forward, edgeForwardRules then drop. Named apart from a node's `kumo`
 * table so an edge that is also an LB host keeps both.
 */
export function edgeFilterTable(spec: EdgeSpec, options: { ssh: boolean; name?: string }): NftTable {
  checkEdgeSpec(spec);
  const name = options.name ?? 'kumo-edge';
  checkName(name, 'edge router filter table');
  const filter = { type: 'filter', priority: 'filter' } as const;
  return {
    family: 'inet', name,
    chains: [
      { name: 'input', base: { ...filter, hook: 'input', policy: 'drop' }, rules: [
        { id: 'in-lo', iif: 'lo', action: 'accept' },
        { id: 'in-established', ct: ['established', 'related'], action: 'accept' },
        ...(options.ssh ? [{ id: 'in-ssh-outside', iif: spec.outside, proto: 'tcp', dport: 22, action: 'accept' } satisfies NftRule] : []),
        { id: 'in-drop', action: 'drop' },
      ] },
      { name: 'forward', base: { ...filter, hook: 'forward', policy: 'drop' }, rules: [...edgeForwardRules(spec), { id: 'fwd-drop', action: 'drop' }] },
    ],
  };
}
