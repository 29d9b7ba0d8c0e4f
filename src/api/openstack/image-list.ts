import { invalid } from '../../model/errors.js';
import type { GlanceImage } from './image-render.js';
import { afterMarker } from './common.js';

/**
 * GET /v2/images's filters, sort and pages, as Glance reads its query: exact (or "in:a,b") filters
 * on the image's fields, time filters with operators (gt:2026-12-07T04:30:00Z), any other key a
 * property to equal; sorted by created_at then id, newest first, unless sort_key/sort_dir or
 * sort=key:dir say otherwise; `limit` (25 by default, at most 1000) per page, `marker` the last
 * id of the previous page, and a `next` link while more follow.
 */

export type ImageQuery = Record<string, string | string[] | undefined>;

export interface ImagePage {
  images: GlanceImage[];
  first: string;
  schema: string;
  next?: string;
}

const DEFAULT_LIMIT = 25;
const MAX_LIMIT = 1000;
const LIST_PATH = '/v2/images';

/** Keys that steer the list, not filters on a field. */
const CONTROL = new Set(['limit', 'marker', 'sort_key', 'sort_dir', 'sort']);
/** Glance's filters on sharing that have no meaning where every image is public or the project's own. */
const IGNORED = new Set(['member_status']);
const EXACT = new Set(['id', 'name', 'status', 'disk_format', 'container_format', 'owner']);
const SORT_KEYS = new Set(['id', 'name', 'status', 'disk_format', 'container_format', 'size', 'virtual_size', 'created_at', 'updated_at',
  'visibility', 'owner', 'min_disk', 'min_ram', 'protected', 'os_hidden']);

const values = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const one = (query: ImageQuery, key: string): string | undefined => values(query[key]).at(-1);

export function pageImages(all: GlanceImage[], query: ImageQuery): ImagePage {
  const limit = parseLimit(one(query, 'limit'));
  const filtered = all.filter(matcher(query));
  const sorted = filtered.sort(comparer(query));
  const rest = afterMarker(sorted, (i) => i.id, one(query, 'marker'),
    (m) => invalid(`marker ${m} could not be found`, 'give the id of the last image of the previous page, as the "next" link does'));
  const images = rest.slice(0, limit);
  const page: ImagePage = { images, first: LIST_PATH, schema: '/v2/schemas/images' };
  if (limit < rest.length && images.length) page.next = nextLink(query, images.at(-1)!.id);
  return page;
}

function parseLimit(text: string | undefined): number {
  if (text === undefined) return DEFAULT_LIMIT;
  if (!/^\d+$/.test(text)) throw invalid(`limit must be a whole number, got "${text}"`, `e.g. limit=${DEFAULT_LIMIT}`);
  return Math.min(Number(text), MAX_LIMIT);
}

/** The same query with the marker moved on: a client follows it as is (openstacksdk strips the /v2). */
function nextLink(query: ImageQuery, marker: string): string {
  const params = new URLSearchParams();
  for (const [key, v] of Object.entries(query)) if (key !== 'marker') for (const x of values(v)) params.append(key, x);
  params.append('marker', marker);
  return `${LIST_PATH}?${params.toString()}`;
}

/** "in:a,b" (names may be quoted) or one value. */
const choices = (v: string): string[] =>
  (v.startsWith('in:') ? v.slice(3).split(',').map((x) => x.trim().replace(/^"(.*)"$/, '$1')) : [v]);

/** true or false in any case: openstacksdk sends Python's True. */
const BOOLEAN = (key: string, v: string): boolean => {
  const word = v.toLowerCase();
  if (word === 'true' || word === 'false') return word === 'true';
  throw invalid(`${key} must be true or false, got "${v}"`);
};

function matcher(query: ImageQuery): (image: GlanceImage) => boolean {
  const tests: ((image: GlanceImage) => boolean)[] = [];
  let hiddenWanted = false;
  for (const [key, raw] of Object.entries(query)) {
    if (CONTROL.has(key) || IGNORED.has(key)) continue;
    for (const v of values(raw)) {
      if (EXACT.has(key)) {
        const allowed = choices(v);
        tests.push((i) => allowed.includes(String(i[key])));
      } else if (key === 'visibility') {
        if (!['public', 'private', 'shared', 'community', 'all'].includes(v)) {
          throw invalid(`visibility must be public, private, shared, community or all, got "${v}"`);
        }
        if (v !== 'all') tests.push((i) => i.visibility === v);
      } else if (key === 'protected') {
        const want = BOOLEAN(key, v);
        tests.push((i) => i.protected === want);
      } else if (key === 'os_hidden') {
        hiddenWanted = BOOLEAN(key, v);
      } else if (key === 'size_min' || key === 'size_max') {
        if (!/^\d+$/.test(v)) throw invalid(`${key} must be a whole number of bytes, got "${v}"`);
        const bound = Number(v);
        tests.push((i) => i.size !== null && (key === 'size_min' ? i.size >= bound : i.size <= bound));
      } else if (key === 'tag') {
        tests.push((i) => i.tags.includes(v));
      } else if (key === 'created_at' || key === 'updated_at') {
        tests.push(timeFilter(key, v));
      } else {
        // Glance reads any other key as a property the image must have with that value.
        tests.push((i) => i[key] === v);
      }
    }
  }
  // Hidden images only when asked for (kumo hides none).
  tests.push((i) => i.os_hidden === hiddenWanted);
  return (image) => tests.every((t) => t(image));
}

const TIME_OPS: Record<string, (a: number, b: number) => boolean> = {
  gt: (a, b) => a > b, gte: (a, b) => a >= b, lt: (a, b) => a < b, lte: (a, b) => a <= b, eq: (a, b) => a === b, neq: (a, b) => a !== b,
};

function timeFilter(key: 'created_at' | 'updated_at', v: string): (image: GlanceImage) => boolean {
  const m = /^(gt|gte|lt|lte|eq|neq):(.+)$/.exec(v);
  const op = m ? TIME_OPS[m[1]!]! : TIME_OPS.eq!;
  const when = Date.parse(m ? m[2]! : v);
  if (Number.isNaN(when)) throw invalid(`${key} must be OPERATOR:TIME (gt, gte, lt, lte, eq, neq), got "${v}"`, `e.g. ${key}=gt:2026-12-07T04:30:00Z`);
  return (i) => op(Date.parse(i[key]), when);
}

interface SortBy { key: string; desc: boolean }

function sortOrder(query: ImageQuery): SortBy[] {
  const direction = (d: string): boolean => {
    if (d !== 'asc' && d !== 'desc') throw invalid(`sort direction must be asc or desc, got "${d}"`);
    return d === 'desc';
  };
  const by: SortBy[] = [];
  const sort = one(query, 'sort');
  if (sort !== undefined) {
    for (const part of sort.split(',').map((p) => p.trim()).filter(Boolean)) {
      const [key, dir] = part.split(':');
      by.push({ key: key!, desc: direction(dir ?? 'desc') });
    }
  } else {
    const keys = values(query.sort_key);
    const dirs = values(query.sort_dir);
    keys.forEach((key, n) => by.push({ key, desc: direction(dirs[n] ?? dirs[0] ?? 'desc') }));
  }
  for (const { key } of by) {
    if (!SORT_KEYS.has(key)) throw invalid(`images cannot be sorted by "${key}"`, `sort by one of ${[...SORT_KEYS].join(', ')}`);
  }
  if (!by.length) by.push({ key: 'created_at', desc: true });
  // Ties end on the id, as Glance's do, so pages never overlap.
  if (!by.some((b) => b.key === 'id')) by.push({ key: 'id', desc: by[0]!.desc });
  return by;
}

function comparer(query: ImageQuery): (a: GlanceImage, b: GlanceImage) => number {
  const by = sortOrder(query);
  const cmp = (x: unknown, y: unknown): number => {
    if (x === y) return 0;
    if (x === null || x === undefined) return -1;
    if (y === null || y === undefined) return 1;
    return typeof x === 'number' && typeof y === 'number' ? x - y : String(x) < String(y) ? -1 : 1;
  };
  return (a, b) => {
    for (const { key, desc } of by) {
      const c = cmp(a[key], b[key]);
      if (c !== 0) return desc ? -c : c;
    }
    return 0;
  };
}
