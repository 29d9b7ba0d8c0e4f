import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { installRoot } from '../../config.js';
import { KumoError } from '../../model/errors.js';

/**
 * What every image recipe (tiny, Debian) shares (the host tools it needs: host/which.ts): its guest asset
 * folder and the files in it, the cache key's part for those files, and the cache folder's
 * manifest.json.
 */

// ---------------------------------------------------------------- guest assets

/**
 * A recipe's guest asset folder (src/drivers/image/NAME of kumo's installation: the guest files
 * ship with the sources, not in dist/); `marker` is a file every copy of it has.
 */
export async function guestAssetDir(name: string, marker: string, what: string): Promise<string> {
  const dir = join(installRoot(), 'src', 'drivers', 'image', name);
  if (existsSync(join(dir, marker))) return dir;
  throw new KumoError('NOT_FOUND', `the ${what} guest files (src/drivers/image/${name}) are missing`,
    'reinstall kumo: the guest files ship with its sources');
}

/**
 * Files under dir, as relative paths with forward slashes, in code-unit order (not the
 * locale's: the order feeds cache keys, which must not depend on the machine's locale).
 */
export async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await readdir(join(dir, prefix), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...await listFiles(dir, rel));
    else if (e.isFile()) out.push(rel);
  }
  return out;
}

/** Adds each asset file's name and contents to a cache key. */
export async function hashAssets(keyHash: Hash, assets: string, files: string[]): Promise<void> {
  for (const f of files) {
    keyHash.update(`\0asset\0${f}\0`);
    keyHash.update(await readFile(join(assets, f)));
  }
}

export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file).on('error', reject).on('data', (b) => h.update(b)).on('end', () => resolve(h.digest('hex')));
  });
}

// ---------------------------------------------------------------- cache

/** A cache folder's manifest.json, or undefined when there is none (or it is unreadable). */
export async function readManifestFile<T>(dir: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/**
 * Moves a finished build (`out`) to its cache folder `${cacheRoot}/${key}`. What is there
 * already is set aside first when `replace` says so; when another build of the same inputs
 * got there first (the rename fails), its result is used if `complete` says it is whole.
 */
export async function publishBuild(cacheRoot: string, key: string, out: string, opts: {
  replace: (finalDir: string) => Promise<boolean>;
  complete: (finalDir: string) => Promise<boolean>;
}): Promise<string> {
  const finalDir = join(cacheRoot, key);
  if (existsSync(finalDir) && await opts.replace(finalDir)) {
    const old = join(cacheRoot, `.old-${key.slice(0, 12)}-${randomBytes(4).toString('hex')}`);
    await rename(finalDir, old);
    await rm(old, { recursive: true, force: true });
  }
  try {
    await rename(out, finalDir);
  } catch (e) {
    // another build of the same inputs finished first: use it
    if (!(await opts.complete(finalDir))) throw e;
  }
  return finalDir;
}

/** A build's scratch folder name: the key, and the process (so a dead build's folder can be told apart). */
export const buildDirName = (key: string) => `.build-${key.slice(0, 12)}-${process.pid}-${randomBytes(4).toString('hex')}`;
