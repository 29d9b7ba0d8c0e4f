import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KumoError } from '../../model/errors.js';

/**
 * Which Debian mirror the image build uses: the one this host's apt already uses
 * (/etc/apt/sources.list and sources.list.d, one-line or deb822 format), so the build needs no
 * reach beyond what `apt-get install` needs. Third-party repositories on the host (nodesource,
 * Google Cloud SDK, ...) are left out: only entries for Debian's own suites count.
 */
export interface AptEntry {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
}

/** Debian's suite names (codenames and aliases); "bookworm-updates" etc. are derived. */
const DEBIAN_SUITES = new Set([
  'buster', 'bullseye', 'bookworm', 'trixie', 'forky', 'duke', 'sid',
  'oldoldstable', 'oldstable', 'stable', 'testing', 'unstable',
]);

/** Parses the text of a sources.list (one-line format) or a .sources file (deb822). */
export function parseAptSources(text: string, deb822: boolean): AptEntry[] {
  if (!deb822) {
    const out: AptEntry[] = [];
    for (const raw of text.split('\n')) {
      const line = raw.replace(/#.*/, '').trim();
      if (!line) continue;
      // deb [ option=value ... ] uri suite [component ...]
      const m = /^(deb|deb-src)\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
      if (!m) continue;
      out.push({ types: [m[1]!], uris: [m[2]!], suites: [m[3]!], components: m[4]!.split(/\s+/).filter(Boolean) });
    }
    return out;
  }
  const out: AptEntry[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last = '';
    for (const raw of stanza.split('\n')) {
      if (raw.startsWith('#')) continue;
      if (/^\s/.test(raw) && last) {
        fields.set(last, `${fields.get(last)} ${raw.trim()}`); // a continuation line
        continue;
      }
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(raw);
      if (!m) continue;
      last = m[1]!.toLowerCase();
      fields.set(last, m[2]!.trim());
    }
    if (/^(no|false)$/i.test(fields.get('enabled') ?? '')) continue;
    const list = (k: string) => (fields.get(k) ?? '').split(/\s+/).filter(Boolean);
    if (!fields.has('types') || !fields.has('uris') || !fields.has('suites')) continue;
    out.push({ types: list('types'), uris: list('uris'), suites: list('suites'), components: list('components') });
  }
  return out;
}

/** Every apt source entry on this host. */
export async function readHostAptSources(aptDir = '/etc/apt'): Promise<AptEntry[]> {
  const out: AptEntry[] = [];
  const main = join(aptDir, 'sources.list');
  if (existsSync(main)) out.push(...parseAptSources(await readFile(main, 'utf8'), false));
  const dir = join(aptDir, 'sources.list.d');
  const files = existsSync(dir) ? (await readdir(dir)).sort() : [];
  for (const f of files) {
    if (f.endsWith('.list')) out.push(...parseAptSources(await readFile(join(dir, f), 'utf8'), false));
    else if (f.endsWith('.sources')) out.push(...parseAptSources(await readFile(join(dir, f), 'utf8'), true));
  }
  return out;
}

/**
 * The sources.list lines for `suite` (its main archive, -updates and -security) on the host's
 * Debian mirrors. The host may run another Debian release: its mirror serves every suite.
 */
export function debianMirrorLines(entries: AptEntry[], suite: string): string[] {
  let archive: string | undefined;
  let security: string | undefined;
  for (const e of entries) {
    if (!e.types.includes('deb')) continue;
    for (const s of e.suites) {
      // debian-security used to be "suite/updates": both forms mean the security archive
      const m = /^([a-z]+)(?:-(updates|security|backports|proposed-updates))?(\/updates)?$/.exec(s);
      if (!m || !DEBIAN_SUITES.has(m[1]!)) continue;
      const isSecurity = m[2] === 'security' || m[3] !== undefined;
      for (const uri of e.uris) {
        const u = uri.replace(/\/+$/, '');
        if (isSecurity) security ??= u;
        else archive ??= u;
      }
    }
  }
  if (!archive) {
    throw new KumoError('NOT_FOUND', 'this host\'s apt sources (/etc/apt) name no Debian mirror to build the image from',
      'add a Debian mirror to /etc/apt/sources.list (e.g. "deb http://deb.debian.org/debian bookworm main") and run apt-get update');
  }
  const lines = [`deb ${archive} ${suite} main`, `deb ${archive} ${suite}-updates main`];
  // No security mirror on the host: the main mirror's host usually serves it next to the archive.
  lines.push(`deb ${security ?? archive.replace(/\/debian$/, '/debian-security')} ${suite}-security main`);
  return lines;
}

/**
 * What this host last fetched from those suites (the Date line of each InRelease in apt's
 * lists): part of the build cache's key, so `apt-get update` after a point release or a
 * security fix leads to a fresh image. The build itself fetches its own package lists.
 */
export async function mirrorState(lines: string[], listsDir = '/var/lib/apt/lists'): Promise<string[]> {
  const out: string[] = [];
  for (const line of lines) {
    const [, uri = '', suite = ''] = line.split(' ');
    const file = join(listsDir, `${uri.replace(/^[a-z+]+:\/\//, '').replace(/\//g, '_')}_dists_${suite}_InRelease`);
    const text = existsSync(file) ? await readFile(file, 'utf8') : '';
    out.push(`${suite} ${/^Date:\s*(.+)$/m.exec(text)?.[1]?.trim() ?? 'unknown'}`);
  }
  return out;
}
