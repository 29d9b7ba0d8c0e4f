import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, link, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Context } from './context.js';
import { makeFolder } from '../drivers/host/private-files.js';
import { buildTinyImage, tinyRecipe } from '../drivers/image/tiny.js';
import { buildDebianImage, type DebianRecipe } from '../drivers/image/debian.js';
import { KumoError, invalid, notFound } from '../model/errors.js';
import { checkImageName } from '../model/names.js';
import type { Image } from '../model/types.js';
import { formatReadyCheck, parseReadyCheck, readyCheckOf } from '../model/readiness.js';
import { addressFault, urlHost } from '../model/address-policy.js';
import { DISK_HEAD_BYTES, rawDiskContent } from '../model/disk-content.js';
import { ROOT_ONLY, type Reach } from '../model/reach.js';
import { download, resolveHost, type Hop } from '../drivers/image/download.js';
import { SettingsService } from './settings.js';
import { DEFAULT_PROJECT, machineActor, type Actor } from '../model/actor.js';

export interface ImportOptions {
  os?: string;
  sha256?: string;
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  /** How its instances are known ready (model/readiness.ts); default: cloud-init. */
  ready?: string;
  /**
   * The bytes are in this file, which kumo received itself (the Image API's upload, under
   * KUMO_HOME): moved in rather than copied, and `source` only names them in messages.
   */
  receivedFile?: string;
  onProgress?: (done: number, total: number | undefined) => void;
}

/** The image with the readiness check its instances get (its own, or the default for its kind). */
const withReady = (image: Image): Image => ({ ...image, ready: formatReadyCheck(readyCheckOf(image)) });

export const TINY_IMAGE = 'tiny';

/**
 * Images: public ones (every image root makes today) every project may use; one of a project's
 * own is answered to another project like a missing one.
 */
export class ImageService {
  constructor(private readonly ctx: Context, private readonly actor: Actor = machineActor()) {}

  /** Every image this project may use, each with the readiness its instances are waited on. */
  list(): Image[] {
    return this.ctx.images.list(this.actor.project).map(withReady);
  }

  get(name: string): Image {
    const image = this.ctx.images.get(name);
    if (!image || !this.ctx.images.usableBy(name, this.actor.project)) {
      throw notFound(`image "${name}" does not exist`,
        'see `kumo image list`; build the test image with `kumo image build tiny` or add one with `kumo image import NAME FILE|URL`');
    }
    return withReady(image);
  }

  /** What an image catalog (the Image API) shows beside an image: its base disk's bytes, who may use it, whose it is. */
  async catalogFacts(image: Image): Promise<{ sizeBytes: number | null; isPublic: boolean; owner: string }> {
    const sizeBytes = await stat(image.disk).then((s) => s.size, () => null);
    return { sizeBytes, isPublic: this.ctx.images.isPublic(image.name), owner: this.ctx.images.owner(image.name) ?? DEFAULT_PROJECT };
  }

  /**
   * How instances of the image are known ready (`kumo image set --ready`): a check, or undefined
   * for the image's default. Like delete, only the image's own project changes it.
   */
  setReady(name: string, ready: string | undefined): Image {
    this.get(name);
    if (this.ctx.images.owner(name) !== this.actor.project) {
      throw new KumoError('FORBIDDEN', `image "${name}" is public, shared by every project: only its own project may change it`,
        'ask an admin of its project (root on the server: kumo image set)');
    }
    this.ctx.images.setReady(name, ready === undefined ? undefined : formatReadyCheck(parseReadyCheck(ready, '--ready')));
    return this.get(name);
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

  /**
   * Adds a cloud image from an http(s) URL, or (root on the machine only) a file on the server.
   * From the cloud, the download connects only to addresses the policy allows (address-policy.ts)
   * or a mirror the site named, follows redirects only after checking them too, stops at the size
   * limit, and the result must be a disk (a qcow2, or raw with a partition table or filesystem).
   * A refusal leaves no image, no folder and no downloaded file.
   */
  async import(name: string, source: string, opts: ImportOptions = {}, reach: Reach = 'cloud'): Promise<Image> {
    checkImageName(name);
    if (this.ctx.images.get(name)) {
      throw new KumoError('ALREADY_EXISTS', `image "${name}" already exists`, `delete it first (\`kumo image delete ${name}\`) or pick another name`);
    }
    if (opts.ready !== undefined) opts = { ...opts, ready: formatReadyCheck(parseReadyCheck(opts.ready, '--ready')) };
    if (opts.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(opts.sha256)) {
      throw invalid(`--sha256 must be 64 hexadecimal digits, got "${opts.sha256}"`);
    }
    // A file kumo received itself is no source to check (no path or URL came from the caller).
    const url = opts.receivedFile === undefined ? await this.checkSource(source, opts, reach) : undefined;
    if (opts.receivedFile !== undefined && (opts.kernel !== undefined || opts.initrd !== undefined)) throw invalid('an uploaded image has no kernel or initrd files');
    const dir = join(this.ctx.paths.images, name);
    await makeFolder(dir, 'qemu-traverse', { recursive: true });
    // A download survives a failed transfer in the cache, so the next try resumes it; a
    // refusal of what arrived removes it.
    const fetched = url
      ? join(this.ctx.paths.cache, 'downloads', `${createHash('sha256').update(source).digest('hex').slice(0, 24)}.part`)
      : join(dir, 'copy.part');
    try {
      if (url) {
        await mkdir(dirname(fetched), { recursive: true });
        await download(url.href, fetched, { maxBytes: this.maxImportBytes(), hop: this.hopCheck(reach), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
      } else if (opts.receivedFile !== undefined) {
        await move(opts.receivedFile, fetched);
      } else {
        const file = resolve(source);
        if (!existsSync(file)) throw invalid(`image file ${file} does not exist`, 'give the path of a qcow2 or raw cloud image');
        await copyFile(file, fetched);
      }
      const info = await this.checkContent(source, fetched, opts).catch(async (e: unknown) => {
        await rm(fetched, { force: true });
        throw e;
      });
      const disk = join(dir, `disk.${info.format}`);
      await move(fetched, disk);
      const boot = await this.copyBootFiles(dir, opts);
      const image: Image = {
        name, os: opts.os ?? name, disk, format: info.format, virtualSizeBytes: info.virtualSize,
        ...boot, ...(opts.ready !== undefined ? { ready: opts.ready } : {}), source, createdAt: new Date().toISOString(),
      };
      this.ctx.images.upsert(image);
      return image;
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /**
   * The refusals that need no download (the API answers them with a 400): from the cloud only
   * http(s) URLs whose host passes the address policy, and no server files for direct boot.
   * Nothing here touches the server's files, so no answer tells whether a path exists.
   */
  async checkSource(source: string, opts: Pick<ImportOptions, 'kernel' | 'initrd' | 'ready'>, reach: Reach = 'cloud'): Promise<URL | undefined> {
    if (opts.ready !== undefined) parseReadyCheck(opts.ready, 'ready');
    const isUrl = /^https?:\/\//i.test(source);
    if (reach === 'cloud') {
      if (!isUrl) {
        throw invalid('the API imports images from http(s) URLs only', `give an http(s) URL; a file on the server: ${ROOT_ONLY} (kumo image import NAME FILE)`);
      }
      if (opts.kernel !== undefined || opts.initrd !== undefined) {
        throw invalid('kernel and initrd name files on the server', `leave them out; an image with its own kernel: ${ROOT_ONLY} (kumo image import --kernel)`);
      }
    }
    if (!isUrl) return undefined;
    let url: URL;
    try {
      url = new URL(source);
    } catch {
      throw invalid(`"${source}" is not a valid URL`, 'e.g. https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2');
    }
    if (url.username || url.password) throw invalid(`${url.protocol}//${url.host}${url.pathname} carries a user name or password`, 'give a URL without credentials');
    await this.hopCheck(reach)(url);
    return url;
  }

  /** For each hop of a download: the address it connects to, checked against the policy for the cloud. */
  private hopCheck(reach: Reach): (url: URL) => Promise<Hop> {
    const mirrors = splitList(new SettingsService(this.ctx).get('image.mirrors')).map((m) => m.toLowerCase());
    return async (url) => {
      const host = urlHost(url);
      const addresses = await resolveHost(host).catch(() => []);
      if (!addresses.length) throw invalid(`could not resolve ${host}`, 'check the URL and this machine\'s DNS');
      if (reach === 'cloud' && !mirrors.includes(host)) {
        for (const a of addresses) {
          const fault = addressFault(a.address);
          if (fault) {
            throw invalid(`${host} is a ${fault} address${isIP(host) ? '' : ' (by DNS)'}: the API does not download from this machine or the networks behind it`,
              'give a URL on a public address; a mirror on the site\'s own network: root on the machine names it with kumo config set image.mirrors HOST');
          }
        }
      }
      return addresses[0]!;
    };
  }

  private maxImportBytes(): number {
    return Math.floor(Number(new SettingsService(this.ctx).get('image.max_import_gib')) * 2 ** 30);
  }

  /** What arrived must be a disk: qcow2 without a backing file, or raw with a partition table or filesystem. */
  private async checkContent(source: string, file: string, opts: ImportOptions): Promise<{ format: 'qcow2' | 'raw'; virtualSize: number }> {
    if (opts.sha256) {
      const got = await sha256(file);
      if (got !== opts.sha256.toLowerCase()) throw invalid(`checksum mismatch for ${source}: expected ${opts.sha256}, got ${got}`, 'check the URL and the published checksum');
    }
    const info = await this.ctx.qemuImg.info(file);
    if (info.format !== 'qcow2' && info.format !== 'raw') {
      throw invalid(`${source} is a ${info.format} image; kumo takes qcow2 or raw`, `convert it: qemu-img convert -O qcow2 ${source} image.qcow2`);
    }
    if (info.backingFile) throw invalid(`${source} has a backing file; import a standalone image`, 'flatten it with qemu-img convert');
    if (info.format === 'raw' && !rawDiskContent(await readHead(file))) {
      throw invalid(`${source} is not a disk image: neither qcow2 nor a raw disk with a partition table or filesystem`, 'give a cloud image (qcow2, or a raw disk image)');
    }
    return { format: info.format, virtualSize: info.virtualSize };
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
    if (this.ctx.images.owner(name) !== this.actor.project) {
      throw new KumoError('FORBIDDEN', `image "${name}" is public, shared by every project: only its own project may delete it`,
        'ask an admin of its project (root on the server: kumo image delete)');
    }
    // Instances of other projects are counted, not named.
    const all = this.ctx.images.usedBy(name);
    const visible = new Set(this.ctx.instances.list(this.actor.project).map((i) => i.name));
    const users = all.map((n) => (visible.has(n) ? n : undefined)).filter((n): n is string => n !== undefined);
    if (all.length > users.length) users.push(`${all.length - users.length} of other projects`);
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

/** The first bytes of a file, as many as the raw disk check needs. */
async function readHead(file: string): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const buf = Buffer.alloc(DISK_HEAD_BYTES);
    const { bytesRead } = await handle.read(buf, 0, DISK_HEAD_BYTES, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

const splitList = (text: string) => text.split(',').map((t) => t.trim()).filter(Boolean);

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
