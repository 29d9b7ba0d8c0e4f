import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { local } from '../../src/exec/exec.js';
import { TokenService } from '../../src/service/tokens.js';
import { ImageService } from '../../src/service/images.js';
import { ApiClient, closeApiWorld, openApiWorld, refused, type ApiWorld } from '../helpers/api.js';

/**
 * Readiness with the tiny image (HTTP on 8080, no cloud-init): the default check waits on HTTP,
 * other checks and a cloud-init default on an image without cloud-init fail saying what they
 * waited for, and bad checks are refused before anything is made. The Debian image's
 * cloud-init readiness (done, and failed with a broken user-data) is proved in
 * debian.test.ts, which boots that image anyway.
 *
 * Traffic goes only to this test's own isolated network and its guests.
 */

let w: ApiWorld;
before(async () => {
  w = await openApiWorld('rdy');
  await new ImageService(w.env.ctx).buildTiny();
});
after(async () => closeApiWorld(w));

const domains = async () => (await local.run('virsh', ['-c', 'qemu:///system', 'list', '--all', '--name'])).stdout;

test('tiny: --wait waits on HTTP 8080; show says ready; another check or a missing cloud-init fails naming what it waited for', { timeout: 600_000 }, async () => {
  const { env } = w;
  const name = `${env.prefix}a`;
  const b = `${env.prefix}b`;
  const copy = `${env.prefix}cp`;
  // Two guests side by side: their timed waits (4 + 4 s, 20 s) overlap instead of adding up.
  const [httpFirst, cloudInitCopy] = await Promise.allSettled([tinyWaits(name), copyWaits(b, copy)]);
  for (const r of [httpFirst, cloudInitCopy]) if (r.status === 'rejected') throw r.reason;
  for (const n of [name, b]) assert.equal((await env.cli(['instance', 'delete', n])).code, 0);
  assert.equal((await env.cli(['image', 'delete', copy])).code, 0);
});

/** The tiny image's own check (HTTP on 8080), and checks it cannot pass failing in their time. */
async function tinyWaits(name: string): Promise<void> {
  const { env } = w;
  const created = await env.cli(['instance', 'create', name, '--image', 'tiny', '--flavor', 'small', '--password', 'x', '--network', env.network, '--wait'], { timeoutMs: 300_000 });
  assert.equal(created.code, 0, created.stderr);
  assert.match(created.stderr, new RegExp(`waiting for ${name} to be ready \\(http:8080\\)`), 'it says what it waits for');
  assert.match(created.stdout, new RegExp(`${name} answers at http://\\d+\\.\\d+\\.\\d+\\.\\d+:8080/`));

  const shown = await env.cli(['instance', 'show', name]);
  assert.match(shown.stdout, /readiness\s+ready \(http:8080\): answers at http:/);
  assert.doesNotMatch(shown.stdout, /^cloud-init/m, 'the tiny image has no cloud-init to report');
  const api = await w.client.call('GET', `/api/v1/instances/${name}`);
  assert.equal(api.status, 200);
  assert.equal(api.body.readiness.status, 'ready');
  assert.equal(api.body.readiness.check, 'http:8080');

  // A check the guest cannot pass: the timeout names it and what it still waited for.
  const ssh = await env.cli(['instance', 'wait', name, '--for', 'ssh', '--timeout', '4']);
  assert.equal(ssh.code, 7, ssh.stderr);
  assert.match(ssh.stderr, new RegExp(`instance "${name}" was not ready \\(ssh\\) within 4 s: still waiting for instance "${name}" to answer SSH on \\d+\\.\\d+\\.\\d+\\.\\d+:22`));
  const http = await env.cli(['instance', 'wait', name, '--for', 'http:8081', '--timeout', '4']);
  assert.equal(http.code, 7, http.stderr);
  assert.match(http.stderr, /did not answer on \d+\.\d+\.\d+\.\d+:8081 within 4 s/);
  assert.match(http.stderr, /--wait-for cloud-init or ssh/);
}

/**
 * The same disk as an image of its own, taken for a cloud image (cloud-init): the tiny guest
 * never prints cloud-init, and the wait says so with the fix.
 */
async function copyWaits(b: string, copy: string): Promise<void> {
  const { env } = w;
  const tiny = env.ctx.images.get('tiny')!;
  const imported = await env.cli(['image', 'import', copy, tiny.disk, '--kernel', tiny.kernel!, '--initrd', tiny.initrd!, '--cmdline', tiny.cmdline!]);
  assert.equal(imported.code, 0, imported.stderr);
  assert.match((await env.cli(['image', 'list'])).stdout, new RegExp(`${copy} .* cloud-init`));
  assert.equal((await env.cli(['instance', 'create', b, '--image', copy, '--flavor', 'small', '--password', 'x', '--network', env.network])).code, 0);
  // 20 s: the tiny kernel's first line comes within seconds of the start; cloud-init's never does.
  const silent = await env.cli(['instance', 'wait', b, '--timeout', '20'], { timeoutMs: 120_000 });
  assert.equal(silent.code, 7, silent.stderr);
  assert.match(silent.stderr, new RegExp(`instance "${b}" printed nothing from cloud-init on its console within 20 s`));
  assert.match(silent.stderr, /--wait-for http:PORT or ssh/);
  const booting = await w.client.call('GET', `/api/v1/instances/${b}`);
  assert.equal(booting.body.readiness.status, 'booting');
  assert.equal(booting.body.readiness.detail, `waiting for cloud-init to start on instance "${b}"`);

  // Set on the image, the next wait takes it.
  const set = await env.cli(['image', 'set', copy, '--ready', 'http:8080']);
  assert.equal(set.code, 0, set.stderr);
  const ready = await env.cli(['instance', 'wait', b, '--timeout', '120'], { timeoutMs: 200_000 });
  assert.equal(ready.code, 0, ready.stderr);
  assert.match(ready.stdout, new RegExp(`${b} answers at http://`));
  assert.equal((await env.cli(['image', 'set', copy, '--ready', 'default'])).code, 0);
  assert.match((await env.cli(['image', 'show', copy])).stdout, /ready\s+cloud-init/);
}

test('a bad readiness check is refused before anything is made, by the CLI and the API; only an admin changes an image\'s', async () => {
  const { env } = w;
  const name = `${env.prefix}bad`;
  const create = ['instance', 'create', name, '--image', 'tiny', '--flavor', 'small', '--password', 'x', '--network', env.network];
  for (const check of ['tcp:22', 'http:70000']) {
    const r = await env.cli([...create, '--wait-for', check]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--wait-for: .*(is not a readiness check|out of range)/);
  }
  assert.doesNotMatch(await domains(), new RegExp(name), 'no domain was made');
  assert.equal(env.ctx.instances.get(name), undefined, 'no record was made');
  const set = await env.cli(['image', 'set', 'tiny', '--ready', 'cloud']);
  assert.equal(set.code, 2);
  assert.match(set.stderr, /--ready: "cloud" is not a readiness check.*\n.*http:PORT, ssh, cloud-init, agent/);

  const api = await w.client.call('POST', '/api/v1/instances', { name, image: 'tiny', flavor: 'small', networks: [env.network], waitFor: 'ping' });
  refused(api, 400, 'INVALID_INPUT');
  assert.match(api.body.error.message, /waitFor: "ping" is not a readiness check/);
  assert.equal(env.ctx.instances.get(name), undefined);

  // Who may change an image's readiness: an admin (a member gets 403, and nothing changes).
  const member = new ApiClient(w.base, new TokenService(env.ctx).create(`${env.prefix}mb`, { role: 'member' }).token);
  try {
    refused(await member.call('PATCH', '/api/v1/images/tiny', { ready: 'ssh' }), 403, 'FORBIDDEN');
  } finally {
    member.close();
  }
  refused(await w.client.call('PATCH', '/api/v1/images/tiny', { ready: 'tcp:1' }), 400, 'INVALID_INPUT');
  assert.equal((await w.client.call('GET', '/api/v1/images/tiny')).body.ready, 'http:8080', 'unchanged');
});
