import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { DEFAULT_PROJECT, type Actor } from '../../model/actor.js';
import { invalid, notFound } from '../../model/errors.js';
import { InstanceService } from '../../service/instances.js';
import { networkOwner } from '../../service/network-owners.js';
import { NetworkService, type NetworkView } from '../../service/networks.js';
import type { NetworkRange } from '../../service/network-range.js';
import { baseUrl, guardOpenStack, installOsErrors, OPENSTACK_PATHS, role, type OpenStackDeps } from './common.js';
import {
  filtered, networkBody, networkId, neutronFault, portBodies, securityGroupBody, subnetBody, subnetId, type NetworkOwnership,
} from './network-render.js';

/**
 * Neutron v2.0 at /networking, on kumo's networks: a network is a kumo network (made bare:
 * isolated, no range), its subnet the range `subnet create` gives it (one per network), its
 * ports the NICs of the project's instances. docs/openstack.md and docs/decisions.md say why.
 */

const V2 = (base: string) => ({ id: 'v2.0', status: 'CURRENT', links: [{ rel: 'self', href: `${base}${OPENSTACK_PATHS.network}/v2.0/` }] });
const RESOURCES = ['networks', 'subnets', 'ports', 'security-groups', 'extensions'];

// Clients send more than kumo reads (descriptions, tags, ids of other services): unknown keys pass.
const NetworkCreate = z.object({
  network: z.object({
    name: z.string().min(1, 'a network needs a name: kumo names every network').max(64),
    admin_state_up: z.boolean().optional(),
    shared: z.boolean().optional(),
    'router:external': z.boolean().optional(),
    'provider:network_type': z.string().optional(),
  }).passthrough(),
});
const SubnetCreate = z.object({
  subnet: z.object({
    network_id: z.string().min(1),
    cidr: z.string().min(1, 'kumo needs the subnet\'s range: give --subnet-range CIDR'),
    ip_version: z.union([z.literal(4), z.literal('4'), z.literal(6), z.literal('6')]).optional(),
    name: z.string().max(255).optional(),
    gateway_ip: z.string().nullable().optional(),
    enable_dhcp: z.boolean().optional(),
    allocation_pools: z.array(z.object({ start: z.string(), end: z.string() })).optional(),
    dns_nameservers: z.array(z.string()).optional(),
    host_routes: z.array(z.unknown()).optional(),
  }).passthrough(),
});
type SubnetCreateBody = z.infer<typeof SubnetCreate>['subnet'];
const IdParams = z.object({ id: z.string() });

/** A kumo network's owner as Neutron shows it: the shared ones (built-ins, the lab's) under the default project. */
const ownership = (deps: OpenStackDeps, name: string): NetworkOwnership => {
  const owner = networkOwner(deps.ctx, name);
  return owner === 'shared' ? { project: DEFAULT_PROJECT, shared: true } : { project: owner.project, shared: false };
};

const withRange = (n: NetworkView): n is NetworkView & { cidr: string } => n.cidr !== undefined;

/** Neutron's subnet request as a kumo range; what kumo cannot do is refused by name. */
function rangeOf(s: SubnetCreateBody): NetworkRange {
  if (String(s.ip_version ?? 4) !== '4') throw invalid('kumo networks are IPv4 only', 'create the subnet with --ip-version 4');
  if (s.gateway_ip === null) throw invalid('kumo\'s host is the gateway of every network it addresses: a subnet without a gateway cannot be made', 'leave out --gateway none');
  if (s.dns_nameservers?.length) throw invalid('kumo\'s networks hand out their gateway as DNS server; other name servers cannot be set', 'leave out --dns-nameserver');
  if (s.host_routes?.length) throw invalid('kumo\'s networks have no host routes', 'leave out --host-route');
  const pools = s.allocation_pools ?? [];
  if (pools.length > 1) throw invalid('a kumo network has one DHCP range: give at most one allocation pool', 'pass a single --allocation-pool start=IP,end=IP');
  if (pools.length && s.enable_dhcp === false) throw invalid('an allocation pool is kumo\'s DHCP range: with DHCP off there is none', 'leave out --allocation-pool, or keep DHCP on');
  return {
    cidr: s.cidr,
    ...(s.gateway_ip ? { gateway: s.gateway_ip } : {}),
    ...(pools[0] ? { dhcp: `${pools[0].start}-${pools[0].end}` } : {}),
    ...(s.enable_dhcp === false ? { noDhcp: true } : {}),
  };
}

/** What the route groups share: the caller's services and the lookups by Neutron id. */
function lookups(deps: OpenStackDeps) {
  const actor = (req: FastifyRequest): Actor => req.actor!;
  const networks = (req: FastifyRequest) => new NetworkService(deps.ctx, deps.ctx.virsh, actor(req));
  return {
    actor, networks,
    owner: (name: string) => ownership(deps, name),
    query: (req: FastifyRequest) => (req.query ?? {}) as Record<string, unknown>,
    id: (req: FastifyRequest) => (req.params as z.infer<typeof IdParams>).id,
    /** The network with this Neutron id among those the caller sees (404 in Neutron's words otherwise). */
    networkById: async (req: FastifyRequest, id: string): Promise<NetworkView> => {
      const found = (await networks(req).list()).find((n) => networkId(n.name) === id);
      if (!found) throw notFound(`Network ${id} could not be found.`, 'see `openstack network list`');
      return found;
    },
    subnetById: async (req: FastifyRequest, id: string): Promise<NetworkView & { cidr: string }> => {
      const found = (await networks(req).list()).filter(withRange).find((n) => subnetId(n.name) === id);
      if (!found) throw notFound(`Subnet ${id} could not be found.`, 'see `openstack subnet list`');
      return found;
    },
    ports: async (req: FastifyRequest) => {
      const instances = await new InstanceService(deps.ctx, actor(req)).list();
      return instances.flatMap((i) => portBodies(i, actor(req).project));
    },
  };
}
type Lookups = ReturnType<typeof lookups>;

function networkRoutesOf(app: FastifyInstance, deps: OpenStackDeps, l: Lookups): void {
  app.get('/v2.0/networks', role('reader'), async (req) => {
    const all = (await l.networks(req).list()).map((n) => networkBody(n, l.owner(n.name)));
    return { networks: filtered(all, l.query(req)) };
  });
  app.get('/v2.0/networks/:id', { ...role('reader'), schema: { params: IdParams } }, async (req) => {
    const n = await l.networkById(req, l.id(req));
    return { network: networkBody(n, l.owner(n.name)) };
  });
  app.post('/v2.0/networks', { ...role('member'), schema: { body: NetworkCreate } }, async (req, reply) => {
    const asked = (req.body as z.infer<typeof NetworkCreate>).network;
    if (asked.admin_state_up === false) throw invalid('kumo\'s networks are always up', 'leave out --disable');
    if (asked.shared) throw invalid('a network made here belongs to the project; kumo\'s shared networks are the built-in and the lab\'s', 'leave out --share');
    if (asked['router:external']) throw invalid('kumo has no routers: a network cannot be external', 'leave out --external');
    const type = asked['provider:network_type'];
    if (type !== undefined && type !== 'local') throw invalid(`kumo makes tenant networks of type "local" only, not "${type}"`, 'leave out --provider-network-type');
    const n = await l.networks(req).create({ name: asked.name, mode: 'isolated', bare: true, autostart: true });
    deps.ops.resourceChanged('network', n.name, 'created');
    return reply.code(201).send({ network: networkBody(n, l.owner(n.name)) });
  });
  app.delete('/v2.0/networks/:id', { ...role('member'), schema: { params: IdParams } }, async (req, reply) => {
    const n = await l.networkById(req, l.id(req));
    await l.networks(req).delete(n.name);
    deps.ops.resourceChanged('network', n.name, 'deleted');
    return reply.code(204).send();
  });
}

function subnetRoutesOf(app: FastifyInstance, deps: OpenStackDeps, l: Lookups): void {
  app.get('/v2.0/subnets', role('reader'), async (req) => {
    const all = (await l.networks(req).list()).filter(withRange).map((n) => subnetBody(n, l.owner(n.name)));
    return { subnets: filtered(all, l.query(req)) };
  });
  app.get('/v2.0/subnets/:id', { ...role('reader'), schema: { params: IdParams } }, async (req) => {
    const n = await l.subnetById(req, l.id(req));
    return { subnet: subnetBody(n, l.owner(n.name)) };
  });
  app.post('/v2.0/subnets', { ...role('member'), schema: { body: SubnetCreate } }, async (req, reply) => {
    const asked = (req.body as z.infer<typeof SubnetCreate>).subnet;
    const range = rangeOf(asked);
    const n = await l.networkById(req, asked.network_id);
    if (n.cidr) {
      throw invalid(`network "${n.name}" has its subnet already (${n.cidr}): a kumo network has one range`,
        `delete that subnet first (openstack subnet delete ${subnetId(n.name)}), or make another network`);
    }
    const made = await l.networks(req).readdress(n.name, range, asked.name || undefined);
    deps.ops.resourceChanged('network', n.name, 'readdressed');
    if (!withRange(made)) throw invalid(`network "${n.name}" has no range after its subnet was made`);
    return reply.code(201).send({ subnet: subnetBody(made, l.owner(made.name)) });
  });
  app.delete('/v2.0/subnets/:id', { ...role('member'), schema: { params: IdParams } }, async (req, reply) => {
    const n = await l.subnetById(req, l.id(req));
    await l.networks(req).readdress(n.name, undefined);
    deps.ops.resourceChanged('network', n.name, 'readdressed');
    return reply.code(204).send();
  });
}

function portRoutesOf(app: FastifyInstance, l: Lookups): void {
  app.get('/v2.0/ports', role('reader'), async (req) => ({ ports: filtered(await l.ports(req), l.query(req)) }));
  app.get('/v2.0/ports/:id', { ...role('reader'), schema: { params: IdParams } }, async (req) => {
    const port = (await l.ports(req)).find((p) => p.id === l.id(req));
    if (!port) throw notFound(`Port ${l.id(req)} could not be found.`, 'see `openstack port list`');
    return { port };
  });
  app.get('/v2.0/security-groups', role('reader'), async (req) => ({ security_groups: filtered([securityGroupBody(l.actor(req).project)], l.query(req)) }));
  app.get('/v2.0/security-groups/:id', { ...role('reader'), schema: { params: IdParams } }, async (req) => {
    const group = securityGroupBody(l.actor(req).project);
    if (l.id(req) !== group.id && l.id(req) !== group.name) throw notFound(`Security group ${l.id(req)} does not exist`, 'kumo has one group per project: default');
    return { security_group: group };
  });
}

export const networkRoutes: FastifyPluginAsync<OpenStackDeps> = async (app, deps) => {
  installOsErrors(app, neutronFault, deps.ctx.paths.home);
  guardOpenStack(app, deps);
  app.get('/', role('public'), async (req) => ({ versions: [V2(baseUrl(req))] }));
  app.get('/v2.0', role('public'), async (req) => ({
    resources: RESOURCES.map((r) => ({ name: r.replace(/s$/, ''), collection: r, links: [{ rel: 'self', href: `${baseUrl(req)}${OPENSTACK_PATHS.network}/v2.0/${r}` }] })),
  }));
  // kumo serves no Neutron extension: clients that ask learn so and use the core API.
  app.get('/v2.0/extensions', role('reader'), async () => ({ extensions: [] }));
  const l = lookups(deps);
  networkRoutesOf(app, deps, l);
  subnetRoutesOf(app, deps, l);
  portRoutesOf(app, l);
};
