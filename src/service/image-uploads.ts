import { createWriteStream, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { finished, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Context } from './context.js';
import { ImageService } from './images.js';
import { SettingsService } from './settings.js';
import { makeFolder } from '../drivers/host/private-files.js';
import type { Actor } from '../model/actor.js';
import { invalid, KumoError, notFound } from '../model/errors.js';
import { checkImageName } from '../model/names.js';
import type { Image } from '../model/types.js';

/**
 * The Image API's two-step create (Glance v2: POST the record, then PUT the bytes): between the
 * two, the image is not kumo's yet, only a name and what the client said about it. Those queued
 * images live here, in the memory of `kumo serve` (a restart forgets them; the client creates
 * again), each seen only by its own project. The upload streams to a file under KUMO_HOME, never
 * into memory, and becomes an image through ImageService's import like any other; a failed one
 * leaves no file and no image, and the queued image as it was.
 */

export interface QueuedImageSpec {
  /** The id the face shows (it knows how ids are made). */
  id: string;
  name: string;
  diskFormat?: 'qcow2' | 'raw';
  containerFormat?: 'bare';
  minDisk: number;
  minRam: number;
  /** The client's own properties (Glance's custom keys), kept as sent until the upload. */
  properties: Record<string, unknown>;
}

export interface QueuedImage extends QueuedImageSpec {
  project: string;
  /** queued: waiting for its bytes; saving: they are arriving or being imported. */
  status: 'queued' | 'saving';
  createdAt: string;
  updatedAt: string;
}

/** An upload over the size limit (the Image API answers it 413, as Glance does). */
export class UploadTooLarge extends KumoError {
  constructor(limitGiB: string) {
    super('INVALID_INPUT', `the upload is larger than the image size limit, ${limitGiB} GiB`,
      'upload a smaller image, or ask root on the server to raise it: kumo config set image.max_import_gib GIB');
  }
}

/** How many queued images one project may hold: each is only a small record, but memory is not a store. */
export const MAX_QUEUED_PER_PROJECT = 50;

/** What the uploaded file is called in messages and as the image's source. */
const UPLOAD_SOURCE = 'the Image API upload';

export class ImageUploads {
  private readonly queued = new Map<string, QueuedImage>();
  private readonly folder: string;

  constructor(private readonly ctx: Context) {
    this.folder = join(ctx.paths.home, 'uploads');
    // Files of a previous run belong to queued images it forgot: nothing will finish them.
    rmSync(this.folder, { recursive: true, force: true });
  }

  /** Records an image to come: a valid kumo image name that no image and no queued image has. */
  queue(actor: Actor, spec: QueuedImageSpec): QueuedImage {
    checkImageName(spec.name);
    if (this.ctx.images.get(spec.name) || this.queued.has(spec.id)) {
      throw new KumoError('ALREADY_EXISTS', `image "${spec.name}" already exists`,
        `pick another name, or delete it first (openstack image delete ${spec.name})`);
    }
    if (this.list(actor).length >= MAX_QUEUED_PER_PROJECT) {
      throw new KumoError('QUOTA_EXCEEDED', `project "${actor.project}" has ${MAX_QUEUED_PER_PROJECT} images waiting for their data`,
        'upload their data (PUT /v2/images/ID/file) or delete the ones not needed');
    }
    const now = new Date().toISOString();
    const entry: QueuedImage = { ...spec, project: actor.project, status: 'queued', createdAt: now, updatedAt: now };
    this.queued.set(spec.id, entry);
    return { ...entry };
  }

  /** The project's queued images, oldest first. */
  list(actor: Actor): QueuedImage[] {
    return [...this.queued.values()].filter((q) => q.project === actor.project).map((q) => ({ ...q }));
  }

  get(actor: Actor, id: string): QueuedImage | undefined {
    const entry = this.own(actor, id);
    return entry && { ...entry };
  }

  /** Forgets a queued image (Glance's delete before the upload); not while its data arrives. */
  forget(actor: Actor, id: string): void {
    const entry = this.own(actor, id);
    if (!entry) throw notFound(`no image with id ${id}`);
    if (entry.status === 'saving') {
      throw new KumoError('IN_USE', `image "${entry.name}" is receiving its data`, 'wait for the upload to end, then delete it');
    }
    this.queued.delete(id);
  }

  /**
   * Receives a queued image's data and makes it a kumo image: streamed to a file (at most
   * image.max_import_gib, refused at once when the declared length is larger), then imported
   * (qcow2 or a raw disk, checked as any import is). Any failure removes the file, and the
   * queued image waits for its data again.
   */
  async upload(actor: Actor, id: string, data: Readable, declaredBytes?: number): Promise<Image> {
    const entry = this.own(actor, id);
    if (!entry) throw notFound(`no image with id ${id} waits for its data`, 'create it first (POST /v2/images); an image that is active already has its data');
    if (entry.status === 'saving') throw new KumoError('IN_USE', `image "${entry.name}" is receiving its data already`, 'wait for that upload to end');
    const limitGiB = new SettingsService(this.ctx).get('image.max_import_gib');
    const maxBytes = Math.floor(Number(limitGiB) * 2 ** 30);
    if (declaredBytes !== undefined && declaredBytes > maxBytes) throw new UploadTooLarge(limitGiB);
    this.mark(entry, 'saving');
    const file = join(this.folder, `${id}.part`);
    try {
      await makeFolder(this.folder, 'private', { recursive: true });
      await rm(file, { force: true });
      await receive(data, byteCap(maxBytes, limitGiB), file).catch((e: unknown) => {
        throw isClientGone(e) ? invalid('the upload ended before all its data arrived (the client went away)', 'upload the file again') : e;
      });
      const image = await new ImageService(this.ctx, actor).import(entry.name, UPLOAD_SOURCE, { os: entry.name, receivedFile: file });
      this.queued.delete(id);
      return image;
    } catch (e) {
      this.mark(entry, 'queued');
      throw e;
    } finally {
      await rm(file, { force: true });
    }
  }

  private own(actor: Actor, id: string): QueuedImage | undefined {
    const entry = this.queued.get(id);
    return entry && entry.project === actor.project ? entry : undefined;
  }

  private mark(entry: QueuedImage, status: QueuedImage['status']): void {
    entry.status = status;
    entry.updatedAt = new Date().toISOString();
  }
}

/**
 * Writes the request's data to the file through `cap`. Not pipeline(data, …): on a refusal it
 * would destroy the request, and with it the connection the answer must go back on.
 */
async function receive(data: Readable, cap: Transform, file: string): Promise<void> {
  const out = createWriteStream(file, { flags: 'wx' });
  const written = pipeline(cap, out);
  const stopWatching = finished(data, (err) => {
    if (err) cap.destroy(err);
  });
  data.pipe(cap);
  try {
    await written;
  } finally {
    data.unpipe(cap);
    stopWatching();
    // A refusal can come before the file is even open; the caller removes it only once it is closed.
    if (!out.closed) await new Promise<void>((resolve) => out.once('close', resolve));
  }
}

/** Passes bytes through until there are more than `max`, then fails the stream. */
function byteCap(max: number, limitGiB: string): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (seen > max) done(new UploadTooLarge(limitGiB));
      else done(null, chunk);
    },
  });
}

/** The request stream ended early: the client closed or reset the connection mid-body. */
const isClientGone = (e: unknown): boolean => {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || (e as Error | undefined)?.message === 'aborted';
};
