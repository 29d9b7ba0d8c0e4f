import { attr, buildXml, child, children, parseXml } from './xml.js';
import type { NetworkMode } from '../../model/types.js';

export type { NetworkMode } from '../../model/types.js';

export interface NetworkSpec {
  name: string;
  mode: NetworkMode;
  /** The Linux bridge: made by libvirt for nat/isolated, an existing host bridge for 'bridge'. */
  bridge: string;
  /** For nat/isolated: the host's address on the network, its prefix and the DHCP range. */
  ipv4?: { address: string; prefix: number; dhcp?: { start: string; end: string } };
}

export function buildNetworkXml(s: NetworkSpec): string {
  if (s.mode === 'bridge' || s.mode === 'ovs') {
    return buildXml({
      network: {
        name: s.name, forward: { '@_mode': 'bridge' }, bridge: { '@_name': s.bridge },
        ...(s.mode === 'ovs' ? { virtualport: { '@_type': 'openvswitch' } } : {}),
      },
    });
  }
  return buildXml({
    network: {
      ...(s.ipv4?.dhcp ? { '@_xmlns:dnsmasq': DNSMASQ_NS } : {}),
      name: s.name,
      ...(s.mode === 'nat' ? { forward: { '@_mode': 'nat', nat: { port: { '@_start': '1024', '@_end': '65535' } } } } : {}),
      // STP off: one bridge per network has no loops, and STP holds a new port (a migrated guest's tap) silent for seconds.
      bridge: { '@_name': s.bridge, '@_stp': 'off', '@_delay': '0' },
      ...(s.ipv4 ? {
        ip: {
          '@_address': s.ipv4.address,
          '@_prefix': String(s.ipv4.prefix),
          ...(s.ipv4.dhcp ? { dhcp: { range: { '@_start': s.ipv4.dhcp.start, '@_end': s.ipv4.dhcp.end } } } : {}),
        },
      } : {}),
      // dnsmasq pings an address for ~3 s before it hands it out; on a network kumo manages
      // every guest gets its address by DHCP, so the check only slows each boot (bench/provision).
      ...(s.ipv4?.dhcp ? { 'dnsmasq:options': { 'dnsmasq:option': { '@_value': 'no-ping' } } } : {}),
    },
  });
}

const DNSMASQ_NS = 'http://libvirt.org/schemas/network/dnsmasq/1.0';

export interface NetworkFacts {
  name?: string;
  mode: NetworkMode;
  bridge?: string;
  address?: string;
  prefix?: number;
  dhcp?: { start: string; end: string };
}

export function parseNetworkXml(xml: string): NetworkFacts {
  const net = child(parseXml(xml), 'network');
  const forward = attr(child(net, 'forward'), 'mode');
  const ip = children(net, 'ip').find((i) => (attr(i, 'family') ?? 'ipv4') === 'ipv4');
  const netmask = attr(ip, 'netmask');
  const prefix = attr(ip, 'prefix') ?? (netmask ? String(maskToPrefix(netmask)) : undefined);
  const facts: NetworkFacts = {
    mode: forward === 'nat' || forward === 'route' ? 'nat'
      : forward === 'bridge' ? (attr(child(net, 'virtualport'), 'type') === 'openvswitch' ? 'ovs' : 'bridge')
      : 'isolated',
  };
  const range = children(child(ip, 'dhcp'), 'range')[0];
  const start = attr(range, 'start');
  const end = attr(range, 'end');
  if (start && end) facts.dhcp = { start, end };
  const name = net?.name;
  if (typeof name === 'string') facts.name = name;
  const bridge = attr(child(net, 'bridge'), 'name');
  if (bridge) facts.bridge = bridge;
  const address = attr(ip, 'address');
  if (address) facts.address = address;
  if (prefix) facts.prefix = Number(prefix);
  return facts;
}

function maskToPrefix(mask: string): number {
  return mask.split('.').reduce((n, octet) => n + (Number(octet) >>> 0).toString(2).replace(/0/g, '').length, 0);
}
