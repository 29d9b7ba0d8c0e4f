import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, realpath, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Executor } from '../../exec/exec.js';
import { KumoError } from '../../model/errors.js';
import { sha256File } from './recipe.js';

/**
 * What the tiny image takes from this host: the Debian packages (kernel, busybox) apt resolves
 * and downloads into the debs cache, and resize2fs with its libraries.
 */

export interface DebPackage {
  name: string;
  version: string;
  arch: string;
  sha256: string;
}

/** The package a meta-package currently points at (`apt-cache depends`). */
export async function resolveDepends(exec: Executor, meta: string, pattern: RegExp): Promise<string> {
  const r = await exec.run('apt-cache', ['depends', meta], { allowFailure: true });
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*Depends:\s*(\S+)/.exec(line);
    if (m?.[1] && pattern.test(m[1])) return m[1];
  }
  throw new KumoError('NOT_FOUND', `apt does not know the Debian package ${meta}`,
    'run apt-get update (the Debian package lists are needed to build the tiny guest image)');
}

export async function packageInfo(exec: Executor, name: string): Promise<DebPackage> {
  const r = await exec.run('apt-cache', ['show', '--no-all-versions', name], { allowFailure: true });
  const stanza = r.stdout.split(/\n\s*\n/)[0] ?? '';
  const field = (f: string) => new RegExp(`^${f}:\\s*(.+)$`, 'm').exec(stanza)?.[1]?.trim();
  const version = field('Version');
  const arch = field('Architecture');
  const sha256 = field('SHA256');
  if (r.code !== 0 || !version || !arch || !sha256) {
    throw new KumoError('NOT_FOUND', `apt has no installable version of the Debian package ${name}`,
      'run apt-get update (the Debian package lists are needed to build the tiny guest image)');
  }
  return { name, version, arch, sha256 };
}

/** The .deb in the debs cache (downloaded with `apt-get download` unless a verified copy is there). */
export async function ensureDeb(exec: Executor, debsDir: string, p: DebPackage, progress: (s: string) => void): Promise<string> {
  const file = join(debsDir, `${p.name}_${p.version.replace(/:/g, '%3a')}_${p.arch}.deb`);
  if (existsSync(file) && (await sha256File(file)) === p.sha256) return file;
  progress(`downloading ${p.name} ${p.version}`);
  await mkdir(debsDir, { recursive: true });
  const tmp = join(debsDir, `.download-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp);
  try {
    const args = ['download', '-q'];
    // as root, apt would warn that its _apt user cannot write here
    if (process.getuid?.() === 0) args.push('-o', 'APT::Sandbox::User=root');
    args.push(`${p.name}=${p.version}`);
    await exec.run('apt-get', args, { cwd: tmp, timeoutMs: 900_000 });
    const got = (await readdir(tmp)).filter((f) => f.endsWith('.deb'));
    if (got.length !== 1 || !got[0]) {
      throw new KumoError('COMMAND_FAILED', `apt-get download ${p.name} left ${got.length} .deb files`);
    }
    const downloaded = join(tmp, got[0]);
    if ((await sha256File(downloaded)) !== p.sha256) {
      throw new KumoError('COMMAND_FAILED', `the downloaded ${p.name} ${p.version} does not match apt's checksum`,
        'run apt-get update and try again');
    }
    await rename(downloaded, file);
    return file;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

export interface HostFile { hostPath: string; guestPath: string }

/** resize2fs and the shared libraries it needs (ldd), to grow the root filesystem in the guest. */
export async function resize2fsFiles(exec: Executor): Promise<HostFile[]> {
  const where = await exec.run('sh', ['-c', 'command -v resize2fs'],
    { env: { ...process.env, PATH: `${process.env.PATH ?? '/usr/bin:/bin'}:/usr/sbin:/sbin` } });
  const bin = where.stdout.trim();
  const files: HostFile[] = [{ hostPath: await realpath(bin), guestPath: 'usr/sbin/resize2fs' }];
  const ldd = await exec.run('ldd', [bin]);
  for (const line of ldd.stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    const lib = m?.[1];
    if (!lib) continue;
    files.push({ hostPath: await realpath(lib), guestPath: lib.replace(/^\/+/, '') });
  }
  if (!files.some((f) => /ld-linux/.test(f.guestPath))) {
    throw new KumoError('COMMAND_FAILED', `ldd ${bin} did not name the dynamic loader`);
  }
  return files;
}
