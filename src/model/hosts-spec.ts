import { z } from 'zod';
import { HOST_ROLES } from './roles.js';
import { checkTopology, ipv4Schema, segmentNameSchema, segmentSchema, type LabSpec } from './lab.js';
import { libvirtUriFault } from './libvirt-uri.js';

/**
 * A datacenter file's `hosts:`: real machines (or a bare lab's namespaces) in the lab's shape
 * (segments, nodes with roles and links), plus how kumo reaches each node, its libvirt URI,
 * its interface names, and the node that serves DHCP on the instance segments.
 */
const nodeName = z.string().regex(/^[a-z][a-z0-9-]{0,30}[a-z0-9]?$/, 'a node name is lower-case letters, digits and inner "-", starting with a letter (it becomes the host\'s name)');
const ifname = z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, 'an interface name: 1-15 letters, digits, ".", "_" or "-"');

const HostNodeSchema = z.object({
  roles: z.array(z.enum(HOST_ROLES)).min(1),
  /** segment → this node's address on it */
  links: z.record(segmentNameSchema, ipv4Schema),
  gateway: ipv4Schema.optional(),
  /** How kumo reaches it: `user@address` over ssh (key login)… */
  ssh: z.string().regex(/^[A-Za-z0-9._-]+@[A-Za-z0-9.:-]+$/, 'expected user@address, such as root@10.5.2.11').optional(),
  /** …or a network namespace of this machine (one-machine setups: `kumo lab up --bare`). */
  netns: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'a network namespace name (ip netns list)').optional(),
  /** A hypervisor's libvirt URI (default with ssh: qemu+ssh://USER@ADDRESS/system). */
  uri: z.string().regex(/^[a-z+]+:\/\/\S*$/, 'a libvirt URI such as qemu+ssh://root@10.5.2.11/system').superRefine((uri, ctx) => {
    // The file is the cloud's input (the API applies it too): the same allow-list as POST /hosts.
    const fault = libvirtUriFault(uri, { reach: 'cloud' });
    if (fault) ctx.addIssue({ code: 'custom', message: `the libvirt URI ${fault.problem}; ${fault.fix}` });
  }).optional(),
  /** segment → the node's interface on it (default: br-SEG on hypervisors for instance segments, else SEG). */
  interfaces: z.record(segmentNameSchema, ifname).default({}),
}).strict();

export const HostsSpecSchema = z.object({
  segments: z.record(segmentNameSchema, segmentSchema),
  nodes: z.record(nodeName, HostNodeSchema),
  /** The node that serves instance addresses (DHCP) on every instance segment: it must link them all. */
  dhcp: nodeName,
}).strict().superRefine((hosts, ctx) => {
  checkTopology(hosts, ctx, 'hosts');
  for (const [node, n] of Object.entries(hosts.nodes)) {
    const issue = (path: string[], message: string) => ctx.addIssue({ code: 'custom', path: ['nodes', node, ...path], message });
    if ((n.ssh === undefined) === (n.netns === undefined)) issue([], 'give exactly one of ssh (user@address) or netns (a network namespace on this machine): how kumo reaches the node');
    if (n.roles.includes('hypervisor') && n.netns !== undefined && n.uri === undefined) issue(['uri'], 'a hypervisor reached through netns needs its libvirt URI (kumo lab up --bare prints it)');
    if (!n.roles.includes('hypervisor') && n.uri !== undefined) issue(['uri'], 'only hypervisors have a libvirt URI: leave it out, or add the hypervisor role');
    for (const seg of Object.keys(n.interfaces)) if (!(seg in n.links)) issue(['interfaces', seg], `${node} has no link on segment "${seg}" (${Object.keys(n.links).join(', ')})`);
  }
  const server = hosts.nodes[hosts.dhcp];
  if (!server) {
    ctx.addIssue({ code: 'custom', path: ['dhcp'], message: `"${hosts.dhcp}" is not a node under nodes (${Object.keys(hosts.nodes).join(', ')})` });
  } else {
    const missing = Object.entries(hosts.segments).filter(([seg, s]) => s.instances && !(seg in server.links)).map(([seg]) => seg);
    if (missing.length) ctx.addIssue({ code: 'custom', path: ['dhcp'], message: `${hosts.dhcp} serves DHCP on every instance segment but has no link on ${missing.join(', ')}: link it there, or name another node` });
  }
});

export type HostsSpec = z.output<typeof HostsSpecSchema>;
export type HostNode = HostsSpec['nodes'][string];

/** The topology a datacenter file runs on: its lab's or its hosts'. */
export type FileTopology = LabSpec | HostsSpec;

/** A node's interface on a segment: the file's, else the lab's conventions (br-SEG on hypervisors for instance segments). */
export function interfaceOf(topo: FileTopology, node: string, seg: string): string {
  const n = topo.nodes[node]!;
  const given = 'interfaces' in n ? n.interfaces[seg] : undefined;
  if (given) return given;
  return n.roles.includes('hypervisor') && topo.segments[seg]?.instances ? `br-${seg}` : seg;
}
