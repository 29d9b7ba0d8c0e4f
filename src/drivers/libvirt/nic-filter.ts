import { KumoError } from '../../model/errors.js';
import type { Virsh } from './virsh.js';
import { attr, buildXml, child, children, parseXml, type XmlNode } from './xml.js';

/** The filter every NIC gets where libvirt can filter (domain-xml.ts ANTI_SPOOFING). */
const CLEAN_TRAFFIC = 'clean-traffic';

/**
 * Whether a libvirtd can put anti-spoofing filters on NICs: its nwfilter driver answers. A
 * daemon without one (modular daemons without virtnwfilterd, the lab's second libvirtd on the
 * host's network namespace) refuses to start a domain that names a filter.
 */
export async function nicFiltersAvailable(virsh: Virsh): Promise<boolean> {
  try {
    await virsh.askNwFilters(30_000);
    return true;
  } catch (e) {
    // "this function is not supported by the connection driver: virConnectListAllNWFilters" (virsh),
    // "...: virConnectNumOfNWFilters" (the protocol connection)
    if (e instanceof KumoError && /not supported|no connection driver|nwfilter state driver is not active/i.test(e.message)) return false;
    throw e;
  }
}

/**
 * The domain's migratable XML with its NICs' filters dropped when the destination has no
 * nwfilter driver (it would refuse the domain); undefined when nothing changes, and the domain
 * moves as it is. A domain without filters is not given any on the way: the whole document
 * rewritten for it broke lab migrations (the full suite saw "No route to host" and a virsh
 * SIGPIPE), so it stays unfiltered until it is made again.
 */
export async function xmlForDestinationFilters(source: Virsh, domain: string, destFilters: boolean): Promise<string | undefined> {
  const xml = await source.run(['dumpxml', '--migratable', domain]);
  const doc = parseXml(xml);
  let changed = false;
  const nics = children(child(child(doc, 'domain'), 'devices'), 'interface');
  for (const nic of nics) {
    const has = child(nic, 'filterref') !== undefined;
    if (has && !destFilters) {
      delete nic['filterref'];
      changed = true;
    }
  }
  return changed ? buildXml(doc) : undefined;
}

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
    if (!ip || attr(filter, 'filter') !== CLEAN_TRAFFIC) continue;
    const params = children(filter, 'parameter');
    if (params.some((p) => attr(p, 'name') === 'IP')) continue;
    const changed: XmlNode = { ...nic, filterref: { ...filter, parameter: [...params, { '@_name': 'IP', '@_value': ip }] } };
    const mac = attr(child(nic, 'mac'), 'address');
    await virsh.runWithXml(buildXml({ interface: changed }), (file) => ['update-device', domain, file, '--live'], undefined, `pinning ${ip} on NIC ${mac}`);
    pinned++;
  }
  return pinned;
}
