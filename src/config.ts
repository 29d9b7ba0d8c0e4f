import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { invalid } from './model/errors.js';
import { parseConfigFile, type ConfigFile } from './model/config-file.js';

let fileConfig: ConfigFile = { env: {}, settings: {} };

/**
 * The installed kumo's config file (/etc/kumo/kumo.conf): /usr/bin/kumo and the services name it
 * in KUMO_CONFIG; a checkout names none and behaves as ever. Its KUMO_* lines fill variables the
 * environment does not set (a command line's KUMO_HOME=... still wins); read before the
 * constants below are computed from the environment.
 */
function loadConfigFile(): void {
  const file = process.env.KUMO_CONFIG;
  if (!file) return;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // no file: the built-in defaults
    throw invalid(`cannot read kumo's config file ${file} (KUMO_CONFIG): ${(e as NodeJS.ErrnoException).code ?? String(e)}`, `make it readable, or unset KUMO_CONFIG`);
  }
  fileConfig = parseConfigFile(text, file);
  for (const [key, value] of Object.entries(fileConfig.env)) process.env[key] ??= value;
}
loadConfigFile();

/** Site settings the config file gives (`wizard.nat = default`): the defaults until `kumo config set` changes one. */
export const configFileSettings = (): Readonly<Record<string, string>> => fileConfig.settings;

/**
 * Where kumo keeps its state. KUMO_HOME defaults to /var/lib/kumo; tests point it at a
 * per-run folder. Disks live under it because libvirt chowns what it is given, and
 * must be able to reach it (HOST-NOTES: keep them in the product's own directories).
 */
export interface Paths {
  home: string;
  db: string;
  images: string;
  instances: string;
  /** Data volumes (kumo volume): NAME.qcow2 each. */
  volumes: string;
  cache: string;
}

export function paths(home = process.env.KUMO_HOME ?? '/var/lib/kumo'): Paths {
  return {
    home,
    db: join(home, 'kumo.db'),
    images: join(home, 'images'),
    instances: join(home, 'instances'),
    volumes: join(home, 'volumes'),
    // The image build cache can be shared between homes (tests reuse one across runs).
    cache: process.env.KUMO_CACHE ?? join(home, 'cache'),
  };
}

/** The libvirt connection kumo manages by default. */
export const defaultLibvirtUri = process.env.KUMO_LIBVIRT_URI ?? 'qemu:///system';

/**
 * How long kumo waits for one libvirt call before it kills its virsh: KUMO_LIBVIRT_TIMEOUT seconds
 * (1-3600), 120 by default. A host whose defines take minutes may need more; the fault tests use
 * a few seconds so a stalled libvirtd is told quickly.
 */
export function libvirtCallTimeoutMs(): number {
  const raw = process.env.KUMO_LIBVIRT_TIMEOUT;
  if (raw === undefined || raw === '') return 120_000;
  const s = Number(raw);
  if (!/^\d+$/.test(raw) || s < 1 || s > 3600) {
    throw invalid(`KUMO_LIBVIRT_TIMEOUT must be whole seconds from 1 to 3600, got "${raw}"`, 'e.g. KUMO_LIBVIRT_TIMEOUT=300, or unset it for 120');
  }
  return s * 1000;
}

/**
 * Whether libvirt reads and domain lifecycle writes go over kumo's protocol connection (the
 * default) or stay on virsh:
 * KUMO_LIBVIRT_PROTOCOL=0 is the way back if the driver misbehaves with a host, and the bench's
 * old path side by side. With it off, the API server follows no events either.
 */
export function libvirtProtocolEnabled(): boolean {
  const raw = process.env.KUMO_LIBVIRT_PROTOCOL;
  if (raw === undefined || raw === '' || raw === '1') return true;
  if (raw === '0') return false;
  throw invalid(`KUMO_LIBVIRT_PROTOCOL must be 0 or 1, got "${raw}"`, 'KUMO_LIBVIRT_PROTOCOL=0 keeps every libvirt call on virsh; unset it for the protocol connection');
}

let root: string | undefined;

/**
 * Where kumo is installed: the folder of its package.json, found upward from this module. The
 * code runs from two places, dist/src/ (compiled file by file) and dist/bin/ (the bundled CLI,
 * whose chunks all sit in one folder), so files read at run time (the dashboard, the guest
 * assets, package.json) are found from here, never relative to the module that reads them.
 */
export function installRoot(): string {
  if (root === undefined) {
    let dir = dirname(fileURLToPath(import.meta.url));
    while (!existsSync(join(dir, 'package.json'))) {
      const up = dirname(dir);
      if (up === dir) throw new Error(`kumo's package.json is not above ${fileURLToPath(import.meta.url)}: reinstall kumo`);
      dir = up;
    }
    root = dir;
  }
  return root;
}

let version: string | undefined;

/** This kumo's version: its package.json's. */
export function kumoVersion(): string {
  version ??= (JSON.parse(readFileSync(join(installRoot(), 'package.json'), 'utf8')) as { version?: string }).version ?? '0.0.0';
  return version;
}

/** The CLI as it ships (package.json's bin: the bundle); the file-by-file build where only tsc ran. */
export function cliEntry(): string {
  const bundle = join(installRoot(), 'dist', 'bin', 'kumo.js');
  return existsSync(bundle) ? bundle : join(installRoot(), 'dist', 'src', 'cli', 'main.js');
}
