import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { parse } from 'yaml';
import { openContext, type Context } from '../../src/service/context.js';
import { cloudsYaml, identityUrl, recordServeAddress, SERVE_DEFAULT_BASE } from '../../src/service/clouds-yaml.js';
import { SettingsService } from '../../src/service/settings.js';
import { TokenService } from '../../src/service/tokens.js';
import { DEFAULT_PORT } from '../../src/api/schemas.js';
import { buildServer, type ApiServer } from '../../src/api/server.js';
import { runCli } from '../helpers/env.js';

/**
 * `kumo token create NAME --clouds-yaml`: a clouds.yaml for OpenStack's clients with the token as
 * a Keystone application credential, pointed at where kumo serve listens, in kumo's region; and
 * Keystone accepts what the file holds. The real clients use it in test/integration/openstack-clients.
 */

let home: string;
let ctx: Context;
let app: ApiServer;

before(async () => {
  home = await mkdtemp('/tmp/kumo-unit-clouds-');
  ctx = openContext({ home });
  app = await buildServer(ctx, { monitor: false, webRoot: `${home}/no-web`, watchDomains: false });
  await app.ready();
});
after(async () => {
  await app?.close();
  ctx?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

const kumo = (args: string[]) => runCli(args, { env: { ...process.env, KUMO_HOME: home, LANG: 'C.UTF-8' }, allowFailure: true, timeoutMs: 30_000 });

interface CloudsFile {
  clouds: Record<string, { auth_type: string; auth: Record<string, string>; region_name: string; interface: string; identity_api_version: number }>;
}

test('the auth URL: as given (a bare address gets /identity), else where kumo serve last listened, else its default address', async () => {
  assert.equal(SERVE_DEFAULT_BASE, `http://127.0.0.1:${DEFAULT_PORT}`, 'the default is kumo serve\'s');
  const freshHome = await mkdtemp('/tmp/kumo-unit-clouds-fresh-');
  const fresh = openContext({ home: freshHome });
  try {
    assert.equal(identityUrl(fresh), `http://127.0.0.1:${DEFAULT_PORT}/identity`);
  } finally {
    fresh.close();
    await rm(freshHome, { recursive: true, force: true });
  }
  recordServeAddress(ctx, 'http://10.1.2.3:9000');
  assert.equal(identityUrl(ctx), 'http://10.1.2.3:9000/identity');
  assert.equal(identityUrl(ctx, 'http://cloud.example:8780'), 'http://cloud.example:8780/identity');
  assert.equal(identityUrl(ctx, 'https://cloud.example/'), 'https://cloud.example/identity');
  assert.equal(identityUrl(ctx, 'https://proxy.example/kumo/identity/'), 'https://proxy.example/kumo/identity', 'a path of its own is kept');
});

test('a wrong --auth-url, or a serve on every interface with none given: INVALID_INPUT naming the fix', () => {
  const refused = (f: () => unknown, message: RegExp, fix: RegExp) =>
    assert.throws(f, (e: Error & { code?: string; fix?: string }) => e.code === 'INVALID_INPUT' && message.test(e.message) && fix.test(e.fix ?? ''));
  refused(() => identityUrl(ctx, 'cloud.example:8780'), /is not a URL|must be an http or https URL/, /--auth-url/);
  refused(() => identityUrl(ctx, 'ftp://cloud.example/'), /must be an http or https URL, got "ftp:"/, /--auth-url https:/);
  refused(() => identityUrl(ctx, 'not a url'), /"not a url" is not a URL/, /--auth-url http:/);
  refused(() => identityUrl(ctx, 'http://u:p@cloud.example/'), /carries a user, query or fragment/, /address alone/);
  for (const wildcard of ['http://0.0.0.0:8780', 'http://[::]:8780']) {
    recordServeAddress(ctx, wildcard);
    refused(() => identityUrl(ctx), /listens on every interface/, /--auth-url http:\/\/HOST:8780\/identity/);
  }
});

test('the file: one cloud "kumo", v3applicationcredential, the id and secret, the region setting, identity v3; an id of digits stays a string', () => {
  new SettingsService(ctx).set('openstack.region', 'Lab-1');
  try {
    const text = cloudsYaml(ctx, 'http://k:8780/identity', { id: '12345678', secret: 'kumo_s3cret', name: 'ci', project: 'p1', role: 'member' });
    assert.match(text, /^# kumo API token "ci" \(id 12345678\), member of project "p1"/);
    const doc = parse(text) as CloudsFile;
    assert.deepEqual(Object.keys(doc.clouds), ['kumo']);
    assert.deepEqual(doc.clouds.kumo, {
      auth_type: 'v3applicationcredential',
      auth: { auth_url: 'http://k:8780/identity', application_credential_id: '12345678', application_credential_secret: 'kumo_s3cret' },
      region_name: 'Lab-1', interface: 'public', identity_api_version: 3,
    });
  } finally {
    new SettingsService(ctx).set('openstack.region', 'RegionOne');
  }
});

test('kumo token create --clouds-yaml prints the file (and only it) on stdout; Keystone takes its credential', async () => {
  recordServeAddress(ctx, 'http://127.0.0.1:18780');
  const r = await kumo(['token', 'create', 'os-ci', '--project', 'default', '--role', 'member', '--clouds-yaml']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /created API token "os-ci" \(id [0-9a-f]{8}\), member of project "default".*OS_CLOUD=kumo, Keystone at http:\/\/127\.0\.0\.1:18780\/identity/);
  const cloud = (parse(r.stdout) as CloudsFile).clouds.kumo!;
  assert.equal(cloud.auth.auth_url, 'http://127.0.0.1:18780/identity');
  const made = new TokenService(ctx).list().find((t) => t.name === 'os-ci');
  assert.equal(cloud.auth.application_credential_id, made?.id);
  assert.match(cloud.auth.application_credential_secret!, /^kumo_/);

  const auth = await app.inject({
    method: 'POST', url: '/identity/v3/auth/tokens',
    payload: { auth: { identity: { methods: ['application_credential'], application_credential: { id: cloud.auth.application_credential_id, secret: cloud.auth.application_credential_secret } } } },
  });
  assert.equal(auth.statusCode, 201, auth.body);
  assert.equal(auth.json().token.project.name, 'default');
  assert.deepEqual(auth.json().token.roles.map((x: { name: string }) => x.name).sort(), ['member', 'reader']);

  // --auth-url wins over the recorded address; without --clouds-yaml the bare token, as before.
  const given = await kumo(['token', 'create', 'os-ci2', '--clouds-yaml', '--auth-url', 'https://cloud.example']);
  assert.equal(given.code, 0, given.stderr);
  assert.equal((parse(given.stdout) as CloudsFile).clouds.kumo!.auth.auth_url, 'https://cloud.example/identity');
  const bare = await kumo(['token', 'create', 'plain']);
  assert.match(bare.stdout, /^kumo_[A-Za-z0-9_-]+\n$/);
});

test('refused before a token is made: --auth-url without --clouds-yaml, a bad --auth-url, a serve on 0.0.0.0 and no --auth-url', async () => {
  const before = new TokenService(ctx).list().length;
  const cases: [string[], RegExp][] = [
    [['token', 'create', 'x1', '--auth-url', 'http://h:1'], /--auth-url goes with --clouds-yaml[^]*fix: add --clouds-yaml/],
    [['token', 'create', 'x2', '--clouds-yaml', '--auth-url', 'ftp://h/'], /--auth-url must be an http or https URL/],
  ];
  for (const [args, message] of cases) {
    const r = await kumo(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stdout, '');
  }
  recordServeAddress(ctx, 'http://0.0.0.0:8780');
  const wild = await kumo(['token', 'create', 'x3', '--clouds-yaml']);
  assert.equal(wild.code, 2, wild.stderr);
  assert.match(wild.stderr, /listens on every interface \(0\.0\.0\.0:8780\)[^]*--auth-url http:\/\/HOST:8780\/identity/);
  assert.equal(new TokenService(ctx).list().length, before, 'no token was made');
});
