import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { invalid, KumoError } from '../../model/errors.js';
import { FlavorService } from '../../service/flavors.js';
import { ImageService } from '../../service/images.js';
import { waitForAddresses } from '../../service/instance-addresses.js';
import type { CreateRequest } from '../../service/instances.js';
import { KeypairService } from '../../service/keypairs.js';
import { NetworkService } from '../../service/networks.js';
import { ownerOf } from '../routes/operations.js';
import { renderInstance } from '../routes/instances.js';
import { afterMarker, baseUrl, OPENSTACK_PATHS, osUuid, role, type OpenStackDeps } from './common.js';
import { serverSummary } from './compute-render.js';
import { actorOf, ServerFinder, type Server } from './compute-find.js';

/**
 * Nova's servers on kumo's instances: list (with Nova's name and status filters and paging),
 * detail, show, and create, which runs as a kumo operation (instance.create) whose id is the
 * new server's id: the answer is immediate, the server shows BUILD until its domain runs and
 * its NICs have their DHCP addresses.
 */

const IdParams = z.object({ id: z.string() });

const NetworkEntry = z.looseObject({
  uuid: z.string().optional(),
  port: z.string().nullable().optional(),
  fixed_ip: z.string().nullable().optional(),
});

const count = z.union([z.number().int(), z.string().regex(/^\d+$/)]).optional();

const ServerCreate = z.looseObject({
  server: z.looseObject({
    name: z.string().min(1).max(255),
    imageRef: z.string().optional(),
    flavorRef: z.union([z.string().min(1), z.number().int()]),
    networks: z.union([z.literal('auto'), z.literal('none'), z.array(NetworkEntry)]).optional(),
    key_name: z.string().nullable().optional(),
    user_data: z.string().nullable().optional(),
    adminPass: z.string().min(1).max(255).optional(),
    min_count: count,
    max_count: count,
    metadata: z.record(z.string(), z.string()).optional(),
    personality: z.array(z.unknown()).optional(),
    block_device_mapping_v2: z.array(z.unknown()).optional(),
  }),
});
type ServerCreateBody = z.infer<typeof ServerCreate>['server'];

/** A reference Nova takes as an id or a URL to it: the last path segment. */
const lastSegment = (ref: string) => ref.replace(/\/+$/, '').split('/').pop() ?? ref;

/** Nova's user_data: base64 of at most 64 KiB; kumo takes a #cloud-config from it. */
function userDataOf(text: string | null | undefined): string | undefined {
  if (text === null || text === undefined || text === '') return undefined;
  if (!/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(text)) throw invalid('user_data is not valid base64', 'send the #cloud-config base64-encoded (the openstack client does it for --user-data FILE)');
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length > 65_535) throw invalid(`user_data is ${bytes.length} bytes, at most 65535`, 'send a shorter #cloud-config');
  return bytes.toString('utf8');
}

/** What kumo cannot do of a create, refused before anything is made. */
function refuseUnserved(s: ServerCreateBody): void {
  const fix = 'leave it out: kumo serves servers booted from an image, on its networks, with kumo\'s DHCP';
  if (s.block_device_mapping_v2?.length) throw invalid('block_device_mapping_v2 (boot from volume) is not served by kumo', `${fix}; attach volumes after the create (openstack server add volume)`);
  if (!s.imageRef) throw invalid('imageRef is required: kumo boots every server from an image', 'pass --image NAME (openstack image list)');
  if (s.personality?.length) throw invalid('personality (injected files) is not served by kumo', 'pass the files in user_data (#cloud-config write_files)');
  if (s.metadata && Object.keys(s.metadata).length) throw invalid('server metadata is not served by kumo', 'leave out --property');
  for (const [what, n] of [['min_count', s.min_count], ['max_count', s.max_count]] as const) {
    if (n !== undefined && Number(n) !== 1) throw invalid(`${what} is ${n}: kumo makes one server per request`, 'make each server with its own request (and name)');
  }
  if (Array.isArray(s.networks) && s.networks.some((n) => n.port || n.fixed_ip)) {
    throw invalid('networks with a port or a fixed_ip are not served by kumo', 'pass networks by uuid only (openstack server create --network NAME): kumo\'s DHCP gives the address');
  }
}

/** The kumo names a create's references point at: image (id or name), flavor, networks (ids). */
async function resolveRefs(deps: OpenStackDeps, req: FastifyRequest, s: ServerCreateBody) {
  const actor = actorOf(req);
  const imageRef = lastSegment(s.imageRef!);
  const image = new ImageService(deps.ctx, actor).list().find((i) => i.name === imageRef || osUuid('image', i.name) === imageRef);
  if (!image) throw invalid(`image ${imageRef} could not be found`, 'see `openstack image list`');
  const flavorRef = lastSegment(String(s.flavorRef));
  try {
    new FlavorService(deps.ctx, actor).get(flavorRef);
  } catch {
    throw invalid(`flavor ${flavorRef} could not be found`, 'see `openstack flavor list` (a flavor\'s id is its name)');
  }
  let networks: string[] | undefined;
  if (Array.isArray(s.networks) && s.networks.length) {
    const known = await new NetworkService(deps.ctx, deps.ctx.virsh, actor).list();
    networks = s.networks.map((n) => {
      const found = known.find((k) => osUuid('network', k.name) === n.uuid || k.name === n.uuid);
      if (!found) throw invalid(`network ${n.uuid ?? '(no uuid)'} could not be found`, 'see `openstack network list`');
      return found.name;
    });
  }
  const key = s.key_name ? new KeypairService(deps.ctx, actor).list().find((k) => k.name === s.key_name) : undefined;
  if (s.key_name && !key) throw invalid(`Invalid key_name provided: the project has no keypair "${s.key_name}"`, 'see `openstack keypair list`; import one with `openstack keypair create --public-key FILE NAME`');
  return { image: image.name, flavor: flavorRef, networks, sshKeys: key ? [key.publicKey] : [] };
}

/** Nova's generated admin password: 12 characters of letters and digits. */
const newPassword = () => randomBytes(12).toString('base64').replace(/[+/=]/g, '').padEnd(12, 'x').slice(0, 12);

function createRoute(app: FastifyInstance, deps: OpenStackDeps, finder: ServerFinder): void {
  app.post('/v2.1/servers', { ...role('member'), schema: { body: ServerCreate } }, async (req, reply) => {
    const body = (req.body as z.infer<typeof ServerCreate>).server;
    refuseUnserved(body);
    const refs = await resolveRefs(deps, req, body);
    const adminPass = body.adminPass ?? newPassword();
    const userData = userDataOf(body.user_data);
    const request: CreateRequest = {
      name: body.name, image: refs.image, flavor: refs.flavor, password: adminPass, sshKeys: refs.sshKeys,
      ...(refs.networks ? { networks: refs.networks } : {}), ...(userData !== undefined ? { userData } : {}),
    };
    const s = finder.instances(req);
    // Everything that can be refused is refused now (400/404/409), not as a failed server.
    await s.validate(request);
    let id = '';
    // The work runs after startFor returns (the registry defers it): the instance gets the operation's id as its UUID.
    const op = deps.ops.startFor(ownerOf(req), 'instance.create', request.name, async (progress) => {
      await s.create({ ...request, uuid: id }, progress);
      progress('address');
      await waitForAddresses(s, request.name);
      return renderInstance(await s.get(request.name, { ask: true }));
    });
    id = op.id;
    const base = baseUrl(req);
    return reply.code(202).header('location', `${base}${OPENSTACK_PATHS.compute}/v2.1/servers/${id}`).send({
      server: { ...serverSummary(base, id, request.name), adminPass, 'OS-DCF:diskConfig': 'MANUAL', security_groups: [{ name: 'default' }] },
    });
  });
}

/**
 * Nova's status filter and its name filter. Nova takes the name as a regular expression; kumo
 * matches it as text anywhere in the name, with Nova's `^` and `$` anchors honoured: a pattern
 * from a caller is never compiled, so none can stall the server (catastrophic backtracking).
 */
function matches(query: Record<string, unknown>, status: (s: Server) => string) {
  const name = typeof query.name === 'string' && query.name !== '' ? query.name : undefined;
  const start = name?.startsWith('^') ?? false;
  const end = (name?.endsWith('$') && !name.endsWith('\\$')) ?? false;
  const text = name?.slice(start ? 1 : 0, end ? -1 : undefined);
  const nameMatches = (n: string) => text === undefined
    || (start && end ? n === text : start ? n.startsWith(text) : end ? n.endsWith(text) : n.includes(text));
  const wanted = typeof query.status === 'string' && query.status !== '' ? query.status.toUpperCase() : undefined;
  return (s: Server) => nameMatches(ServerFinder.idName(s).name) && (!wanted || status(s) === wanted);
}

/** Nova's paging: `limit` servers after the one with id `marker`, and a next link when more follow. */
function page<T extends Server>(all: T[], query: Record<string, unknown>): { items: T[]; more: boolean } {
  const marker = typeof query.marker === 'string' && query.marker !== '' ? query.marker : undefined;
  const rest = afterMarker(all, (s) => ServerFinder.idName(s).id, marker,
    (m) => new KumoError('INVALID_INPUT', `marker [${m}] not found`, 'page on with the id of the last server of the previous page'));
  const limit = query.limit === undefined ? Infinity : Number(query.limit);
  if (limit !== Infinity && (!Number.isInteger(limit) || limit < 0)) throw invalid(`limit must be a whole number, got ${String(query.limit)}`, 'e.g. ?limit=10');
  return { items: rest.slice(0, limit), more: limit < rest.length };
}

function listRoutes(app: FastifyInstance, finder: ServerFinder): void {
  const listed = async (req: FastifyRequest) => {
    const query = req.query as Record<string, unknown>;
    const render = finder.renderer(req);
    const status = (s: Server) => (render(s) as { status: string }).status;
    const { items, more } = page((await finder.list(req)).filter(matches(query, status)), query);
    const last = items.at(-1);
    const next = more && last ? [{ rel: 'next', href: `${baseUrl(req)}${OPENSTACK_PATHS.compute}/v2.1/servers?limit=${String(query.limit)}&marker=${ServerFinder.idName(last).id}` }] : [];
    return { items, render, links: next.length ? { servers_links: next } : {} };
  };
  app.get('/v2.1/servers', role('reader'), async (req) => {
    const { items, links } = await listed(req);
    const base = baseUrl(req);
    return { servers: items.map((s) => { const { id, name } = ServerFinder.idName(s); return serverSummary(base, id, name); }), ...links };
  });
  app.get('/v2.1/servers/detail', role('reader'), async (req) => {
    const { items, render, links } = await listed(req);
    return { servers: items.map(render), ...links };
  });
  app.get('/v2.1/servers/:id', { ...role('reader'), schema: { params: IdParams } }, async (req) => {
    const server = await finder.find(req, (req.params as { id: string }).id);
    return { server: finder.renderer(req)(server) };
  });
}

export function serverRoutes(app: FastifyInstance, deps: OpenStackDeps, finder: ServerFinder): void {
  listRoutes(app, finder);
  createRoute(app, deps, finder);
}
