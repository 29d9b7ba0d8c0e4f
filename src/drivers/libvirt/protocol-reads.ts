import type { RuntimeState } from '../../model/types.js';
import { domainState, domainXml, listAllWithState, lookupByName, lookupByUuid, type RpcCaller } from './rpc/domains.js';
import { LibvirtRefusal } from './rpc/errors.js';
import { IP_ADDR_TYPE_IPV4, lookupNetworkByName, networkDhcpLeases, networkXmlDesc } from './rpc/networks.js';
import { listAllNetworks, NetworkListFlags, nodeGetInfo } from './rpc/node.js';
import { type Domain, VIR_ERR_NO_DOMAIN, VIR_ERR_NO_NETWORK } from './rpc/protocol.js';

/**
 * The reads that list and show lean on, over the host's protocol connection (rpc/): the same
 * answers as virsh's `list --all`, `domstate`, `dumpxml` and `net-dhcp-leases`, in a round trip
 * or two each instead of a process. Errors are left as the driver raises them; virsh.ts words them as virsh's are.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** VIR_DOMAIN_XML_INACTIVE: the definition the next start uses (`dumpxml --inactive`). */
const XML_INACTIVE = 2;

/** virsh tries a domain ID before a UUID or name: an all-digit name is left to virsh, which does the same. */
export const protocolLooksUp = (name: string): boolean => !/^\d+$/.test(name);

const noDomain = (e: unknown): boolean => e instanceof LibvirtRefusal && e.remote.code === VIR_ERR_NO_DOMAIN;

/** The domain a UUID or name names, or undefined when there is none (virsh: "failed to get domain"). */
export async function lookUp(c: RpcCaller, name: string): Promise<Domain | undefined> {
  try {
    return UUID.test(name) ? await lookupByUuid(c, name) : await lookupByName(c, name);
  } catch (e) {
    if (noDomain(e)) return undefined;
    throw e;
  }
}

/** A domain removed between the look-up and the read is as missing as one never there. */
async function ofDomain<T>(c: RpcCaller, name: string, read: (d: Domain) => Promise<T>): Promise<T | undefined> {
  const dom = await lookUp(c, name);
  if (!dom) return undefined;
  try {
    return await read(dom);
  } catch (e) {
    if (noDomain(e)) return undefined;
    throw e;
  }
}

export async function listDomainsOver(c: RpcCaller): Promise<{ name: string; uuid: string; state: RuntimeState }[]> {
  return (await listAllWithState(c)).map(({ dom, state }) => ({ name: dom.name, uuid: dom.uuid.toLowerCase(), state: state as RuntimeState }));
}

export async function domainStateOver(c: RpcCaller, name: string): Promise<RuntimeState> {
  return (await ofDomain(c, name, (d) => domainState(c, d)) as RuntimeState | undefined) ?? 'missing';
}

export async function dumpXmlOver(c: RpcCaller, name: string, inactive: boolean): Promise<string | undefined> {
  return ofDomain(c, name, (d) => domainXml(c, d, inactive ? XML_INACTIVE : 0));
}

/**
 * The network's IPv4 leases as `virsh net-dhcp-leases` shows them (MAC lower-case; no hostname
 * where the guest sent none); none for a network this libvirt does not have, as virsh's caller gets.
 */
export async function dhcpLeasesOver(c: RpcCaller, network: string): Promise<{ mac: string; ipv4: string; hostname?: string }[]> {
  let leases;
  try {
    leases = await networkDhcpLeases(c, await lookupNetworkByName(c, network));
  } catch (e) {
    if (e instanceof LibvirtRefusal && e.remote.code === VIR_ERR_NO_NETWORK) return [];
    throw e;
  }
  return leases.filter((l) => l.type === IP_ADDR_TYPE_IPV4 && l.mac !== undefined)
    .map((l) => ({ mac: l.mac!.toLowerCase(), ipv4: l.ipaddr, ...(l.hostname ? { hostname: l.hostname } : {}) }));
}

/** What `virsh net-dumpxml` prints, or undefined for a network this libvirt does not have (virsh's caller gets none either). */
export async function networkXmlOver(c: RpcCaller, network: string): Promise<string | undefined> {
  try {
    return await networkXmlDesc(c, await lookupNetworkByName(c, network));
  } catch (e) {
    if (e instanceof LibvirtRefusal && e.remote.code === VIR_ERR_NO_NETWORK) return undefined;
    throw e;
  }
}

/** What `virsh nodeinfo` says of CPUs and memory, in one round trip. */
export async function nodeInfoOver(c: RpcCaller): Promise<{ cpus: number; memoryMiB: number }> {
  const info = await nodeGetInfo(c);
  return { cpus: info.cpus, memoryMiB: Math.round(Number(info.memoryKiB) / 1024) };
}

/** What `virsh net-list --all` says: every network with its flags, four listings sent at once on the one connection. */
export async function listNetworksOver(c: RpcCaller): Promise<{ name: string; active: boolean; autostart: boolean; persistent: boolean }[]> {
  const [all, active, autostart, persistent] = await Promise.all([0, NetworkListFlags.ACTIVE, NetworkListFlags.AUTOSTART, NetworkListFlags.PERSISTENT]
    .map((flags) => listAllNetworks(c, flags).then((names) => new Set(names))));
  return [...all!].map((name) => ({ name, active: active!.has(name), autostart: autostart!.has(name), persistent: persistent!.has(name) }));
}
