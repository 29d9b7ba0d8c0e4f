import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { local } from '../../src/exec/exec.js';
import { CLI, makeTestEnv, type TestEnv } from '../helpers/env.js';
import { startServe } from '../helpers/serve.js';

/**
 * The CLI that ships is the bundle (dist/bin/kumo.js, scripts/build-cli.mjs), and the tests run
 * it. A bundle moves every module to dist/bin/: what kumo reads from disk at run time (the
 * dashboard in dist/web, package.json) must still be found from there, and `kumo --version`
 * must read only the entry's own chunks.
 */

const ROOT = join(import.meta.dirname, '../../..');
let env: TestEnv;
const children: ChildProcess[] = [];

before(async () => {
  env = await makeTestEnv('bun');
});

after(async () => {
  // Pass or fail: the server this test started and the test's world.
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await env?.cleanup();
});

test('package.json\'s bin is the bundle the tests run', async () => {
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  assert.equal(join(ROOT, pkg.bin.kumo!), CLI);
});

test('kumo --version from the bundle reads its own chunks only: no file from node_modules', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-bundle-'));
  try {
    const loaded = join(dir, 'loaded.txt');
    await writeFile(join(dir, 'hooks.mjs'), `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) { appendFileSync(${JSON.stringify(loaded)}, url + '\\n'); return next(url, context); }\n`);
    await writeFile(join(dir, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});\n`);
    const r = await local.run(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, CLI, '--version'], { env: env.cliEnv });
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    // The version, then the commit the build wrote in (scripts/build-cli.mjs), or "unknown" outside git.
    assert.match(r.stdout.trim(), new RegExp(`^${pkg.version.replace(/\./g, '\\.')} \\(commit ([0-9a-f]{12}(-dirty)?|unknown)\\)$`));
    const files = (await readFile(loaded, 'utf8')).split('\n').filter((u) => u.startsWith('file:'));
    assert.deepEqual(files.filter((u) => !u.startsWith(pathToFileURL(join(ROOT, 'dist', 'bin')).href + '/')), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('kumo serve from the bundle finds the dashboard (dist/web) and its version (package.json)', async () => {
  assert.ok(existsSync(join(ROOT, 'dist', 'web', 'index.html')), 'the dashboard is built (npm run build)');
  const { child, url } = await startServe(env.cliEnv, ['--log-level', 'warn', '--monitor-interval', '0']);
  children.push(child);
  const health = await fetch(`${url}/api/v1/health`);
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.equal(((await health.json()) as { version: string }).version, pkg.version);
  const page = await fetch(`${url}/`);
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.doesNotMatch(html, /was not built/);
  assert.match(html, /<script[^>]+src="\/assets\//, 'the built dashboard, not the note that it is missing');
  child.kill('SIGTERM');
});
