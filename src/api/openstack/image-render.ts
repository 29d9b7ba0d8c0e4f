import type { Image } from '../../model/types.js';
import type { QueuedImage } from '../../service/image-uploads.js';
import { OPENSTACK_PATHS, osTime, osUuid } from './common.js';

/**
 * Glance v2's bodies from kumo's images and the queued ones of the two-step create: the version
 * document, an image, and the JSON schemas glanceclient validates images against.
 */

/** The version kumo answers as: the Image API v2 of Glance's 2023.1 (v2.16 adds nothing clients of the issue use). */
export const GLANCE_VERSION = 'v2.15';

/** Glance's version list: the current one and the older v2 ones it still serves, each at /image/v2/. */
export function glanceVersions(base: string) {
  const href = `${base}${OPENSTACK_PATHS.image}/v2/`;
  const older = ['v2.14', 'v2.13', 'v2.12', 'v2.11', 'v2.10', 'v2.9', 'v2.8', 'v2.7', 'v2.6', 'v2.5', 'v2.4', 'v2.3', 'v2.2', 'v2.1', 'v2.0'];
  return {
    versions: [GLANCE_VERSION, ...older].map((id, i) => ({ id, status: i === 0 ? 'CURRENT' : 'SUPPORTED', links: [{ rel: 'self', href }] })),
  };
}

/** Glance's error body, as webob renders it for a JSON client: {"message", "code": "404 Not Found", "title"}. */
const TITLES: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 409: 'Conflict',
  413: 'Request Entity Too Large', 415: 'Unsupported Media Type', 429: 'Too Many Requests', 507: 'Insufficient Storage',
};
export const glanceFault = (status: number, message: string) => {
  const title = TITLES[status] ?? (status < 500 ? 'Bad Request' : 'Internal Server Error');
  return { message, code: `${status} ${title}`, title };
};

/** The fields every image body has, in Glance's order; the rest are the client's own properties. */
export interface GlanceImage {
  id: string; name: string; status: 'queued' | 'saving' | 'active';
  visibility: 'public' | 'private'; protected: false; os_hidden: false;
  disk_format: string | null; container_format: string | null;
  size: number | null; virtual_size: number | null;
  checksum: null; os_hash_algo: null; os_hash_value: null;
  owner: string; min_disk: number; min_ram: number; tags: string[];
  created_at: string; updated_at: string;
  self: string; file: string; schema: string;
  [property: string]: unknown;
}

const links = (id: string) => ({ self: `/v2/images/${id}`, file: `/v2/images/${id}/file`, schema: '/v2/schemas/image' });

/**
 * A kumo image. kumo keeps no checksum of a base disk (null, as Glance before an upload), no
 * minimum disk or RAM (0) and no tags; its size is the base disk file's.
 */
export function activeImage(image: Image, facts: { size: number | null; isPublic: boolean; owner: string }): GlanceImage {
  const id = osUuid('image', image.name);
  return {
    id, name: image.name, status: 'active', visibility: facts.isPublic ? 'public' : 'private', protected: false, os_hidden: false,
    disk_format: image.format, container_format: 'bare', size: facts.size, virtual_size: image.virtualSizeBytes,
    checksum: null, os_hash_algo: null, os_hash_value: null, owner: facts.owner, min_disk: 0, min_ram: 0, tags: [],
    created_at: osTime(image.createdAt), updated_at: osTime(image.createdAt), ...links(id),
  };
}

/** An image waiting for its data (or receiving it): what the client said, nothing known of the data yet. */
export function queuedImage(q: QueuedImage): GlanceImage {
  return {
    ...q.properties,
    id: q.id, name: q.name, status: q.status, visibility: 'public', protected: false, os_hidden: false,
    disk_format: q.diskFormat ?? null, container_format: q.containerFormat ?? null, size: null, virtual_size: null,
    checksum: null, os_hash_algo: null, os_hash_value: null, owner: q.project, min_disk: q.minDisk, min_ram: q.minRam, tags: [],
    created_at: osTime(q.createdAt), updated_at: osTime(q.updatedAt), ...links(q.id),
  };
}

const nullable = (type: string) => ({ type: ['null', type] });
const IMAGE_PROPERTIES = {
  id: { type: 'string', pattern: '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$' },
  name: { ...nullable('string'), maxLength: 255 },
  status: { type: 'string', readOnly: true, enum: ['queued', 'saving', 'active', 'killed', 'deleted', 'uploading', 'importing', 'pending_delete', 'deactivated'] },
  visibility: { type: 'string', enum: ['community', 'public', 'private', 'shared'] },
  protected: { type: 'boolean' },
  os_hidden: { type: 'boolean' },
  checksum: { ...nullable('string'), readOnly: true, maxLength: 32 },
  os_hash_algo: { ...nullable('string'), readOnly: true, maxLength: 64 },
  os_hash_value: { ...nullable('string'), readOnly: true, maxLength: 128 },
  owner: { ...nullable('string'), maxLength: 255 },
  size: { ...nullable('integer'), readOnly: true },
  virtual_size: { ...nullable('integer'), readOnly: true },
  container_format: { ...nullable('string'), enum: [null, 'bare'] },
  disk_format: { ...nullable('string'), enum: [null, 'raw', 'qcow2'] },
  created_at: { type: 'string', readOnly: true },
  updated_at: { type: 'string', readOnly: true },
  tags: { type: 'array', items: { type: 'string', maxLength: 255 } },
  min_ram: { type: 'integer' },
  min_disk: { type: 'integer' },
  self: { type: 'string', readOnly: true },
  file: { type: 'string', readOnly: true },
  schema: { type: 'string', readOnly: true },
  locations: { type: 'array', items: { type: 'object' } },
  direct_url: { type: 'string', readOnly: true },
};

/** GET /v2/schemas/image: the fields above; any other key is the client's own string property. */
export const IMAGE_SCHEMA = {
  name: 'image',
  properties: IMAGE_PROPERTIES,
  additionalProperties: { type: 'string' },
  links: [{ href: '{self}', rel: 'self' }, { href: '{file}', rel: 'enclosure' }, { href: '{schema}', rel: 'describedby' }],
};

/** GET /v2/schemas/images: a page of images with its links. */
export const IMAGES_SCHEMA = {
  name: 'images',
  properties: {
    images: { type: 'array', items: IMAGE_SCHEMA },
    schema: { type: 'string' },
    first: { type: 'string' },
    next: { type: 'string' },
  },
  links: [{ href: '{first}', rel: 'first' }, { href: '{next}', rel: 'next' }, { href: '{schema}', rel: 'describedby' }],
};
