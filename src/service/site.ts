import { join } from 'node:path';
import type { Context } from './context.js';
import { HostService } from './host.js';
import { bridgeNetworkState, ensureBridgeNetwork } from './bridge-networks.js';
import { DhcpServer } from '../drivers/net/dnsmasq.js';
import type { Virsh } from '../drivers/libvirt/virsh.js';
import { executorFor, describeShell, type ShellSpec } from '../exec/shells.js';
import { KumoError } from '../model/errors.js';
import { dhcpPlan } from '../model/lab.js';
import { interfaceOf, type HostNode, type HostsSpec } from '../model/hosts.js';
import type { HostRole } from '../model/roles.js';

/** A `network` resource's name: the hypervisor and the segment. */
export const networkResource = (node: string, seg: string) => `${node}:${seg}`;
export const parseNetworkResource = (name: string) => { const [node, seg] = name.split(':'); return { node: node!, seg: seg! }; };

/**
 * A datacenter file's `hosts:` made real: each node registered as a kumo host (as `kumo host
 * add` does), a libvirt bridge network per hypervisor and instance segment, and a DHCP server
 * per instance segment on the file's dhcp node (kumo must know instance addresses for the LB
 * and the access rules). Each method does one resource; PlanService decides which.
 */
export class SiteService {
  constructor(private readonly ctx: Context) {}

  /** How kumo reaches a file's node, as the hosts table records it (ctx.shellOf gives a registered host's Executor). */
  shellSpecOf(n: HostNode): ShellSpec {
    return n.ssh !== undefined ? { kind: 'ssh', destination: n.ssh } : { kind: 'netns', netns: n.netns! };
  }

  uriOf(n: HostNode): string | undefined {
    if (!n.roles.includes('hypervisor')) return undefined;
    return n.uri ?? `qemu+ssh://${n.ssh}/system`;
  }

  /** 'missing', or 'current'; a host of that name registered otherwise is an error naming the fix. */
  hostState(name: string, n: HostNode): 'missing' | 'current' {
    const have = this.ctx.hosts.get(name);
    if (!have) return 'missing';
    const want = { shell: this.shellSpecOf(n), uri: this.uriOf(n), roles: [...n.roles].sort() };
    const same = JSON.stringify(have.shell) === JSON.stringify(want.shell) && have.uri === want.uri && [...have.roles].sort().join() === want.roles.join();
    if (!same) {
      throw new KumoError('ALREADY_EXISTS',
        `host "${name}" is registered already as ${describeShell(have.shell)}${have.uri ? `, ${have.uri}` : ''}, roles ${have.roles.join(',')}; the file says ${describeShell(want.shell)}${want.uri ? `, ${want.uri}` : ''}, roles ${want.roles.join(',')}`,
        `make the file's node match, or remove the registration first (kumo host remove ${name})`);
    }
    return 'current';
  }

  async register(name: string, n: HostNode): Promise<void> {
    const uri = this.uriOf(n);
    await new HostService(this.ctx).add({
      name, roles: n.roles as HostRole[], shell: this.shellSpecOf(n),
      // Live migration goes to the hypervisor's first address, as in the lab.
      ...(uri ? { uri, migrationAddress: Object.values(n.links)[0]! } : {}),
    });
  }

  /** Unregisters a host the file made, unless instances still run there (they keep it). */
  unregister(name: string): void {
    if (!this.ctx.hosts.get(name) || this.ctx.instances.list().some((i) => i.host === name)) return;
    this.ctx.hosts.delete(name);
  }

  /** Hypervisor `node`'s libvirt network for segment `seg` (missing when the host is not registered yet). */
  async networkState(hosts: HostsSpec, node: string, seg: string): Promise<'missing' | 'inactive' | 'active'> {
    if (!this.ctx.hosts.get(node)) return 'missing';
    return bridgeNetworkState(this.virsh(hosts, node), seg);
  }

  async ensureNetwork(hosts: HostsSpec, node: string, seg: string): Promise<void> {
    await ensureBridgeNetwork(this.virsh(hosts, node), seg, interfaceOf(hosts, node, seg));
  }

  async removeNetwork(node: string, seg: string): Promise<void> {
    if (!this.ctx.hosts.get(node)?.uri) return; // its host is gone: nothing left to remove
    await this.ctx.virshFor(node).removeNetwork(seg);
  }

  /** 'running' only with dnsmasq up and the segment's lease file recorded. */
  async dhcpState(hosts: HostsSpec, seg: string): Promise<'missing' | 'down' | 'running'> {
    const subnet = this.ctx.networkSubnets.get(seg);
    if (!subnet?.leaseFile || subnet.leaseHost !== hosts.dhcp) return 'missing';
    return (await this.dhcpServer(hosts, seg).pid()) === undefined ? 'down' : 'running';
  }

  async ensureDhcp(hosts: HostsSpec, seg: string): Promise<void> {
    const server = this.dhcpServer(hosts, seg);
    await executorFor(this.shellSpecOf(hosts.nodes[hosts.dhcp]!)).run('mkdir', ['-p', '--', this.dhcpDir()]);
    await server.ensure();
    this.ctx.networkSubnets.upsert({ network: seg, cidr: hosts.segments[seg]!.cidr, leaseFile: server.leaseFile, leaseHost: hosts.dhcp });
  }

  /** Stops the segment's dnsmasq on the host that holds its lease file, and forgets the segment. */
  async removeDhcp(seg: string): Promise<void> {
    const host = this.ctx.networkSubnets.get(seg)?.leaseHost;
    if (host && this.ctx.hosts.get(host)) {
      // Only the pid file matters to stop it.
      await new DhcpServer({ link: seg, rangeStart: '', rangeEnd: '', dir: this.dhcpDir(), name: seg }, this.ctx.shellOf(host)).stop();
    }
    this.ctx.networkSubnets.delete(seg);
  }

  /** Segments without instances are recorded too (no lease file): a share's CIDR comes from there. */
  recordSubnets(hosts: HostsSpec): void {
    for (const [seg, s] of Object.entries(hosts.segments)) {
      if (!s.instances && this.ctx.networkSubnets.get(seg)?.cidr !== s.cidr) this.ctx.networkSubnets.upsert({ network: seg, cidr: s.cidr });
    }
  }

  forgetSubnets(hosts: HostsSpec): void {
    for (const [seg, s] of Object.entries(hosts.segments)) if (!s.instances && !this.ctx.networkSubnets.get(seg)?.leaseFile) this.ctx.networkSubnets.delete(seg);
  }

  private dhcpServer(hosts: HostsSpec, seg: string): DhcpServer {
    const plan = dhcpPlan(hosts.segments[seg]!.cidr);
    return new DhcpServer({ link: interfaceOf(hosts, hosts.dhcp, seg), rangeStart: plan.start, rangeEnd: plan.end, dir: this.dhcpDir(), name: seg },
      executorFor(this.shellSpecOf(hosts.nodes[hosts.dhcp]!)));
  }

  /** On the dhcp node's own filesystem. */
  private dhcpDir(): string {
    return join(this.ctx.paths.home, 'site', 'dhcp');
  }

  private virsh(hosts: HostsSpec, node: string): Virsh {
    return this.ctx.virshAt(this.uriOf(hosts.nodes[node]!)!);
  }
}
