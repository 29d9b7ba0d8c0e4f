import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { copyFile, link, mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Context } from './context.js';
import { makeFolder } from '../drivers/host/private-files.js';
import { buildTinyImage, tinyRecipe } from '../drivers/image/tiny.js';
import { buildDebianImage, type DebianRecipe } from '../drivers/image/debian.js';
import { KumoError, invalid, notFound } from '../model/errors.js';
import { checkImageName } from '../model/names.js';
import type { Image } from '../model/types.js';

export interface ImportOptions {
  os?: string;
  sha256?: string;
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  onProgress?: (done: number, total: number | undefined) => void;
}

export const TINY_IMAGE = 'tiny';

export class ImageService {
  constructor(private readonly ctx: Context) {}

  list(): Image[] {
    return this.ctx.images.list();
  }

  get(name: string): Image {
    const image = this.ctx.images.get(name);
    if (!image) {
      throw notFound(`image "${name}" does not exist`,
        'see `kumo image list`; build the test image with `kumo image build tiny` or add one with `kumo image import NAME FILE|URL`');
    }
    return image;
  }

  /**
   * Whether the registered tiny image is today's recipe (kumo's guest files, the host's Debian
   * packages): `stale` only when it could be replaced now, i.e. no instance is based on it.
   */
  async tinyState(): Promise<'missing' | 'current' | 'stale'> {
    const existing = this.ctx.images.get(TINY_IMAGE);
    if (!existing || !existsSync(existing.disk)) return 'missing';
    if (existing.source === `tiny:${(await tinyRecipe(this.ctx.exec)).key}`) return 'current';
    return this.ctx.images.usedBy(TINY_IMAGE).length ? 'current' : 'stale';
  }

  /** Builds (or takes from the cache) the tiny busybox image and registers it as "tiny". */
  async buildTiny(onProgress?: (step: string) => void): Promise<{ image: Image; built: boolean }> {
    const tiny = await buildTinyImage({ cacheDir: this.ctx.paths.cache, exec: this.ctx.exec, ...(onProgress ? { onProgress } : {}) });
    const source = `tiny:${tiny.key}`;
    const existing = this.ctx.images.get(TINY_IMAGE);
    if (existing?.source === source && existsSync(existing.disk)) return { image: existing, built: false };
    // Instances' overlays point at the registered base disk: while any exists, it stays as it is
    // (a newer build, e.g. after a Debian kernel update, is taken once they are gone).
    if (existing && existsSync(existing.disk) && this.ctx.images.usedBy(TINY_IMAGE).length) return { image: existing, built: false };
    const dir = join(this.ctx.paths.images, TINY_IMAGE);
    await rm(dir, { recursive: true, force: true });
    await makeFolder(dir, 'qemu-traverse', { recursive: true });
    const disk = join(dir, 'disk.qcow2');
    const kernel = join(dir, 'vmlinuz');
    const initrd = join(dir, 'initrd.img');
    // The build cache is read-only after a build: hard links share it without copying.
    for (const [from, to] of [[tiny.disk, disk], [tiny.kernel, kernel], [tiny.initrd, initrd]] as const) await linkOrCopy(from, to);
    const info = await this.ctx.qemuImg.info(disk);
    const image: Image = {
      name: TINY_IMAGE, os: 'kumo tiny (busybox)', disk, format: 'qcow2', virtualSizeBytes: info.virtualSize,
      kernel, initrd, cmdline: tiny.cmdline, source, createdAt: new Date().toISOString(),
    };
    this.ctx.images.upsert(image);
    return { image, built: tiny.built };
  }

  /**
   * Builds (or takes from the cache) a Debian cloud image and registers it, by default under
   * the recipe's name ("debian-12"). Like buildTiny: the cache's disk is hard-linked, and a
   * registered image that instances still use is left as it is.
   */
  async buildDebian(opts: { recipe?: DebianRecipe; name?: string; sizeGiB?: number; packages?: string[]; onProgress?: (step: string) => void } = {}):
    Promise<{ image: Image; built: boolean; buildSeconds: number; kept?: boolean }> {
    const recipe = opts.recipe ?? 'debian-12';
    const name = opts.name ?? recipe;
    checkImageName(name);
    const existing = this.ctx.images.get(name);
    if (existing && !existing.source.startsWith(`${recipe}:`)) {
      throw new KumoError('ALREADY_EXISTS', `image "${name}" already exists and was not built by \`kumo image build ${recipe}\``,
        `pick another name with --name, or delete it first: kumo image delete ${name}`);
    }
    const deb = await buildDebianImage({
      cacheDir: this.ctx.paths.cache, exec: this.ctx.exec, recipe,
      ...(opts.sizeGiB !== undefined ? { sizeGiB: opts.sizeGiB } : {}),
      ...(opts.packages ? { packages: opts.packages } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
    const source = `${recipe}:${deb.key}`;
    if (existing?.source === source && existsSync(existing.disk)) return { image: existing, built: false, buildSeconds: deb.buildSeconds };
    // Instances' overlays point at the registered disk: while any exists, it stays as it is
    // (the new build waits in the cache; --name registers it beside the old one).
    if (existing && existsSync(existing.disk) && this.ctx.images.usedBy(name).length) {
      return { image: existing, built: deb.built, buildSeconds: deb.buildSeconds, kept: true };
    }
    const dir = join(this.ctx.paths.images, name);
    await rm(dir, { recursive: true, force: true });
    await makeFolder(dir, 'qemu-traverse', { recursive: true });
    const disk = join(dir, 'disk.qcow2');
    await linkOrCopy(deb.disk, disk);
    // Same checks as an import: qemu-img says what the file is and how large the disk is.
    const info = await this.ctx.qemuImg.info(disk);
    if (info.format !== 'qcow2') throw new KumoError('COMMAND_FAILED', `the built image ${deb.disk} is ${info.format}, not qcow2`);
    const image: Image = {
      name, os: deb.os, disk, format: 'qcow2', virtualSizeBytes: info.virtualSize, source, createdAt: new Date().toISOString(),
    };
    this.ctx.images.upsert(image);
    return { image, built: deb.built, buildSeconds: deb.buildSeconds };
  }

  /** Adds a cloud image from a local file or an http(s) URL. */
  async import(name: string, source: string, opts: ImportOptions = {}): Promise<Image> {
    checkImageName(name);
    if (this.ctx.images.get(name)) {
      throw new KumoError('ALREADY_EXISTS', `image "${name}" already exists`, `delete it first (\`kumo image delete ${name}\`) or pick another name`);
    }
    if (opts.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(opts.sha256)) {
      throw invalid(`--sha256 must be 64 hexadecimal digits, got "${opts.sha256}"`);
    }
    const dir = join(this.ctx.paths.images, name);
    await makeFolder(dir, 'qemu-traverse', { recursive: true });
    try {
      const isUrl = /^https?:\/\//i.test(source);
      // A download survives a failed import in the cache, so the next try resumes it.
      const fetched = isUrl
        ? join(this.ctx.paths.cache, 'downloads', `${createHash('sha256').update(source).digest('hex').slice(0, 24)}.part`)
        : join(dir, 'copy.part');
      if (isUrl) {
        await mkdir(dirname(fetched), { recursive: true });
        await download(source, fetched, opts.onProgress);
      } else {
        const file = resolve(source);
        if (!existsSync(file)) throw invalid(`image file ${file} does not exist`, 'give the path of a qcow2 or raw cloud image');
        await copyFile(file, fetched);
      }
      if (opts.sha256) {
        const got = await sha256(fetched);
        if (got !== opts.sha256.toLowerCase()) {
          await rm(fetched, { force: true });
          throw invalid(`checksum mismatch for ${source}: expected ${opts.sha256}, got ${got}`, 'check the URL and the published checksum');
        }
      }
      const info = await this.ctx.qemuImg.info(fetched).catch(async (e: unknown) => {
        await rm(fetched, { force: true });
        throw e;
      });
      if (info.format !== 'qcow2' && info.format !== 'raw') {
        throw invalid(`${source} is a ${info.format} image; kumo takes qcow2 or raw`, `convert it: qemu-img convert -O qcow2 ${source} image.qcow2`);
      }
      if (info.backingFile) throw invalid(`${source} has a backing file; import a standalone image`, 'flatten it with qemu-img convert');
      const disk = join(dir, `disk.${info.format}`);
      await move(fetched, disk);
      const boot = await this.copyBootFiles(dir, opts);
      const image: Image = {
        name, os: opts.os ?? name, disk, format: info.format, virtualSizeBytes: info.virtualSize,
        ...boot, source, createdAt: new Date().toISOString(),
      };
      this.ctx.images.upsert(image);
      return image;
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  private async copyBootFiles(dir: string, opts: ImportOptions): Promise<Pick<Image, 'kernel' | 'initrd' | 'cmdline'>> {
    if (!opts.kernel) {
      if (opts.initrd || opts.cmdline) throw invalid('--initrd and --cmdline need --kernel', 'add --kernel FILE, or drop them to boot from the disk');
      return {};
    }
    const out: Pick<Image, 'kernel' | 'initrd' | 'cmdline'> = {};
    for (const [key, file] of [['kernel', opts.kernel], ['initrd', opts.initrd]] as const) {
      if (!file) continue;
      if (!existsSync(file)) throw invalid(`${key} file ${file} does not exist`);
      out[key] = join(dir, key === 'kernel' ? 'vmlinuz' : 'initrd.img');
      await copyFile(file, out[key]!);
    }
    if (opts.cmdline) out.cmdline = opts.cmdline;
    return out;
  }

  async delete(name: string): Promise<void> {
    const image = this.get(name);
    const users = this.ctx.images.usedBy(name);
    if (users.length) {
      throw new KumoError('IN_USE', `image "${name}" is used by ${users.length === 1 ? 'instance' : 'instances'} ${users.join(', ')}`,
        `delete ${users.length === 1 ? 'it' : 'them'} first: kumo instance delete ${users.join(' ')}`);
    }
    this.ctx.images.delete(name);
    await rm(join(this.ctx.paths.images, image.name), { recursive: true, force: true });
  }
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return h.digest('hex');
}

/** Downloads with resume: a partial file is continued with an HTTP Range request. */
async function download(url: string, dest: string, onProgress?: ImportOptions['onProgress']): Promise<void> {
  const have = existsSync(dest) ? (await stat(dest)).size : 0;
  let res: Response;
  try {
    res = await fetch(url, { headers: have ? { Range: `bytes=${have}-` } : {} });
  } catch (e) {
    throw new KumoError('COMMAND_FAILED', `could not download ${url}: ${(e as Error).message}`, 'check the URL and that this machine can reach it');
  }
  if (res.status === 416 && have > 0) return; // the part file is already whole
  const resumed = res.status === 206;
  if (!res.ok || !res.body) throw new KumoError('COMMAND_FAILED', `could not download ${url}: HTTP ${res.status}`, 'check the URL');
  const length = Number(res.headers.get('content-length'));
  const total = Number.isFinite(length) && length > 0 ? length + (resumed ? have : 0) : undefined;
  let done = resumed ? have : 0;
  const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  body.on('data', (chunk: Buffer) => {
    done += chunk.length;
    onProgress?.(done, total);
  });
  try {
    await pipeline(body, createWriteStream(dest, { flags: resumed ? 'a' : 'w' }));
  } catch (e) {
    throw new KumoError('COMMAND_FAILED', `the download of ${url} broke off after ${done} bytes: ${(e as Error).message}`,
      'run the same import again: it resumes where it stopped');
  }
}

async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch {
    await copyFile(from, to);
  }
}

/** rename(), or copy and remove when the two paths are on different filesystems. */
async function move(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    await copyFile(from, to);
    await rm(from, { force: true });
  }
}
