import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import type { Actor } from '../../model/actor.js';
import { forbidden, invalid, notFound } from '../../model/errors.js';
import type { Image } from '../../model/types.js';
import { ImageUploads, UploadTooLarge, type QueuedImageSpec } from '../../service/image-uploads.js';
import { ImageService } from '../../service/images.js';
import { baseUrl, guardOpenStack, installOsErrors, osUuid, role, UUID_TEXT, type OpenStackDeps } from './common.js';
import { pageImages, type ImageQuery } from './image-list.js';
import { activeImage, glanceFault, glanceVersions, IMAGE_SCHEMA, IMAGES_SCHEMA, queuedImage, type GlanceImage } from './image-render.js';

/**
 * Glance v2 at /image, as much as OpenStack's clients use: the version document, images (list
 * with filters and pages, show, create, upload, delete) and the schemas. An image is a kumo image
 * (id: osUuid('image', name)); Glance's two-step create keeps the record between POST and PUT in
 * ImageUploads, and the upload imports the data as `kumo image import` does. Images are the
 * whole cloud's in kumo's roles: reading needs reader, changing needs admin (roles.ts's images).
 */

/** The fields a create may set; any other key is a property of the client's own (a string). */
const CreateImage = z.object({
  name: z.string().max(255).nullable().optional(),
  id: z.string().optional(),
  disk_format: z.string().nullable().optional(),
  container_format: z.string().nullable().optional(),
  visibility: z.string().optional(),
  protected: z.boolean().optional(),
  os_hidden: z.boolean().optional(),
  min_disk: z.number().int().min(0).optional(),
  min_ram: z.number().int().min(0).optional(),
  tags: z.array(z.string()).optional(),
}).passthrough();
type CreateImage = z.infer<typeof CreateImage>;

const IdParams = z.object({ id: z.string() });
type IdParams = z.infer<typeof IdParams>;

/** Fields only Glance sets: a create naming one is refused, as Glance does (403). */
const READ_ONLY = new Set(['status', 'size', 'virtual_size', 'checksum', 'os_hash_algo', 'os_hash_value', 'created_at', 'updated_at',
  'self', 'file', 'schema', 'locations', 'direct_url', 'owner']);
const MAX_PROPERTIES = 128;
const DISK_FORMATS = ['qcow2', 'raw'] as const;

export const imageRoutes: FastifyPluginAsync<OpenStackDeps> = async (app, deps) => {
  const { ctx } = deps;
  installOsErrors(app, glanceFault, ctx.paths.home);
  guardOpenStack(app, deps);
  const uploads = new ImageUploads(ctx);
  const images = (req: FastifyRequest) => new ImageService(ctx, actorOf(req));

  // The upload's body is a stream for the route to write to a file, never parsed or held whole.
  app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));

  /** Every image the project sees in Glance's shape: kumo's images and its own queued ones. */
  const everyImage = async (req: FastifyRequest): Promise<GlanceImage[]> => {
    const svc = images(req);
    const active = await Promise.all(svc.list().map(async (i) => render(svc, i)));
    return [...active, ...uploads.list(actorOf(req)).map(queuedImage)];
  };

  /** The image with this id, kumo's or queued; Glance's 404 otherwise (a name is not an id: clients then list by name). */
  const find = (req: FastifyRequest, id: string): { image: Image } | { queued: GlanceImage } => {
    const queued = uploads.get(actorOf(req), id);
    if (queued) return { queued: queuedImage(queued) };
    const image = UUID_TEXT.test(id) ? images(req).list().find((i) => osUuid('image', i.name) === id.toLowerCase()) : undefined;
    if (!image) throw notFound(`no image found with ID ${id}`, 'list the images (openstack image list), or look one up by name (GET /v2/images?name=NAME)');
    return { image };
  };

  // Glance answers its version list at the root with 300 Multiple Choices, and 200 at /versions.
  app.get('/', role('public'), async (req, reply) => reply.code(300).send(glanceVersions(baseUrl(req))));
  app.get('/versions', role('public'), async (req) => glanceVersions(baseUrl(req)));

  app.get('/v2/schemas/image', role('reader'), async () => IMAGE_SCHEMA);
  app.get('/v2/schemas/images', role('reader'), async () => IMAGES_SCHEMA);

  app.get('/v2/images', role('reader'), async (req) => pageImages(await everyImage(req), req.query as ImageQuery));

  app.get('/v2/images/:id', { ...role('reader'), schema: { params: IdParams } }, async (req) => {
    const found = find(req, (req.params as IdParams).id);
    if ('queued' in found) return found.queued;
    return render(images(req), found.image);
  });

  app.post('/v2/images', { ...role('admin'), schema: { body: CreateImage } }, async (req, reply) => {
    const spec = createSpec(req.body as CreateImage);
    return reply.code(201).send(queuedImage(uploads.queue(actorOf(req), spec)));
  });

  app.put('/v2/images/:id/file', { ...role('admin'), schema: { params: IdParams } }, async (req, reply) => {
    const { id } = req.params as IdParams;
    const data = req.body as Readable | undefined;
    if (!data || typeof data.pipe !== 'function') {
      // Glance's answer to any other media type; an empty PUT would leave a queued image that can never hold data.
      throw Object.assign(new Error('the image data must be sent with Content-Type: application/octet-stream'), { statusCode: 415 });
    }
    if (!uploads.get(actorOf(req), id)) {
      const found = find(req, id);
      if ('image' in found) throw Object.assign(new Error(`image ${id} has its data already: an active image's data cannot be replaced`), { statusCode: 409 });
    }
    const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
    await uploads.upload(actorOf(req), id, data, declared).catch((e: unknown) => {
      if (!(e instanceof UploadTooLarge)) throw e;
      // The rest of the data is not read: the connection closes after the answer rather than drain it.
      void reply.header('connection', 'close');
      throw Object.assign(new Error(`${e.message}; ${e.fix ?? ''}`), { statusCode: 413 });
    });
    return reply.code(204).send();
  });

  app.delete('/v2/images/:id', { ...role('admin'), schema: { params: IdParams } }, async (req, reply) => {
    const found = find(req, (req.params as IdParams).id);
    if ('queued' in found) uploads.forget(actorOf(req), found.queued.id);
    else await images(req).delete(found.image.name);
    return reply.code(204).send();
  });
};

/** Who asks: guardOpenStack sets it on every route but the public ones, which never get here. */
function actorOf(req: FastifyRequest): Actor {
  if (!req.actor) throw new Error('an Image API route ran without an authenticated actor');
  return req.actor;
}

async function render(svc: ImageService, image: Image): Promise<GlanceImage> {
  const facts = await svc.catalogFacts(image);
  return activeImage(image, { size: facts.sizeBytes, isPublic: facts.isPublic, owner: facts.owner });
}

/**
 * A create's body as kumo can hold it: a name by kumo's rules (the id, if given, must be the one
 * kumo derives from it), qcow2 or raw in a bare container, public (every image kumo makes is), no
 * tags and not protected; the other keys are the client's own string properties.
 */
function createSpec(body: CreateImage): QueuedImageSpec {
  const { name, id, disk_format, container_format, visibility, protected: isProtected, os_hidden, min_disk, min_ram, tags, ...rest } = body;
  if (!name) throw invalid('an image needs a name: kumo knows images by name', 'give one: openstack image create NAME');
  const kumoId = osUuid('image', name);
  if (id !== undefined && id.toLowerCase() !== kumoId) {
    throw invalid(`kumo derives an image's id from its name: image "${name}" is ${kumoId}, not ${id}`, 'leave the id out (no --id)');
  }
  const diskFormat = disk_format == null ? undefined : DISK_FORMATS.find((f) => f === disk_format);
  if (disk_format != null && !diskFormat) {
    throw invalid(`kumo takes qcow2 or raw images, not ${disk_format}`, `convert it first: qemu-img convert -O qcow2 FILE ${name}.qcow2, then --disk-format qcow2`);
  }
  if (container_format != null && container_format !== 'bare') {
    throw invalid(`kumo takes images in no container (bare), not ${container_format}`, 'give the disk image itself, with --container-format bare');
  }
  if (visibility !== undefined && visibility !== 'public') {
    throw invalid(`every image kumo holds is public (every project may use it): it cannot make a ${visibility} one`, 'leave the visibility out, or ask for --public');
  }
  if (isProtected === true) throw invalid('kumo has no protected images (it refuses to delete an image instances use)', 'leave --protected out');
  if (os_hidden === true) throw invalid('kumo has no hidden images', 'leave os_hidden out');
  if (tags?.length) throw invalid('kumo\'s images carry no tags', 'leave the tags out');
  return { id: kumoId, name, ...(diskFormat ? { diskFormat } : {}), ...(container_format ? { containerFormat: 'bare' } : {}),
    minDisk: min_disk ?? 0, minRam: min_ram ?? 0, properties: ownProperties(rest) };
}

/** The client's own properties: strings (Glance's additionalProperties), not Glance's read-only fields, at most 128. */
function ownProperties(rest: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(rest)) {
    if (READ_ONLY.has(key)) throw forbidden(`attribute '${key}' is read-only`, 'leave it out: Glance (here kumo) sets it');
    if (typeof value !== 'string') throw invalid(`property ${key} must be a string, got ${JSON.stringify(value)}`, `send it as a string: "${String(value)}"`);
    if (key.length > 255 || value.length > 65535) throw invalid(`property ${key.slice(0, 40)} is too long (keys up to 255 characters, values up to 65535)`);
    out[key] = value;
  }
  if (Object.keys(out).length > MAX_PROPERTIES) throw invalid(`an image may have at most ${MAX_PROPERTIES} properties of its own`);
  return out;
}
