import type { Virsh } from './virsh.js';
import { attr, buildXml, child, children, parseXml, type XmlNode } from './xml.js';

/**
 * Pins the address each NIC's anti-spoofing filter (clean-traffic, learning from DHCP) allows,
 * on a running domain, before it live-migrates: libvirt does not carry a learned address across
 * a migration, and the destination would drop all of the guest's IP traffic until its next DHCP
 * renewal (measured: every request through the LB failed after the move). With the address as
 * the filter's IP parameter, the destination instantiates the filter with it and learns nothing.
 * `addresses`: MAC -> IPv4 from kumo's DHCP leases; NICs without a lease, without the filter or
 * already pinned are left as they are. Returns how many NICs were pinned.
 */
export async function pinFilterAddresses(virsh: Virsh, domain: string, addresses: ReadonlyMap<string, string>): Promise<number> {
  const xml = await virsh.dumpXml(domain);
  if (!xml) return 0;
  let pinned = 0;
  for (const nic of children(child(child(parseXml(xml), 'domain'), 'devices'), 'interface')) {
    const ip = addresses.get(attr(child(nic, 'mac'), 'address')?.toLowerCase() ?? '');
    const filter = child(nic, 'filterref');
    if (!ip || attr(filter, 'filter') !== 'clean-traffic') continue;
    const params = children(filter, 'parameter');
    if (params.some((p) => attr(p, 'name') === 'IP')) continue;
    const changed: XmlNode = { ...nic, filterref: { ...filter, parameter: [...params, { '@_name': 'IP', '@_value': ip }] } };
    await virsh.runWithXml(buildXml({ interface: changed }), (file) => ['update-device', domain, file, '--live']);
    pinned++;
  }
  return pinned;
}
