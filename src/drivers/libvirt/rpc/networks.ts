import type { RpcCaller } from './domains.js';
import { Proc } from './protocol.js';
import type { XdrReader, XdrWriter } from './xdr.js';

/**
 * The network procedures kumo speaks (written by hand from remote_protocol.x, like protocol.ts):
 * looking a network up by name, reading its XML (`virsh net-dumpxml`) and its DHCP leases
 * (`virsh net-dhcp-leases`).
 */

/** REMOTE_NETWORK_DHCP_LEASES_MAX: the most leases one answer may carry. */
export const REMOTE_NETWORK_DHCP_LEASES_MAX = 65536;
/** virIPAddrType of a lease. */
export const IP_ADDR_TYPE_IPV4 = 0;

/** remote_nonnull_network: libvirt finds the network by its UUID; the name travels along. */
export interface Network { name: string; uuid: Buffer }

export function encodeNetwork(w: XdrWriter, n: Network): void {
  w.string(n.name).fixedOpaque(n.uuid);
}

export function decodeNetwork(r: XdrReader): Network {
  return { name: r.string(), uuid: Buffer.from(r.fixedOpaque(16)) };
}

/** remote_network_dhcp_lease */
export interface NetworkDhcpLease {
  iface: string; expiryTime: bigint; type: number; mac?: string; iaid?: string; ipaddr: string; prefix: number;
  hostname?: string; clientId?: string;
}

const optionalString = (r: XdrReader) => r.optional((x) => x.string());

function decodeLease(r: XdrReader): NetworkDhcpLease {
  const iface = r.string();
  const expiryTime = r.hyper();
  const type = r.int();
  const mac = optionalString(r);
  const iaid = optionalString(r);
  const ipaddr = r.string();
  const prefix = r.uint();
  const hostname = optionalString(r);
  const clientId = optionalString(r);
  return {
    iface, expiryTime, type, ipaddr, prefix,
    ...(mac !== undefined ? { mac } : {}), ...(iaid !== undefined ? { iaid } : {}),
    ...(hostname !== undefined ? { hostname } : {}), ...(clientId !== undefined ? { clientId } : {}),
  };
}

export async function lookupNetworkByName(c: RpcCaller, name: string): Promise<Network> {
  return decodeNetwork(await c.call(Proc.NETWORK_LOOKUP_BY_NAME, (w) => w.string(name)));
}

/** The network's XML as libvirt has it now (remote_network_get_xml_desc_args: flags 0, as `virsh net-dumpxml`). */
export async function networkXmlDesc(c: RpcCaller, net: Network): Promise<string> {
  return (await c.call(Proc.NETWORK_GET_XML_DESC, (w) => {
    encodeNetwork(w, net);
    w.uint(0);
  })).string();
}

/** Every lease of the network (remote_network_get_dhcp_leases_args: no MAC filter, results wanted, flags 0). */
export async function networkDhcpLeases(c: RpcCaller, net: Network): Promise<NetworkDhcpLease[]> {
  const r = await c.call(Proc.NETWORK_GET_DHCP_LEASES, (w) => {
    encodeNetwork(w, net);
    w.optional<string>(undefined, (x, v) => x.string(v)).int(1).uint(0);
  });
  const leases = r.array(decodeLease, REMOTE_NETWORK_DHCP_LEASES_MAX);
  r.uint(); // ret: the count, as the array already says
  return leases;
}
