import { join } from 'node:path';
import type { Context } from '../../context.js';
import { DhcpServer } from '../../../drivers/daemons/dnsmasq.js';
import { executorFor } from '../../../exec/shells.js';
import { interfaceOf, type HostsSpec } from '../../../model/hosts-spec.js';
import { dhcpPlan } from '../../../model/lab.js';
import type { Change, Kind } from '../kind.js';
import { nodeShell } from './host.js';
import { admitNetworkToDhcp } from '../../leases.js';

/** On the dhcp node's own filesystem. */
const dhcpDir = (ctx: Context) => join(ctx.paths.home, 'site', 'dhcp');

function dhcpServer(ctx: Context, hosts: HostsSpec, seg: string): DhcpServer {
  const plan = dhcpPlan(hosts.segments[seg]!.cidr);
  return new DhcpServer({ link: interfaceOf(hosts, hosts.dhcp, seg), rangeStart: plan.start, rangeEnd: plan.end, dir: dhcpDir(ctx), name: seg, knownOnly: true },
    executorFor(nodeShell(hosts.nodes[hosts.dhcp]!)));
}

/** 'running' only with dnsmasq up and the segment's lease file recorded. */
async function dhcpState(ctx: Context, hosts: HostsSpec, seg: string): Promise<'missing' | 'down' | 'running'> {
  const subnet = ctx.networkSubnets.get(seg);
  if (!subnet?.leaseFile || subnet.leaseHost !== hosts.dhcp) return 'missing';
  return (await dhcpServer(ctx, hosts, seg).pid()) === undefined ? 'down' : 'running';
}

/**
 * A DHCP server (dnsmasq on the file's dhcp node) per instance segment of the file's hosts:
 * kumo must know instance addresses for the LB and the access rules. network_subnets records
 * its lease file and the host that holds it, where instance addresses are read.
 */
export const dhcpKind: Kind = {
  kind: 'dhcp',
  exclusive: true,
  pruned: 'no longer an instance segment of the file\'s hosts',
  wanted: (dc) => Object.entries(dc.hosts?.segments ?? {}).filter(([, s]) => s.instances).map(([seg]) => seg),

  async diff({ ctx, dc }) {
    const hosts = dc.hosts;
    if (!hosts) return [];
    const out: Change[] = [];
    for (const seg of dhcpKind.wanted(dc)) {
      const state = await dhcpState(ctx, hosts, seg);
      const pool = dhcpPlan(hosts.segments[seg]!.cidr);
      if (state === 'missing') out.push({ action: 'create', kind: 'dhcp', name: seg, why: `dnsmasq on ${hosts.dhcp}, pool ${pool.start}-${pool.end}` });
      else if (state === 'down') out.push({ action: 'update', kind: 'dhcp', name: seg, why: `dnsmasq on ${hosts.dhcp} does not run` });
    }
    return out;
  },

  async apply(c, { ctx, dc }) {
    const hosts = dc.hosts!;
    const server = dhcpServer(ctx, hosts, c.name);
    await executorFor(nodeShell(hosts.nodes[hosts.dhcp]!)).run('mkdir', ['-p', '--', dhcpDir(ctx)]);
    await server.ensure();
    ctx.networkSubnets.upsert({ network: c.name, cidr: hosts.segments[c.name]!.cidr, leaseFile: server.leaseFile, leaseHost: hosts.dhcp });
    await admitNetworkToDhcp(ctx, c.name);
    return { node: hosts.dhcp, cidr: hosts.segments[c.name]!.cidr };
  },

  // Stops the segment's dnsmasq on the host that holds its lease file, and forgets the segment.
  async remove(seg, _applied, { ctx }) {
    const host = ctx.networkSubnets.get(seg)?.leaseHost;
    if (host && ctx.hosts.get(host)) {
      // Only the pid file matters to stop it.
      await new DhcpServer({ link: seg, rangeStart: '', rangeEnd: '', dir: dhcpDir(ctx), name: seg }, ctx.shellOf(host)).stop();
    }
    ctx.networkSubnets.delete(seg);
  },
};
