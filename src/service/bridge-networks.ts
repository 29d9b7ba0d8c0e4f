import { buildNetworkXml } from '../drivers/libvirt/network-xml.js';
import type { NetworkListing, Virsh } from '../drivers/libvirt/virsh.js';

/**
 * A libvirt network in bridge mode onto a bridge the host has already (an instance segment):
 * how the lab's and a datacenter file's hypervisors put instances on a segment. libvirt serves
 * no DHCP there; kumo's DHCP server on the segment does.
 */
export async function bridgeNetworkState(v: Virsh, name: string): Promise<'missing' | 'inactive' | 'active'> {
  return bridgeNetworkStateIn(await v.listNetworks(), name);
}

/** The same, from a listing already made (plan lists each host once for all its segments). */
export function bridgeNetworkStateIn(listed: readonly NetworkListing[], name: string): 'missing' | 'inactive' | 'active' {
  const net = listed.find((n) => n.name === name);
  return !net ? 'missing' : net.active ? 'active' : 'inactive';
}

/** Defines (autostarted) and starts it, whatever part of that is missing. */
export async function ensureBridgeNetwork(v: Virsh, name: string, bridge: string): Promise<void> {
  const state = await bridgeNetworkState(v, name);
  if (state === 'missing') {
    await v.defineNetwork(buildNetworkXml({ name, mode: 'bridge', bridge }));
    await v.autostartNetwork(name);
  }
  if (state !== 'active') await v.startNetwork(name);
}
