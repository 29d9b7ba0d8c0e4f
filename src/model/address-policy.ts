import { BlockList, isIP } from 'node:net';

/**
 * The addresses an image download from the cloud may not connect to: this machine, the
 * networks behind it, and the metadata services clouds put on link-local addresses. A URL an
 * API caller gives would otherwise let them reach what only the server can (SSRF). The site may
 * name mirrors it trusts (setting image.mirrors); those skip this policy, nothing else does.
 */
const CLASSES: [string, [string, number, 'ipv4' | 'ipv6'][]][] = [
  ['unspecified', [['0.0.0.0', 8, 'ipv4'], ['::', 128, 'ipv6']]],
  ['loopback', [['127.0.0.0', 8, 'ipv4'], ['::1', 128, 'ipv6']]],
  ['link-local', [['169.254.0.0', 16, 'ipv4'], ['fe80::', 10, 'ipv6']]],
  ['private', [['10.0.0.0', 8, 'ipv4'], ['172.16.0.0', 12, 'ipv4'], ['192.168.0.0', 16, 'ipv4'], ['fc00::', 7, 'ipv6']]],
  // Shared (carrier-grade NAT) space: some clouds put their metadata service here.
  ['shared', [['100.64.0.0', 10, 'ipv4']]],
  ['reserved', [['192.0.0.0', 24, 'ipv4'], ['198.18.0.0', 15, 'ipv4'], ['240.0.0.0', 4, 'ipv4']]],
  ['multicast', [['224.0.0.0', 4, 'ipv4'], ['ff00::', 8, 'ipv6']]],
];

const LISTS = CLASSES.map(([name, nets]) => {
  const list = new BlockList();
  for (const [net, prefix, family] of nets) list.addSubnet(net, prefix, family);
  return [name, list] as const;
});

/**
 * Why the cloud may not connect to `address` ("loopback", "private", ...), or undefined when it
 * may. IPv4-mapped IPv6 addresses (::ffff:127.0.0.1) count as the IPv4 address they carry;
 * anything that is not an IP address is refused ("not an address").
 */
export function addressFault(address: string): string | undefined {
  const family = isIP(address);
  if (!family) return 'not an address';
  const kind = family === 4 ? 'ipv4' : 'ipv6';
  for (const [name, list] of LISTS) if (list.check(address, kind)) return name;
  return undefined;
}

/** The host part of a URL as the mirror list and DNS see it: lower case, IPv6 without brackets. */
export const urlHost = (url: URL): string => url.hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
