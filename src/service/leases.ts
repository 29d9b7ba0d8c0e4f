import { readFile } from 'node:fs/promises';
import type { Context } from './context.js';
import type { Executor } from '../exec/exec.js';
import { readHostFile, removeHostPath, writeHostFile } from '../exec/files.js';
import { knownClientFile, libvirtDhcpRuns, ownDhcpRuns, parseDnsmasqLeases } from '../drivers/daemons/dnsmasq.js';
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

/** The shell that holds a network's lease file (and its known clients), when kumo runs its DHCP. */
function dhcpShellOf(ctx: Context, network: string): { exec: Executor; leaseFile: string } | undefined {
  const subnet = ctx.networkSubnets.get(network);
  if (!subnet?.leaseFile) return undefined;
  return { exec: subnet.leaseHost ? ctx.shellOf(subnet.leaseHost) : ctx.exec, leaseFile: subnet.leaseFile };
}

/**
 * kumo's own DHCP servers (the lab's and a datacenter's segments) answer only the MACs of
 * kumo's instances: each NIC is listed with its segment's server before the guest boots.
 * Networks libvirt serves are left alone (see docs/decisions.md).
 */
export async function admitToDhcp(ctx: Context, nics: { mac: string; network: string }[]): Promise<void> {
  for (const nic of nics) {
    const at = dhcpShellOf(ctx, nic.network);
    if (at) await writeHostFile(at.exec, knownClientFile(at.leaseFile, nic.mac), `${nic.mac.toLowerCase()}\n`);
  }
}

/** Takes the NICs off their servers' lists (dnsmasq forgets them at its next restart). */
export async function dismissFromDhcp(ctx: Context, nics: { mac: string; network: string }[]): Promise<void> {
  for (const nic of nics) {
    const at = dhcpShellOf(ctx, nic.network);
    if (at) await removeHostPath(at.exec, knownClientFile(at.leaseFile, nic.mac));
  }
}

/** Lists every instance NIC on a network with its server again (a server started anew, or one of an older kumo). */
export async function admitNetworkToDhcp(ctx: Context, network: string): Promise<void> {
  await admitToDhcp(ctx, ctx.instances.list().flatMap((r) => r.nics.filter((n) => n.network === network)));
}

/**
 * Why a network's DHCP server cannot answer, when kumo can tell: the dnsmasq that serves it (kumo's
 * own for a segment, libvirt's for a network of this machine's libvirt) is not running. Undefined
 * when it runs or kumo cannot tell. Said where a guest waits for a lease in vain.
 */
export async function dhcpServerDown(ctx: Context, network: string): Promise<{ why: string; fix: string } | undefined> {
  const subnet = ctx.networkSubnets.get(network);
  if (subnet?.leaseFile) {
    const exec = subnet.leaseHost ? ctx.shellOf(subnet.leaseHost) : ctx.exec;
    if (await ownDhcpRuns(exec, subnet.leaseFile).catch(() => true)) return undefined;
    return { why: `kumo's DHCP server (dnsmasq) for "${network}" on ${subnet.leaseHost ? `host "${subnet.leaseHost}"` : 'this machine'} is not running`,
      fix: '`kumo apply` (a datacenter file) or `kumo lab up` (the lab) starts it again' };
  }
  if ((await libvirtDhcpRuns(ctx.exec, network).catch(() => undefined)) !== false) return undefined;
  return { why: `libvirt's DHCP server (dnsmasq) for network "${network}" on this machine is not running`,
    fix: `libvirt starts it with the network: with no instance on it, \`kumo network stop ${network} && kumo network start ${network}\` (or virsh net-destroy/net-start); then start the instance again` };
}
