import { z } from 'zod';
import { LAB_ROLES } from './roles.js';
import { broadcast, contains, formatIp, isCidr, isIp, parseCidr, parseIp } from './checks.js';
import { cidrString, ipv4String } from './check-schemas.js';

/**
 * The lab: the course's datacenter on one machine. Each node is a network namespace, each
 * segment a Linux bridge in the lab's switch namespace with a veth to every node on it.
 * Hypervisors bridge their instances onto the segments marked `instances` (a libvirt network
 * of the segment's name on each of them), where a DHCP server of the lab hands out addresses.
 */
// Short names: they become parts of interface names (15 characters at most: "br-" + segment).
const nodeName = z.string().regex(/^[a-z][a-z0-9]{0,9}$/, 'a node name is 1-10 lower-case letters and digits, starting with a letter');
const segmentName = z.string().regex(/^[a-z][a-z0-9]{0,11}$/, 'a segment name is 1-12 lower-case letters and digits, starting with a letter');
const cidr = cidrString('10.5.2.0/24');
const ipv4 = ipv4String('10.5.2.11');

/** The topology both the lab and a datacenter file's `hosts:` declare: segments and linked nodes. */
export interface Topology {
  segments: Record<string, { cidr: string; instances: boolean }>;
  nodes: Record<string, { roles: readonly string[]; links: Record<string, string>; gateway?: string | undefined }>;
}

export const segmentSchema = z.object({
  cidr,
  /** Instances attach here: a DHCP server is run on it and hypervisors get a libvirt network for it. */
  instances: z.boolean().default(false),
}).strict();
export { ipv4 as ipv4Schema, segmentName as segmentNameSchema };

/**
 * The topology's own consistency (the lab's and the hosts' alike): addresses inside their
 * segment's CIDR and outside its DHCP pool, no address twice, no overlapping segments, a
 * gateway on a connected segment, every hypervisor on an instance segment, at least one
 * hypervisor. `where` names the topology in messages ("the lab", "hosts").
 */
export function checkTopology(lab: Topology, ctx: z.RefinementCtx, where: string): void {
  // zod runs this check even when fields failed above: look only at values that parsed.
  const seen = new Map<string, string>();
  for (const [node, n] of Object.entries(lab.nodes)) {
    for (const [seg, ip] of Object.entries(n.links)) {
      const s = lab.segments[seg];
      if (!isIp(ip) || (s && !isCidr(s.cidr))) continue;
      if (!s) {
        ctx.addIssue({ code: 'custom', path: ['nodes', node, 'links', seg], message: `segment "${seg}" is not declared under segments (known: ${Object.keys(lab.segments).join(', ')})` });
        continue;
      }
      const net = parseCidr(s.cidr);
      const addr = parseIp(ip);
      const plan = dhcpPlan(s.cidr);
      if (!contains(net, addr) || addr === net.network || addr === broadcast(net)) {
        ctx.addIssue({ code: 'custom', path: ['nodes', node, 'links', seg], message: `${ip} is not a host address in ${seg}'s ${s.cidr}` });
      } else if (s.instances && (addr === parseIp(plan.server) || (addr >= parseIp(plan.start) && addr <= parseIp(plan.end)))) {
        ctx.addIssue({ code: 'custom', path: ['nodes', node, 'links', seg], message: `${ip} lies in the DHCP pool for ${seg} (${plan.start}-${plan.end}, server ${plan.server}): pick an address below ${plan.start}` });
      }
      const other = seen.get(ip);
      if (other) ctx.addIssue({ code: 'custom', path: ['nodes', node, 'links', seg], message: `${ip} is also ${other}'s address` });
      seen.set(ip, node);
    }
    if (n.gateway !== undefined && isIp(n.gateway)) {
      const gw = parseIp(n.gateway);
      const on = Object.keys(n.links).find((seg) => { const c = lab.segments[seg]?.cidr; return c !== undefined && isCidr(c) && contains(parseCidr(c), gw); });
      if (Object.values(n.links).includes(n.gateway)) {
        ctx.addIssue({ code: 'custom', path: ['nodes', node, 'gateway'], message: `${n.gateway} is ${node}'s own address: the gateway is another node's address (e.g. the edge router's)` });
      } else if (!on) {
        ctx.addIssue({ code: 'custom', path: ['nodes', node, 'gateway'], message: `${n.gateway} is on none of ${node}'s segments (${Object.keys(n.links).join(', ')})` });
      }
    }
    if (n.roles.includes('hypervisor') && !Object.keys(n.links).some((seg) => lab.segments[seg]?.instances)) {
      ctx.addIssue({ code: 'custom', path: ['nodes', node, 'links'], message: 'a hypervisor needs a link to at least one segment with instances: true' });
    }
  }
  const cidrs = Object.entries(lab.segments).filter(([, s]) => isCidr(s.cidr)).map(([name, s]) => ({ name, net: parseCidr(s.cidr) }));
  for (const [i, a] of cidrs.entries()) {
    for (const b of cidrs.slice(i + 1)) {
      if (contains(a.net, b.net.network) || contains(b.net, a.net.network)) {
        ctx.addIssue({ code: 'custom', path: ['segments', b.name, 'cidr'], message: `overlaps segment ${a.name}` });
      }
    }
  }
  if (!Object.values(lab.nodes).some((n) => n.roles.includes('hypervisor'))) {
    ctx.addIssue({ code: 'custom', path: ['nodes'], message: `${where} needs at least one node with role hypervisor` });
  }
}

export const LabSpecSchema = z.object({
  name: z.string().regex(/^[a-z][a-z0-9-]{0,19}$/, 'the lab name prefixes its namespaces: 1-20 lower-case letters, digits or "-"').default('kumo'),
  segments: z.record(segmentName, segmentSchema),
  nodes: z.record(nodeName, z.object({
    roles: z.array(z.enum(LAB_ROLES)).min(1),
    /** segment → this node's address on it */
    links: z.record(segmentName, ipv4),
    /** The node's default route: another node's address on one of this node's segments (e.g. the edge router's). */
    gateway: ipv4.optional(),
  }).strict()),
  /**
   * QEMU's migration certificates for the hypervisors (`migrate --encrypted`): a folder with a
   * subfolder per hypervisor node holding ca-cert.pem, server-cert.pem, server-key.pem,
   * client-cert.pem, client-key.pem (one CA; the server certificate names the node's first
   * address). Without it the lab migrates in plain TCP only, like a host without certificates.
   */
  migration_tls: z.string().regex(/^\/[^\s,"]*$/, 'an absolute path without spaces, commas or quotes').optional(),
}).strict().superRefine((lab, ctx) => {
  checkTopology(lab, ctx, 'the lab');
});

export type LabSpec = z.output<typeof LabSpecSchema>;

/**
 * The DHCP pool of an instance segment: the upper half of the subnet (a CIDR of its own, so
 * access rules can name "the instances"), leaving the lower half for nodes and fixed addresses;
 * the server takes the last address.
 */
export function dhcpPlan(segmentCidr: string): { server: string; start: string; end: string; prefix: number; pool: string } {
  const net = parseCidr(segmentCidr);
  const last = broadcast(net) - 1;
  const half = net.network + 2 ** (31 - net.prefix);
  return { server: formatIp(last), start: formatIp(half), end: formatIp(last - 1), prefix: net.prefix, pool: `${formatIp(half)}/${net.prefix + 1}` };
}

/**
 * The course's project (seed notes, "클라우드 데이터센터 구축 프로젝트"): the LB with a frontend
 * on the outside network (10.5.1.X) and a backend link; KVM1 and KVM2 on the backend and the
 * storage network; STG on the storage network only; "internet" stands for the outside.
 */
export const COURSE_LAB: LabSpec = LabSpecSchema.parse({
  name: 'kumo',
  segments: {
    frontend: { cidr: '10.5.1.0/24' },
    backend: { cidr: '10.5.2.0/24', instances: true },
    storage: { cidr: '10.5.3.0/24', instances: true },
  },
  nodes: {
    internet: { roles: ['outside'], links: { frontend: '10.5.1.1' } },
    lb: { roles: ['lb'], links: { frontend: '10.5.1.213', backend: '10.5.2.10' } },
    kvm1: { roles: ['hypervisor'], links: { backend: '10.5.2.11', storage: '10.5.3.11' } },
    kvm2: { roles: ['hypervisor'], links: { backend: '10.5.2.12', storage: '10.5.3.12' } },
    stg: { roles: ['storage'], links: { storage: '10.5.3.10' } },
  },
});
