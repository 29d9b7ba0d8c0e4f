import type { Instance } from '../../model/types.js';
import type { NetworkView } from '../../service/networks.js';
import { osUuid } from './common.js';

/**
 * Neutron's bodies of kumo's resources: a kumo network is a Neutron network, its range (if it has
 * one) that network's one subnet, and each NIC of an instance a port. Only what kumo knows is
 * shown; the rest takes Neutron's defaults for a plain tenant network.
 */

/** Neutron's errors: {"NeutronError": {"type", "message", "detail"}}; the type as Neutron names it. */
const TYPES: Record<number, string> = {
  400: 'BadRequest', 401: 'Unauthorized', 403: 'PolicyNotAuthorized', 404: 'NotFound', 405: 'HTTPMethodNotAllowed', 409: 'Conflict', 429: 'OverQuota',
};
const NOT_FOUND_TYPES: [RegExp, string][] = [
  [/^Network \S+ could not be found/, 'NetworkNotFound'], [/^Subnet \S+ could not be found/, 'SubnetNotFound'],
  [/^Port \S+ could not be found/, 'PortNotFound'], [/^Security group \S+ does not exist/, 'SecurityGroupNotFound'],
];
export const neutronFault = (status: number, message: string, code: string) => {
  const type = (status === 404 && NOT_FOUND_TYPES.find(([re]) => re.test(message))?.[1])
    || (code === 'IN_USE' ? 'InUse' : code === 'QUOTA_EXCEEDED' ? 'OverQuota' : TYPES[status] ?? 'NeutronError');
  return { NeutronError: { type, message, detail: '' } };
};

/** Who a network belongs to, as Neutron's project_id and shared flag. */
export interface NetworkOwnership { project: string; shared: boolean }

export const networkId = (name: string): string => osUuid('network', name);
export const subnetId = (network: string): string => osUuid('subnet', network);
export const portId = (mac: string): string => osUuid('port', mac.toLowerCase());

/** A network: kumo's isolated network is Neutron's "local" type (no way out); nat, bridge and ovs reach a host network ("flat"). */
export function networkBody(n: NetworkView, owner: NetworkOwnership) {
  const local = n.mode === 'isolated';
  return {
    id: networkId(n.name), name: n.name, description: '',
    status: n.active || n.builtinPending ? 'ACTIVE' : 'DOWN', admin_state_up: true,
    subnets: n.cidr ? [subnetId(n.name)] : [],
    shared: owner.shared, 'router:external': false, is_default: false,
    mtu: 1500, port_security_enabled: true, l2_adjacency: true,
    tenant_id: owner.project, project_id: owner.project,
    'provider:network_type': local ? 'local' : 'flat', 'provider:physical_network': local ? null : (n.bridge ?? null), 'provider:segmentation_id': null,
    availability_zones: ['nova'], availability_zone_hints: [], ipv4_address_scope: null, ipv6_address_scope: null,
    tags: [], revision_number: 1,
  };
}

/** A network's range as its one subnet, under the name `subnet create` gave it (else the network's). */
export function subnetBody(n: NetworkView & { cidr: string }, owner: NetworkOwnership) {
  return {
    id: subnetId(n.name), name: n.subnetName ?? n.name, description: '', network_id: networkId(n.name),
    cidr: n.cidr, ip_version: 4, gateway_ip: n.gateway ?? null,
    enable_dhcp: n.dhcp !== undefined, allocation_pools: n.dhcp ? [{ start: n.dhcp.start, end: n.dhcp.end }] : [],
    dns_nameservers: [], host_routes: [], service_types: [], subnetpool_id: null,
    ipv6_ra_mode: null, ipv6_address_mode: null, shared: owner.shared,
    tenant_id: owner.project, project_id: owner.project, tags: [], revision_number: 1,
  };
}

/** Each NIC of an instance (of `project`) as a port of its network. */
export function portBodies(i: Instance, project: string): ReturnType<typeof portBody>[] {
  return i.nics.map((nic) => portBody(i, nic, project));
}

function portBody(i: Instance, nic: Instance['nics'][number], project: string) {
  return {
    id: portId(nic.mac), name: '', description: '', network_id: networkId(nic.network),
    mac_address: nic.mac.toLowerCase(), admin_state_up: true, status: i.state === 'running' ? 'ACTIVE' : 'DOWN',
    fixed_ips: nic.ipv4 ? [{ subnet_id: subnetId(nic.network), ip_address: nic.ipv4 }] : [],
    device_id: i.uuid, device_owner: 'compute:nova', 'binding:vnic_type': 'normal', 'binding:host_id': i.host,
    security_groups: [], allowed_address_pairs: [], extra_dhcp_opts: [], port_security_enabled: true,
    tenant_id: project, project_id: project, tags: [], revision_number: 1,
  };
}

/** The one security group every project has: kumo filters NICs against spoofing only, so it has no rules to show. */
export function securityGroupBody(project: string) {
  return {
    id: osUuid('security-group', project), name: 'default', description: 'Default security group',
    security_group_rules: [], stateful: true, tenant_id: project, project_id: project, tags: [], revision_number: 1,
  };
}

/**
 * Neutron's list filters: ?key=value (repeated: any of them) on the body's top-level keys;
 * filters on keys the body lacks, and `fields`, `sort_*`, `limit`, `marker`, match everything.
 */
const NOT_FILTERS = new Set(['fields', 'sort_key', 'sort_dir', 'limit', 'marker', 'page_reverse', 'project']);
export function filtered<T extends object>(items: T[], query: Record<string, unknown>): T[] {
  const tests = Object.entries(query).filter(([k]) => !NOT_FILTERS.has(k));
  return items.filter((item) => tests.every(([key, want]) => {
    if (!(key in item)) return true;
    const have = (item as Record<string, unknown>)[key];
    const wanted = (Array.isArray(want) ? want : [want]).map(String);
    return wanted.some((w) => (Array.isArray(have) ? have.map(String).includes(w) : String(have) === w));
  }));
}
