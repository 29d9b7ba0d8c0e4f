import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { CLI, makeTestEnv, testCache, type TestEnv } from '../helpers/env.js';
import { startServe } from '../helpers/serve.js';
import { API } from '../helpers/api.js';

/**
 * The CLI faces of the REST API over a home of the test's own: `kumo serve` (its address, the
 * admin token on the first start only) and `kumo token`.
 */

let env: TestEnv;
const children: ChildProcess[] = [];

before(async () => {
  env = await makeTestEnv('srv');
});

after(async () => {
  // Pass or fail: the servers and commands this test started, the test's world.
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await env?.cleanup();
});

/** Runs the real CLI (main.ts: its commands, its error handling, its exit codes) in HOME. */
function kumo(home: string, args: string[]): ChildProcess {
  const child = spawn('node', [CLI, ...args], {
    env: { ...process.env, KUMO_HOME: home, KUMO_CACHE: testCache() }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  return child;
}

async function run(home: string, args: string[]) {
  const child = kumo(home, args);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => { stdout += d; });
  child.stderr!.on('data', (d: Buffer) => { stderr += d; });
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  return { code, stdout, stderr };
}

/** Starts `kumo serve --port 0` in HOME until it listens, and reads the admin token it gave, if any. */
async function serve(home: string): Promise<{ child: ChildProcess; url: string; adminToken?: string; lines: string[] }> {
  const { child, url, lines } = await startServe({ ...process.env, KUMO_HOME: home, KUMO_CACHE: testCache() }, ['--log-level', 'warn']);
  children.push(child);
  // The admin token line, when there is one, comes before the address (the last line of the start).
  // Not on a terminal: the token is in a file only root can read, whose path is printed.
  const tokenFile = /admin token written to (\S+)/.exec(lines.join('\n'))?.[1];
  if (tokenFile) assert.equal((await stat(tokenFile)).mode & 0o777, 0o600);
  const adminToken = tokenFile ? (await readFile(tokenFile, 'utf8')).trim() : undefined;
  return { child, url, lines, ...(adminToken ? { adminToken } : {}) };
}

async function stop(child: ChildProcess): Promise<number | null> {
  const done = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  child.kill('SIGTERM');
  return done;
}

test('kumo serve: binds 127.0.0.1, prints the admin token on the first start only; kumo token create, list, revoke', async () => {
  const home = join(env.home, 'serve-home');
  const first = await serve(home);
  assert.ok(first.adminToken, `no admin token in: ${first.lines.join(' | ')}`);
  const flavors = await fetch(`${first.url}${API}/flavors`, { headers: { authorization: `Bearer ${first.adminToken}` } });
  assert.equal(flavors.status, 200);
  assert.equal((await fetch(`${first.url}${API}/flavors`)).status, 401);
  assert.equal(await stop(first.child), 0);

  const second = await serve(home);
  assert.equal(second.adminToken, undefined, 'the admin token is printed once only');
  assert.ok(!second.lines.join('\n').includes(first.adminToken!));

  const made = await run(home, ['token', 'create', 'ci']);
  assert.equal(made.code, 0, made.stderr);
  const ci = made.stdout.trim();
  assert.match(ci, /^kumo_[A-Za-z0-9_-]{43}$/);
  assert.match(made.stderr, /shown only now/);
  assert.equal((await fetch(`${second.url}${API}/hosts`, { headers: { authorization: `Bearer ${ci}` } })).status, 200);
  const listed = await run(home, ['token', 'list', '--json']);
  const tokens = JSON.parse(listed.stdout) as { id: string; name: string; lastUsedAt?: string }[];
  assert.deepEqual(tokens.map((t) => t.name), ['admin', 'ci']);
  assert.ok(tokens.every((t) => t.lastUsedAt), 'both were used');
  assert.ok(!listed.stdout.includes(ci.slice(5)), 'list never shows a token');
  assert.equal((await run(home, ['token', 'create', 'ci'])).code, 4, 'names are unique');
  const revoked = await run(home, ['token', 'revoke', tokens[1]!.id]);
  assert.equal(revoked.code, 0, revoked.stderr);
  assert.match(revoked.stdout, /revoked API token "ci"/);
  assert.equal((await fetch(`${second.url}${API}/hosts`, { headers: { authorization: `Bearer ${ci}` } })).status, 401, 'revoked at once, in the running server');
  assert.equal((await run(home, ['token', 'revoke', 'ci'])).code, 3);
  assert.equal(await stop(second.child), 0);

  const bad = await run(home, ['serve', '--port', '70000']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--port/);
  assert.equal(basename(home), 'serve-home');
});
