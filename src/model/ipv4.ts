import { invalid } from './errors.js';

/** IPv4 addresses as 32-bit numbers: enough arithmetic for subnets, gateways and DHCP ranges. */
export function parseIp(text: string, what = 'address'): number {
  // No leading zeros: "010" is 8 to some tools and 10 to others.
  const m = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/.exec(text.trim());
  const parts = m?.slice(1).map(Number);
  if (!parts || parts.some((p) => p > 255)) throw invalid(`${what} "${text}" is not an IPv4 address`, 'write it like 192.168.222.1');
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Subnet {
  network: number;
  prefix: number;
}

const mask = (prefix: number) => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

export function parseCidr(text: string): Subnet {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(text.trim());
  if (!m) throw invalid(`"${text}" is not a CIDR`, 'write it like 192.168.222.0/24');
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 30) throw invalid(`prefix /${prefix} in ${text} is out of range`, 'use a prefix from /8 to /30, e.g. /24');
  const addr = parseIp(m[1]!, 'network');
  const network = (addr & mask(prefix)) >>> 0;
  if (network !== addr) {
    throw invalid(`${text} has host bits set`, `did you mean ${formatIp(network)}/${prefix}?`);
  }
  return { network, prefix };
}

export const formatCidr = (s: Subnet) => `${formatIp(s.network)}/${s.prefix}`;
export const broadcast = (s: Subnet) => (s.network | (~mask(s.prefix) >>> 0)) >>> 0;
export const contains = (s: Subnet, ip: number) => ((ip & mask(s.prefix)) >>> 0) === s.network;
export const overlaps = (a: Subnet, b: Subnet) => contains(a, b.network) || contains(b, a.network);

/** The subnet an address with a prefix (or netmask) lies in: 192.168.1.7/24 → 192.168.1.0/24. */
export function subnetOf(address: string, prefix: number): Subnet {
  return { network: (parseIp(address) & mask(prefix)) >>> 0, prefix };
}

/**
 * Resolves an address given in full or as a suffix of the subnet (".1" → 192.168.222.1),
 * as `kumo network create --gateway .1` accepts.
 */
export function resolveInSubnet(s: Subnet, text: string, what: string): number {
  const t = text.trim();
  if (/^\.\d{1,3}(\.\d{1,3}){0,2}$/.test(t)) {
    const tail = t.slice(1).split('.').map(Number);
    const base = formatIp(s.network).split('.').slice(0, 4 - tail.length);
    return parseIp([...base, ...tail].join('.'), what);
  }
  return parseIp(t, what);
}
