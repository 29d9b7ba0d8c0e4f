import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { debianMirrorLines, mirrorState, parseAptSources } from '../../src/drivers/image/debian-apt.js';
import { parseImageSize, parsePackages } from '../../src/model/image-build.js';
import { mountsUnder } from '../../src/drivers/image/debian-disk.js';
import { KumoError } from '../../src/model/errors.js';

// This machine's own sources: Debian in deb822, plus two third-party repositories.
const DEB822 = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`;
const NODESOURCE = `Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main
`;
const GOOGLE = 'deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n';

test('the host\'s Debian mirror is found; third-party repositories are left out', () => {
  const entries = [...parseAptSources(GOOGLE, false), ...parseAptSources(DEB822, true), ...parseAptSources(NODESOURCE, true)];
  assert.deepEqual(debianMirrorLines(entries, 'bookworm'), [
    'deb http://deb.debian.org/debian bookworm main',
    'deb http://deb.debian.org/debian bookworm-updates main',
    'deb http://deb.debian.org/debian-security bookworm-security main',
  ]);
});

test('one-line sources with options, old security suites, another release on the host, disabled stanzas', () => {
  const oneLine = parseAptSources([
    '# a comment',
    'deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian/ bullseye main contrib',
    'deb-src http://src.example/debian bullseye main',
    'deb http://security.example/debian-security bullseye/updates main',
  ].join('\n'), false);
  assert.deepEqual(debianMirrorLines(oneLine, 'bookworm'), [
    'deb http://mirror.example/debian bookworm main',
    'deb http://mirror.example/debian bookworm-updates main',
    'deb http://security.example/debian-security bookworm-security main',
  ]);
  const disabled = parseAptSources('Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n', true);
  assert.throws(() => debianMirrorLines(disabled, 'bookworm'),
    (e: unknown) => e instanceof KumoError && e.code === 'NOT_FOUND' && /no Debian mirror/.test(e.message) && !!e.fix);
  // no security entry: the archive host's debian-security next to it
  assert.equal(debianMirrorLines(parseAptSources('deb http://m.example/debian bookworm main\n', false), 'bookworm')[2],
    'deb http://m.example/debian-security bookworm-security main');
});

test('mirror state comes from the InRelease dates apt last fetched', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-lists-'));
  try {
    await writeFile(join(dir, 'deb.debian.org_debian_dists_bookworm_InRelease'), 'Origin: Debian\nDate: Sat, 10 May 2025 09:30:01 UTC\n');
    assert.deepEqual(await mirrorState(['deb http://deb.debian.org/debian bookworm main', 'deb http://deb.debian.org/debian bookworm-updates main'], dir),
      ['bookworm Sat, 10 May 2025 09:30:01 UTC', 'bookworm-updates unknown']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('--size and --packages are checked before anything slow starts', () => {
  assert.equal(parseImageSize('3G'), 3);
  assert.equal(parseImageSize('4GiB'), 4);
  assert.equal(parseImageSize('10'), 10);
  for (const bad of ['1G', '65G', '2.5G', '3T', '', 'big']) {
    assert.throws(() => parseImageSize(bad), (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT' && /--size/.test(e.message));
  }
  assert.deepEqual(parsePackages('nginx, curl,nginx,libc6-dev,g++'), ['curl', 'g++', 'libc6-dev', 'nginx']);
  for (const bad of ['nginx;rm -rf /', 'Nginx', '-o', 'a', 'x y']) {
    assert.throws(() => parsePackages(bad), (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT');
  }
});

test('mountsUnder sees nothing in a fresh folder and never matches a sibling prefix', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-mounts-'));
  try {
    await mkdir(join(dir, 'root'));
    assert.deepEqual(await mountsUnder(join(dir, 'root')), []);
    // "/" is a mount point, "/pro" is not "/proc"
    assert.deepEqual(await mountsUnder('/pro'), []);
    assert.ok((await mountsUnder('/proc')).includes('/proc'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
