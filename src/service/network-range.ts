import type { Context } from './context.js';
import { onRecover } from './undo.js';
import type { NetworkSpec } from '../drivers/libvirt/network-xml.js';
import { invalid } from '../model/errors.js';
import { broadcast, contains, formatCidr, formatIp, parseCidr, resolveInSubnet, type Subnet } from '../model/checks.js';

/** The addressing of a nat or isolated network: its subnet, the host's address on it, its DHCP range. */
export interface NetworkRange {
  /** e.g. 192.168.222.0/24 */
  cidr: string;
  /** The host's address on it: full, or a suffix like ".1" (default: the first address). */
  gateway?: string;
  /** "START-END" (full addresses or suffixes); default: the rest of the subnet. */
  dhcp?: string;
  noDhcp?: boolean;
}

/** Checks a range and completes it (gateway, DHCP range), refusing anything inconsistent. */
export function planRange(req: NetworkRange): { subnet: Subnet; ipv4: NonNullable<NetworkSpec['ipv4']> } {
  const subnet = parseCidr(req.cidr);
  const first = subnet.network + 1;
  const last = broadcast(subnet) - 1;
  const gateway = req.gateway ? resolveInSubnet(subnet, req.gateway, 'gateway') : first;
  if (!contains(subnet, gateway) || gateway === subnet.network || gateway === broadcast(subnet)) {
    throw invalid(`gateway ${formatIp(gateway)} is not a host address of ${formatCidr(subnet)}`, `use an address from ${formatIp(first)} to ${formatIp(last)}`);
  }
  if (req.dhcp && req.noDhcp) throw invalid('--dhcp and --no-dhcp both given', 'pass only one of them');
  const ipv4 = { address: formatIp(gateway), prefix: subnet.prefix };
  if (req.noDhcp) return { subnet, ipv4 };
  const [a, b] = req.dhcp ? dhcpBounds(subnet, req.dhcp) : gateway === first ? [first + 1, last] : [first, gateway - 1];
  if (a > b) throw invalid(`DHCP range ${formatIp(a)}-${formatIp(b)} ends before it starts`, 'give START-END with START lower');
  for (const ip of [a, b]) {
    if (!contains(subnet, ip) || ip < first || ip > last) {
      throw invalid(`DHCP range ${formatIp(a)}-${formatIp(b)} is not inside ${formatCidr(subnet)}`, `keep it within ${formatIp(first)}-${formatIp(last)}`);
    }
  }
  if (gateway >= a && gateway <= b) {
    throw invalid(`gateway ${formatIp(gateway)} lies inside the DHCP range ${formatIp(a)}-${formatIp(b)}`, 'move the gateway out of the range or shrink the range');
  }
  return { subnet, ipv4: { ...ipv4, dhcp: { start: formatIp(a), end: formatIp(b) } } };
}

function dhcpBounds(subnet: Subnet, text: string): [number, number] {
  const parts = text.split('-');
  if (parts.length !== 2) throw invalid(`--dhcp "${text}" is not a range`, 'write it as START-END, e.g. 192.168.222.2-192.168.222.254 or .2-.254');
  return [resolveInSubnet(subnet, parts[0]!, 'DHCP start'), resolveInSubnet(subnet, parts[1]!, 'DHCP end')];
}

/** The undo of a readdress (NetworkService.readdress): the network as it was, defined and started again. */
export const RESTORE_NETWORK = 'restore-network';
onRecover(RESTORE_NETWORK, async (ctx: Context, { uri, name, xml, autostart }) => {
  const virsh = ctx.virshAt(uri!);
  await virsh.removeNetwork(name!);
  await virsh.defineNetwork(xml!);
  await virsh.startNetwork(name!);
  if (autostart === 'true') await virsh.autostartNetwork(name!);
});
