import { z } from 'zod';
import { CRYPT_HASH } from './password.js';
import { COURSE_LAB, LabSpecSchema } from './lab.js';
import { HostsSpecSchema, type FileTopology } from './hosts-spec.js';
import { contains, formatIp, isSshPublicKey, mistakableName, MOUNT_PATH_PATTERN, mountPathFault, parseCidr, parseIp, readCidr } from './checks.js';
import { ipv4String, portSchema } from './check-schemas.js';
import { cloudConfigProblems } from './cloud-config.js';
import { LIMITS } from './sizes.js';
import { parseReadyCheck } from './readiness.js';

/**
 * The datacenter file (`kumo plan|apply|destroy FILE`): the course's project as one
 * declaration. Names are checked here; references between sections (an instance's image, a
 * load balancer's instances, a mount's share) in `checkReferences`, with the path of the key.
 */
/** A section's key (checked for mistakable names in the file's superRefine: a key's own issue would only say "Invalid key"). */
const key = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$/, 'a name is lower-case letters, digits and inner "-", at most 42 characters');
const mistakableIssue = (n: string): string | undefined => {
  const mistakable = mistakableName(n);
  return mistakable && `"${n}" cannot be a name: ${mistakable}; put a letter in it, e.g. "vm${n.slice(0, 8)}"`;
};
const name = key.superRefine((n, ctx) => {
  const message = mistakableIssue(n);
  if (message) ctx.addIssue({ code: 'custom', message });
});
const ipv4 = ipv4String('10.5.1.213');

/** A normal absolute path, not a system folder (the pattern of its characters is the schema's own, reported once). */
function checkMountPath(path: string, ctx: z.RefinementCtx): void {
  const fault = MOUNT_PATH_PATTERN.test(path) ? mountPathFault(path) : undefined;
  if (fault) ctx.addIssue({ code: 'custom', message: fault });
}

const InstanceGroupSchema = z.object({
  /** Instances NAME-1 … NAME-count. */
  count: z.number().int().min(1).max(64).default(1),
  image: name,
  flavor: name,
  networks: z.array(name).min(1).optional(),
  root_password_hash: z.string().regex(CRYPT_HASH, 'expected a crypt(3) hash such as "$6$salt$..." (mkpasswd -m sha-512)').optional(),
  ssh_keys: z.array(z.string().refine(isSshPublicKey, 'not an ssh public key: give the line of a .pub file (ssh-ed25519 AAAA... comment)')).default([]),
  /** A share mounted (NFSv4.1 from the storage node) before the web server starts. */
  mount: z.object({ share: name, path: z.string().regex(MOUNT_PATH_PATTERN, 'an absolute path').superRefine(checkMountPath) }).strict().optional(),
  /** Extra cloud-config runcmd lines. */
  runcmd: z.array(z.string()).default([]),
  /** More cloud-config (write_files, packages, ...), merged after kumo's: list keys are joined. */
  user_data: z.record(z.string(), z.unknown()).default({}),
  /** spread: each instance on the hypervisor with the most memory left; pack: fill one before the next. */
  placement: z.enum(['spread', 'pack']).default('spread'),
  /** Only these hypervisors (default: any). */
  hosts: z.array(name).min(1).optional(),
  /** Highly available: when a member's hypervisor dies and is fenced, the HA watcher starts it on another. */
  ha: z.boolean().optional(),
  /** What apply waits for before the next kind (default: the image's readiness, model/readiness.ts). */
  wait_for: z.string().superRefine((v, ctx) => {
    try { parseReadyCheck(v, 'wait_for'); } catch (e) { ctx.addIssue({ code: 'custom', message: (e as Error).message }); }
  }).optional(),
}).strict();

/** The bounds `kumo flavor create` has (model/sizes.ts): a flavor the file may declare can be made. */
const size = (what: keyof typeof LIMITS) => z.number().int().min(LIMITS[what].min).max(LIMITS[what].max);
const FlavorSchema = z.object({
  vcpus: size('vcpus'),
  ram_mib: size('ram'),
  disk_gib: size('disk-size'),
}).strict();

/** Traffic monitoring: a collector kumo keeps running, reading every hypervisor. */
const MonitoringSchema = z.object({
  /** Seconds between readings. */
  interval: z.number().int().min(1).max(3600).default(5),
  /** How long history is kept: 90m, 24h, 7d. */
  retention: z.string().regex(/^\d+[smhd]$/, 'a duration such as 90m, 24h or 7d').default('24h'),
}).strict();

/** What the file opens besides what its load balancers and shares need (all else stays dropped). */
const FirewallSchema = z.object({
  allow: z.array(z.object({
    /** A node with a filtered input: an lb or storage node. */
    host: name,
    port: portSchema,
    proto: z.enum(['tcp', 'udp']).default('tcp'),
    /** A lab segment (its whole CIDR) or a CIDR such as 10.5.2.0/24. */
    from: z.string().min(1),
  }).strict()).default([]),
}).strict();

/**
 * An image kumo builds: the tiny image (registered as "tiny") or a Debian cloud image
 * (`kumo image build debian-12`, registered under the key's name).
 */
const ImageSchema = z.discriminatedUnion('build', [
  z.object({ build: z.literal('tiny') }).strict(),
  z.object({
    build: z.literal('debian-12'),
    /** The image's disk in GiB; instances grow it to their flavor's size. */
    size: z.number().int().min(2).max(64).optional(),
    /** Debian packages besides the base set (cloud-init, ssh, nfs-common, ...). */
    packages: z.array(z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, 'a Debian package name')).default([]),
  }).strict(),
]);

const ShareSchema = z.object({
  networks: z.array(name).min(1),
  read_only: z.boolean().default(false),
  /** Files put in the share when they are missing (kumo never overwrites them afterwards). */
  files: z.record(z.string().regex(/^[A-Za-z0-9._-]+$/, 'a file name without "/"'), z.string()).default({}),
}).strict();

const LoadBalancerSchema = z.object({
  host: name,
  frontend: z.object({ address: ipv4, port: portSchema.default(80) }).strict(),
  network: name,
  /** An instance group of this file. */
  instances: name,
  backend_port: portSchema.default(8080),
  waf: z.object({ enabled: z.boolean().default(true), paranoia: z.number().int().min(1).max(4).default(1) }).strict().optional(),
}).strict();

/**
 * The edge router (the course's VyOS): a lab node with role edge between the outside network and
 * the LB. It source-NATs its other segments out of `outside` behind `public_address`, forwards
 * each public port to a load balancer's frontend (DNAT), and accepts SSH from outside to itself only.
 */
const EdgeSchema = z.object({
  /** A lab node with role edge. */
  host: name,
  /** The lab segment facing the outside (the node's interface of that name). */
  outside: name,
  /** The edge's address on `outside`: forwards match it, and SNAT uses it. */
  public_address: ipv4,
  forwards: z.array(z.object({
    port: portSchema,
    /** A load balancer of this file: the port goes to its frontend address and port. */
    to: name,
  }).strict()).default([]),
  /** Accept SSH (22) from the outside to the edge itself. */
  ssh: z.boolean().default(true),
}).strict();

export const DatacenterSchema = z.object({
  name,
  /** The project its instances, shares and load balancers belong to (its quotas are checked by plan); default: default. */
  project: name.default('default'),
  /** The one-machine lab: `course` for the course's topology, or a lab of its own; leave out on real hosts. */
  lab: z.union([z.literal('course').transform(() => COURSE_LAB), LabSpecSchema]).optional(),
  /** Real hosts (or a bare lab's namespaces) in the lab's shape, with how kumo reaches each: the alternative to `lab`. */
  hosts: HostsSpecSchema.optional(),
  images: z.record(key, ImageSchema).default({}),
  flavors: z.record(key, FlavorSchema).default({}),
  shares: z.record(key, ShareSchema).default({}),
  instances: z.record(key, InstanceGroupSchema).default({}),
  loadbalancers: z.record(key, LoadBalancerSchema).default({}),
  edge: EdgeSchema.optional(),
  firewall: FirewallSchema.default({ allow: [] }),
  monitoring: MonitoringSchema.optional(),
}).strict().superRefine((dc, ctx) => {
  if (dc.lab && dc.hosts) ctx.addIssue({ code: 'custom', path: ['hosts'], message: 'give either lab (the one-machine lab) or hosts (real hosts), not both' });
  for (const section of ['images', 'flavors', 'shares', 'instances', 'loadbalancers'] as const) {
    for (const k of Object.keys(dc[section])) {
      const message = mistakableIssue(k);
      if (message) ctx.addIssue({ code: 'custom', path: [section, k], message });
    }
  }
  const topo = topologyOf(dc);
  // Messages name what the topology is: the existing wording for the lab, "hosts" for real hosts.
  const of = dc.lab ? 'the lab' : 'hosts';
  const labNetworks = topo ? Object.keys(topo.segments) : undefined;
  const checkNetwork = (n: string, path: (string | number)[]) => {
    if (labNetworks && !labNetworks.includes(n)) ctx.addIssue({ code: 'custom', path, message: `network "${n}" is not a segment of ${of} (${labNetworks.join(', ')})` });
  };
  if (!topo && (Object.keys(dc.loadbalancers).length || Object.keys(dc.shares).length)) {
    ctx.addIssue({ code: 'custom', path: [], message: 'load balancers and shares need the datacenter\'s topology: add `lab: course` (one machine) or `hosts:` (real hosts)' });
  }
  for (const [g, i] of Object.entries(dc.instances)) {
    if (!i.root_password_hash && !i.ssh_keys.length) ctx.addIssue({ code: 'custom', path: ['instances', g], message: 'no way to log in: give root_password_hash or ssh_keys' });
    if (i.mount && !dc.shares[i.mount.share]) ctx.addIssue({ code: 'custom', path: ['instances', g, 'mount', 'share'], message: `share "${i.mount.share}" is not declared under shares` });
    i.networks?.forEach((n, k) => checkNetwork(n, ['instances', g, 'networks', k]));
    if (topo) {
      i.hosts?.forEach((h, k) => {
        if (!topo.nodes[h]?.roles.includes('hypervisor')) {
          ctx.addIssue({ code: 'custom', path: ['instances', g, 'hosts', k], message: `"${h}" is not a hypervisor of ${of} (${Object.entries(topo.nodes).filter(([, n]) => n.roles.includes('hypervisor')).map(([x]) => x).join(', ')})` });
        }
      });
    }
    for (const k of Object.keys(i.user_data)) {
      if (['hostname', 'fqdn', 'users'].includes(k)) ctx.addIssue({ code: 'custom', path: ['instances', g, 'user_data', k], message: `kumo sets ${k} itself (the instance's name and root's login); leave it out` });
    }
    for (const p of cloudConfigProblems(i.user_data)) ctx.addIssue({ code: 'custom', path: ['instances', g, 'user_data', ...p.path], message: p.message });
  }
  for (const [img, spec] of Object.entries(dc.images)) {
    if (spec.build === 'tiny' && img !== 'tiny') ctx.addIssue({ code: 'custom', path: ['images', img], message: 'the tiny image is named "tiny" (import others with kumo image import)' });
  }
  for (const [s, share] of Object.entries(dc.shares)) share.networks.forEach((n, k) => checkNetwork(n, ['shares', s, 'networks', k]));
  for (const [l, lb] of Object.entries(dc.loadbalancers)) {
    const group = dc.instances[lb.instances];
    if (!group) ctx.addIssue({ code: 'custom', path: ['loadbalancers', l, 'instances'], message: `instance group "${lb.instances}" is not declared under instances` });
    else if (group.networks && !group.networks.includes(lb.network)) {
      ctx.addIssue({ code: 'custom', path: ['loadbalancers', l, 'network'], message: `the instances of "${lb.instances}" are not on network "${lb.network}" (${group.networks.join(', ')})` });
    }
    checkNetwork(lb.network, ['loadbalancers', l, 'network']);
    if (topo) {
      const node = topo.nodes[lb.host];
      if (!node) ctx.addIssue({ code: 'custom', path: ['loadbalancers', l, 'host'], message: `"${lb.host}" is not a node of ${of}` });
      else if (!node.roles.includes('lb')) ctx.addIssue({ code: 'custom', path: ['loadbalancers', l, 'host'], message: `${dc.lab ? 'lab node' : 'node'} "${lb.host}" does not have the lb role` });
      else if (!Object.values(node.links).includes(lb.frontend.address)) {
        ctx.addIssue({ code: 'custom', path: ['loadbalancers', l, 'frontend', 'address'], message: `${lb.frontend.address} is not an address of ${lb.host} (${Object.values(node.links).join(', ')})` });
      }
    }
  }
  if (dc.edge) checkEdge(topo, dc.lab ? 'lab node' : 'node', dc.loadbalancers, dc.edge, ctx);
  dc.firewall.allow.forEach((a, k) => {
    const issue = (key: string, message: string) => ctx.addIssue({ code: 'custom', path: ['firewall', 'allow', k, key], message });
    if (!topo) return issue('host', 'access rules are derived from the topology\'s addresses; this file has neither lab nor hosts');
    const node = topo.nodes[a.host];
    if (!node) issue('host', `"${a.host}" is not a node of ${of}`);
    else if (!node.roles.some((r) => r === 'lb' || r === 'storage')) issue('host', `${a.host} has no filtered input (only lb and storage nodes do); its ports are open already`);
    if (topo.segments[a.from]) return;
    const source = readCidr(a.from, { bare: true });
    if (!source.ok && source.fault === 'host-bits') {
      issue('from', `${a.from} has host bits set (nft refuses it): did you mean ${formatIp(source.network)}/${source.prefix}, or the one address ${source.address}/32?`);
    } else if (!source.ok) {
      issue('from', `"${a.from}" is neither a ${dc.lab ? 'lab ' : ''}segment (${Object.keys(topo.segments).join(', ')}) nor an address or CIDR such as 10.5.2.0/24`);
    }
  });
});

function checkEdge(topo: FileTopology | undefined, kind: string, loadbalancers: Record<string, z.output<typeof LoadBalancerSchema>>,
  edge: z.output<typeof EdgeSchema>, ctx: z.RefinementCtx): void {
  const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path: ['edge', ...path], message });
  if (!topo) return issue([], 'the edge router is derived from the topology\'s addresses; this file has neither lab nor hosts (add `lab:` or `hosts:` with a node of role edge)');
  const node = topo.nodes[edge.host];
  if (!node) return issue(['host'], `"${edge.host}" is not a ${kind} (${Object.keys(topo.nodes).join(', ')})`);
  if (!node.roles.includes('edge')) return issue(['host'], `${kind} "${edge.host}" does not have the edge role`);
  if (!(edge.outside in node.links)) return issue(['outside'], `${edge.host} has no link on segment "${edge.outside}" (${Object.keys(node.links).join(', ')})`);
  if (node.links[edge.outside] !== edge.public_address) {
    issue(['public_address'], `${edge.public_address} is not ${edge.host}'s address on ${edge.outside} (${node.links[edge.outside]})`);
  }
  const inside = Object.keys(node.links).filter((seg) => seg !== edge.outside);
  if (!inside.length) issue(['host'], `${edge.host} has no link besides ${edge.outside}: nothing to route (give it a link on an inside segment)`);
  const ports = new Set<number>();
  edge.forwards.forEach((f, k) => {
    if (ports.has(f.port)) issue(['forwards', k, 'port'], `port ${f.port} is forwarded twice`);
    ports.add(f.port);
    const lb = loadbalancers[f.to];
    if (!lb) return issue(['forwards', k, 'to'], `load balancer "${f.to}" is not declared under loadbalancers`);
    const onInside = inside.some((seg) => { const c = topo.segments[seg]?.cidr; try { return c !== undefined && contains(parseCidr(c), parseIp(lb.frontend.address)); } catch { return false; } });
    if (!onInside) {
      issue(['forwards', k, 'to'], `the frontend ${lb.frontend.address} of "${f.to}" is on none of ${edge.host}'s inside segments (${inside.join(', ')}): put the LB's frontend there`);
    }
  });
  if (edge.ssh && ports.has(22)) issue(['ssh'], 'port 22 is both forwarded and the edge\'s own SSH: forward another public port');
}

export type Datacenter = z.output<typeof DatacenterSchema>;
export type InstanceGroup = Datacenter['instances'][string];

/** The instances a group stands for: web-1, web-2, … */
export const groupMembers = (group: string, count: number) => Array.from({ length: count }, (_, i) => `${group}-${i + 1}`);

/** The file's topology: its lab's or its hosts' (none: instances go to hosts registered otherwise). */
export function topologyOf(dc: { lab?: FileTopology | undefined; hosts?: FileTopology | undefined }): FileTopology | undefined {
  return dc.lab ?? dc.hosts;
}
