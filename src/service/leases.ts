import { readFile } from 'node:fs/promises';
import type { Context } from './context.js';
import { readHostFile } from '../exec/files.js';
import { parseDnsmasqLeases } from '../drivers/daemons/dnsmasq.js';
import type { InstanceRecord } from '../store/instances.js';

/**
 * Instance addresses: DHCP leases by MAC. A network's DHCP server may live on another host than
 * the guest (a bridge network over a bridge whose dnsmasq runs elsewhere, as after a
 * migration), so every host that answers is asked about every network the instances use.
 */
export async function dhcpAddresses(ctx: Context, records: InstanceRecord[]): Promise<Map<string, string>> {
  const byMac = new Map<string, string>();
  const networks = new Set(records.flatMap((r) => r.nics.map((n) => n.network)));
  // LANs whose DHCP server kumo runs outside libvirt (the lab's segments) have a lease file.
  for (const net of [...networks]) {
    const subnet = ctx.networkSubnets.get(net);
    if (!subnet?.leaseFile) continue;
    networks.delete(net);
    // A datacenter file's DHCP runs on one of its hosts: its lease file is read through that host's shell.
    const text = subnet.leaseHost
      ? await Promise.resolve().then(() => readHostFile(ctx.shellOf(subnet.leaseHost!), subnet.leaseFile!)).catch(() => undefined)
      : await readFile(subnet.leaseFile, 'utf8').catch(() => undefined);
    for (const l of parseDnsmasqLeases(text ?? '')) byMac.set(l.mac, l.ipv4);
  }
  if (!networks.size) return byMac;
  const hosts = new Set([...records.map((r) => r.host), ...ctx.hosts.list().map((h) => h.name)]);
  for (const host of hosts) {
    let v;
    try {
      v = ctx.virshFor(host);
    } catch {
      continue;
    }
    for (const net of networks) {
      const leases = await v.dhcpLeases(net).catch(() => undefined);
      if (leases === undefined) break; // this host does not answer: skip the rest of its networks
      for (const l of leases) byMac.set(l.mac, l.ipv4);
    }
  }
  return byMac;
}
