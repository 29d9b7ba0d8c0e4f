import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { openContext, type Context } from '../../src/service/context.js';
import { ProjectService } from '../../src/service/projects.js';
import { buildServer, type ApiServer } from '../../src/api/server.js';
import { UserService } from '../../src/service/users.js';
import { OperationRegistry } from '../../src/service/operations.js';
import { osUuid } from '../../src/api/openstack/common.js';
import { novaState, renderServer } from '../../src/api/openstack/compute-render.js';
import { checkPublicKey, KeypairService, sshFingerprint } from '../../src/service/keypairs.js';
import { isSshPublicKey } from '../../src/model/checks.js';
import type { Instance } from '../../src/model/types.js';

/** Nova 2.1 of the OpenStack face: discovery, microversions, flavors, keypairs, limits, servers' shapes, roles and errors. */

let home: string;
let ctx: Context;
let app: ApiServer;
const ops = new OperationRegistry();
const PASSWORD = 'correct horse battery';
const tokens: Record<string, string> = {};

before(async () => {
  home = await mkdtemp('/tmp/kumo-unit-nova-');
  ctx = openContext({ home });
  new ProjectService(ctx).create('p1');
  const users = new UserService(ctx);
  await users.create('alice', 'p1', 'member', PASSWORD);
  await users.create('bob', 'p1', 'reader', PASSWORD);
  await users.create('carol', 'default', 'member', PASSWORD);
  app = await buildServer(ctx, { monitor: false, webRoot: `${home}/no-web`, watchDomains: false, ops });
  await app.ready();
  for (const name of ['alice', 'bob', 'carol']) {
    const r = await app.inject({ method: 'POST', url: '/identity/v3/auth/tokens', payload: { auth: { identity: { methods: ['password'], password: { user: { name, password: PASSWORD } } } } } });
    assert.equal(r.statusCode, 201, r.body);
    tokens[name] = String(r.headers['x-subject-token']);
  }
});
after(async () => {
  await app?.close();
  ctx?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

const nova = (who: string, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown, headers: Record<string, string> = {}) =>
  app.inject({ method, url: `/compute${url}`, headers: { 'x-auth-token': tokens[who]!, host: 'cloud.example:8080', ...headers }, ...(payload !== undefined ? { payload: payload as object } : {}) });

test('discovery: /compute lists v2.1, /compute/v2.1 (and with a slash) is the version, on the address the client used, without a token', async () => {
  for (const url of ['/compute', '/compute/']) {
    const r = await app.inject({ url, headers: { host: 'h:1' } });
    assert.equal(r.statusCode, 200, url);
    const [v] = r.json().versions;
    assert.deepEqual([v.id, v.status, v.version, v.min_version], ['v2.1', 'CURRENT', '2.1', '2.1']);
    assert.equal(v.links[0].href, 'http://h:1/compute/v2.1/');
  }
  for (const url of ['/compute/v2.1', '/compute/v2.1/']) {
    const r = await app.inject({ url, headers: { host: 'h:1' } });
    assert.equal(r.statusCode, 200, url);
    assert.equal(r.json().version.version, '2.1');
    assert.equal(r.headers['openstack-api-version'], 'compute 2.1');
    assert.equal(r.headers['x-openstack-nova-api-version'], '2.1');
    assert.match(String(r.headers.vary), /OpenStack-API-Version/);
  }
});

test('microversions: 2.1 and latest are served; a higher one is refused with 406 as Nova words it; garbage is a 400', async () => {
  const asks: Record<string, string>[] = [{ 'x-openstack-nova-api-version': '2.1' }, { 'openstack-api-version': 'compute 2.1' }, { 'openstack-api-version': 'compute latest' }, {}];
  for (const headers of asks) {
    const r = await nova('bob', 'GET', '/v2.1/flavors', undefined, headers);
    assert.equal(r.statusCode, 200, JSON.stringify(headers));
    assert.equal(r.headers['x-openstack-nova-api-version'], '2.1');
  }
  const legacy = await nova('bob', 'GET', '/v2.1/flavors', undefined, { 'x-openstack-nova-api-version': '2.53' });
  assert.equal(legacy.statusCode, 406);
  assert.deepEqual(legacy.json(), { notAcceptable: { code: 406, message: 'Version 2.53 is not supported by the API. Minimum is 2.1 and maximum is 2.1.' } });
  const modern = await nova('bob', 'GET', '/v2.1/servers', undefined, { 'openstack-api-version': 'volume 3.0, compute 2.90' });
  assert.equal(modern.statusCode, 406);
  assert.match(modern.json().notAcceptable.message, /^Version 2\.90 is not supported/);
  const junk = await nova('bob', 'GET', '/v2.1/servers', undefined, { 'x-openstack-nova-api-version': 'two' });
  assert.equal(junk.statusCode, 400);
  assert.equal(junk.json().badRequest.code, 400);
});

test('no token or a bad one: 401 in Nova\'s shape', async () => {
  const none = await app.inject({ url: '/compute/v2.1/servers' });
  assert.equal(none.statusCode, 401);
  assert.equal(none.json().unauthorized.code, 401);
  const bad = await app.inject({ url: '/compute/v2.1/servers', headers: { 'x-auth-token': 'x'.repeat(43) } });
  assert.equal(bad.statusCode, 401);
});

test('flavors: ids are kumo\'s names (strings), sizes in Nova\'s units, the 2.1 fields; unknown: 404 itemNotFound; extra specs empty', async () => {
  const list = await nova('bob', 'GET', '/v2.1/flavors');
  assert.equal(list.statusCode, 200);
  const small = list.json().flavors.find((f: { id: string }) => f.id === 'small');
  assert.deepEqual(Object.keys(small).sort(), ['id', 'links', 'name']);
  assert.equal(small.links[0].href, 'http://cloud.example:8080/compute/v2.1/flavors/small');
  const detail = (await nova('bob', 'GET', '/v2.1/flavors/detail')).json().flavors;
  assert.ok(detail.length >= 2);
  for (const f of detail) assert.equal(typeof f.id, 'string');
  const one = await nova('bob', 'GET', '/v2.1/flavors/small/');
  assert.equal(one.statusCode, 200);
  assert.deepEqual(one.json().flavor, {
    id: 'small', name: 'small', vcpus: 1, ram: 1024, disk: 10, 'OS-FLV-EXT-DATA:ephemeral': 0, 'OS-FLV-DISABLED:disabled': false,
    swap: '', rxtx_factor: 1.0, 'os-flavor-access:is_public': true, links: one.json().flavor.links,
  });
  assert.deepEqual((await nova('bob', 'GET', '/v2.1/flavors/small/os-extra_specs')).json(), { extra_specs: {} });
  const missing = await nova('bob', 'GET', '/v2.1/flavors/huge');
  assert.equal(missing.statusCode, 404);
  assert.match(missing.json().itemNotFound.message, /flavor "huge" does not exist/);
  const paged = (await nova('bob', 'GET', '/v2.1/flavors?limit=1')).json().flavors;
  assert.equal(paged.length, 1);
});

const edKey = () => {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'jwk' }).x!;
  const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  return `ssh-ed25519 ${Buffer.concat([str(Buffer.from('ssh-ed25519')), str(Buffer.from(raw, 'base64url'))]).toString('base64')} me@laptop`;
};

test('keypairs: import (200), list and show in Nova\'s shapes, per project; a duplicate 409; delete 202 then 404', async () => {
  const key = edKey();
  const made = await nova('alice', 'POST', '/v2.1/os-keypairs', { keypair: { name: 'laptop', public_key: `${key}\n` } });
  assert.equal(made.statusCode, 200, made.body);
  const kp = made.json().keypair;
  assert.equal(kp.public_key, key);
  assert.match(kp.fingerprint, /^([0-9a-f]{2}:){15}[0-9a-f]{2}$/);
  assert.equal(kp.fingerprint, sshFingerprint(key));
  assert.equal(kp.private_key, undefined);
  const list = await nova('bob', 'GET', '/v2.1/os-keypairs');
  assert.deepEqual(list.json(), { keypairs: [{ keypair: { name: 'laptop', public_key: key, fingerprint: kp.fingerprint } }] });
  const shown = (await nova('bob', 'GET', '/v2.1/os-keypairs/laptop')).json().keypair;
  assert.equal(typeof shown.id, 'number');
  assert.match(shown.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
  assert.deepEqual((await nova('carol', 'GET', '/v2.1/os-keypairs')).json(), { keypairs: [] }, 'another project does not see it');
  const again = await nova('alice', 'POST', '/v2.1/os-keypairs', { keypair: { name: 'laptop', public_key: key } });
  assert.equal(again.statusCode, 409);
  assert.match(again.json().conflictingRequest.message, /keypair "laptop" already exists/);
  const gone = await nova('alice', 'DELETE', '/v2.1/os-keypairs/laptop');
  assert.equal(gone.statusCode, 202);
  assert.equal((await nova('bob', 'GET', '/v2.1/os-keypairs/laptop')).statusCode, 404);
  assert.equal((await nova('alice', 'DELETE', '/v2.1/os-keypairs/laptop')).statusCode, 404);
});

test('keypairs go with their project: a project made again under the name has none', async () => {
  const projects = new ProjectService(ctx);
  projects.create('p-keys');
  const key = edKey();
  new KeypairService(ctx, { kind: 'machine', name: 'root', project: 'p-keys', role: 'admin' }).import('old', key);
  projects.delete('p-keys');
  projects.create('p-keys');
  assert.deepEqual(new KeypairService(ctx, { kind: 'machine', name: 'root', project: 'p-keys', role: 'admin' }).list(), []);
  projects.delete('p-keys');
});

test('keypairs: without a public key kumo generates an RSA pair and hands out the private key once', async () => {
  const r = await nova('alice', 'POST', '/v2.1/os-keypairs', { keypair: { name: 'gen1' } });
  assert.equal(r.statusCode, 200, r.body);
  const kp = r.json().keypair;
  assert.match(kp.private_key, /^-----BEGIN RSA PRIVATE KEY-----/);
  assert.ok(isSshPublicKey(kp.public_key) && kp.public_key.startsWith('ssh-rsa '));
  assert.equal(checkPublicKey(kp.public_key), kp.public_key);
  // The public key is the private key's: the same modulus.
  const n = Buffer.from(createPrivateKey(kp.private_key).export({ format: 'jwk' }).n!, 'base64url');
  assert.ok(Buffer.from(kp.public_key.split(' ')[1], 'base64').includes(n));
  assert.equal(kp.fingerprint, createHash('md5').update(Buffer.from(kp.public_key.split(' ')[1], 'base64')).digest('hex').match(/../g)!.join(':'));
  assert.equal((await nova('bob', 'GET', '/v2.1/os-keypairs/gen1')).json().keypair.private_key, undefined, 'never kept');
});

test('keypairs: a reader may not add one (403); a bad key, a bad name and a bad body are 400s naming the problem', async () => {
  const reader = await nova('bob', 'POST', '/v2.1/os-keypairs', { keypair: { name: 'k', public_key: edKey() } });
  assert.equal(reader.statusCode, 403);
  assert.match(reader.json().forbidden.message, /needs the role member/);
  const cases: [unknown, RegExp][] = [
    [{ keypair: { name: 'k', public_key: 'not a key' } }, /"not a key" is not an OpenSSH public key/],
    [{ keypair: { name: 'k', public_key: `ssh-rsa ${edKey().split(' ')[1]}` } }, /says it is "ssh-rsa" but its data is a "ssh-ed25519" key/],
    [{ keypair: { name: 'k', public_key: `${edKey()}\n${edKey()}` } }, /more than one line/],
    [{ keypair: { name: 'bad name!', public_key: edKey() } }, /keypair name "bad name!" is not valid/],
    [{ keypair: {} }, /keypair\.name/],
  ];
  for (const [body, says] of cases) {
    const r = await nova('alice', 'POST', '/v2.1/os-keypairs', body);
    assert.equal(r.statusCode, 400, JSON.stringify(body));
    assert.match(r.json().badRequest.message, says);
  }
  assert.deepEqual((await nova('bob', 'GET', '/v2.1/os-keypairs')).json().keypairs.map((k: { keypair: { name: string } }) => k.keypair.name), ['gen1'], 'nothing half-made');
});

test('limits: the project\'s quotas and use in Nova\'s absolute limits, -1 for no cap', async () => {
  const open = (await nova('bob', 'GET', '/v2.1/limits')).json().limits;
  assert.deepEqual(open.rate, []);
  assert.equal(open.absolute.maxTotalInstances, -1);
  assert.equal(open.absolute.totalInstancesUsed, 0);
  new ProjectService(ctx).set('p1', { instances: 3, vcpus: 8, ramMiB: 4096 });
  const capped = (await nova('bob', 'GET', '/v2.1/limits')).json().limits.absolute;
  assert.deepEqual([capped.maxTotalInstances, capped.maxTotalCores, capped.maxTotalRAMSize, capped.totalCoresUsed], [3, 8, 4096, 0]);
});

test('servers: none yet; a name or unknown id on the by-id URL is 404 itemNotFound (clients then filter by name)', async () => {
  assert.deepEqual((await nova('bob', 'GET', '/v2.1/servers')).json(), { servers: [] });
  assert.deepEqual((await nova('bob', 'GET', '/v2.1/servers/detail?name=web')).json(), { servers: [] });
  for (const id of ['web1', '5b0c3b1e-9f5e-4c3a-8a57-3c8f4a1d2e10']) {
    const r = await nova('bob', 'GET', `/v2.1/servers/${id}`);
    assert.equal(r.statusCode, 404);
    assert.match(r.json().itemNotFound.message, new RegExp(`server ${id} could not be found`));
  }
});

test('server create: a reader gets 403; what kumo cannot do or cannot find is a 400 naming it, before anything is made', async () => {
  const server = (extra: object) => ({ server: { name: 'web1', imageRef: 'tiny', flavorRef: 'small', ...extra } });
  const reader = await nova('bob', 'POST', '/v2.1/servers', server({}));
  assert.equal(reader.statusCode, 403);
  const cases: [unknown, RegExp][] = [
    [server({ min_count: 2, max_count: 2 }), /min_count is 2: kumo makes one server per request/],
    [server({ block_device_mapping_v2: [{ boot_index: 0 }] }), /boot from volume\) is not served/],
    [server({ imageRef: '' }), /imageRef is required/],
    [server({ networks: [{ port: osUuid('port', 'x') }] }), /networks with a port or a fixed_ip are not served/],
    [server({ metadata: { role: 'web' } }), /metadata is not served/],
    [{ server: { name: 'web1', imageRef: 'tiny' } }, /server\.flavorRef/],
    [server({}), /image tiny could not be found/],
  ];
  for (const [body, says] of cases) {
    const r = await nova('alice', 'POST', '/v2.1/servers', body);
    assert.equal(r.statusCode, 400, `${JSON.stringify(body)}: ${r.body}`);
    assert.match(r.json().badRequest.message, says);
  }
  assert.deepEqual((await nova('bob', 'GET', '/v2.1/servers')).json(), { servers: [] });
  assert.equal(ops.list().length, 0, 'no operation was started');
});

test('a create in progress is a BUILD server under the operation\'s id; failed, an ERROR server with its fault; deleting it hides it', async () => {
  let fail: (e: Error) => void = () => undefined;
  const op = ops.startFor({ name: 'login:alice', project: 'p1' }, 'instance.create', 'web9', () => new Promise((_, reject) => { fail = reject; }));
  await new Promise((r) => setImmediate(r));
  const building = await nova('bob', 'GET', `/v2.1/servers/${op.id}`);
  assert.equal(building.statusCode, 200, building.body);
  const b = building.json().server;
  assert.deepEqual([b.id, b.name, b.status, b['OS-EXT-STS:vm_state'], b.tenant_id], [op.id, 'web9', 'BUILD', 'building', 'p1']);
  assert.match(b.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal((await nova('carol', 'GET', `/v2.1/servers/${op.id}`)).statusCode, 404, 'another project does not see it');
  const listed = (await nova('bob', 'GET', '/v2.1/servers/detail?status=build')).json().servers;
  assert.deepEqual(listed.map((s: { id: string }) => s.id), [op.id]);
  assert.deepEqual((await nova('bob', 'GET', '/v2.1/servers?name=%5Eweb')).json().servers.map((s: { name: string }) => s.name), ['web9']);
  assert.deepEqual((await nova('bob', 'GET', '/v2.1/servers?name=nomatch')).json().servers, []);
  assert.deepEqual((await nova('bob', 'GET', '/v2.1/servers?name=web9%24')).json().servers.map((s: { name: string }) => s.name), ['web9']);
  // A pattern that backtracks catastrophically as a regular expression is text here: answered at once, matching nothing.
  assert.deepEqual((await nova('bob', 'GET', `/v2.1/servers?name=${encodeURIComponent('^(w|we|web|web9)*(w|we|web|web9)*(w|we|web|web9)*x$')}`)).json().servers, []);
  fail(new Error('the disk could not be made'));
  await ops.wait(op.id);
  const failed = (await nova('bob', 'GET', `/v2.1/servers/${op.id}`)).json().server;
  assert.equal(failed.status, 'ERROR');
  assert.equal(failed.fault.code, 500);
  assert.equal(typeof failed.fault.message, 'string');
  const start = await nova('alice', 'POST', `/v2.1/servers/${op.id}/action`, { 'os-start': null });
  assert.equal(start.statusCode, 409);
  assert.match(start.json().conflictingRequest.message, /Cannot 'start' instance .* vm_state error/);
  assert.equal((await nova('bob', 'DELETE', `/v2.1/servers/${op.id}`)).statusCode, 403, 'a reader may not delete');
  assert.equal((await nova('alice', 'DELETE', `/v2.1/servers/${op.id}`)).statusCode, 204);
  assert.equal((await nova('bob', 'GET', `/v2.1/servers/${op.id}`)).statusCode, 404);
  assert.deepEqual((await nova('bob', 'GET', '/v2.1/servers')).json(), { servers: [] });
});

test('server actions: one action key, served ones only (400 otherwise); a reader gets 403', async () => {
  const id = '5b0c3b1e-9f5e-4c3a-8a57-3c8f4a1d2e10';
  const unknown = await nova('alice', 'POST', `/v2.1/servers/${id}/action`, { pause: null });
  assert.equal(unknown.statusCode, 400);
  assert.match(unknown.json().badRequest.message, /"pause" is not served by kumo/);
  const two = await nova('alice', 'POST', `/v2.1/servers/${id}/action`, { 'os-start': null, 'os-stop': null });
  assert.equal(two.statusCode, 400);
  const badType = await nova('alice', 'POST', `/v2.1/servers/${id}/action`, { reboot: { type: 'GENTLE' } });
  assert.equal(badType.statusCode, 400);
  assert.equal((await nova('alice', 'POST', `/v2.1/servers/${id}/action`, { 'os-stop': null })).statusCode, 404);
  assert.equal((await nova('bob', 'POST', `/v2.1/servers/${id}/action`, { 'os-stop': null })).statusCode, 403);
  assert.equal((await nova('alice', 'POST', `/v2.1/servers/${id}/os-volume_attachments`, { volumeAttachment: { volumeId: id, device: null } })).statusCode, 404);
});

const instance = (over: Partial<Instance> = {}): Instance => ({
  name: 'web1', uuid: 'aaaaaaaa-0000-4000-8000-00000000000a', host: 'kvm1', image: 'tiny', flavor: 'small', vcpus: 1, ramMiB: 1024, diskGiB: 10,
  networks: ['net1', 'net2'], nics: [{ mac: '52:54:00:00:00:0a', network: 'net1', ipv4: '10.0.0.5' }, { mac: '52:54:00:00:00:0b', network: 'net2' }],
  dataDisks: [], sshKeys: [], state: 'running', observedAt: '2026-12-07T04:30:01.123Z', stateSource: 'events', createdAt: '2026-12-07T04:29:00.456Z',
  volumes: [{ name: 'data1', device: '/dev/vdb', sizeGiB: 1 }], drift: [], ...over,
});

test('a server\'s body from an instance: addresses by network name with a numeric version, string flavor id, image and volumes by their ids, times with Z', () => {
  const s = renderServer({ base: 'http://k:1', project: 'p1', admin: false }, instance());
  assert.equal(s.id, 'aaaaaaaa-0000-4000-8000-00000000000a');
  assert.deepEqual(s.addresses, { net1: [{ version: 4, addr: '10.0.0.5', 'OS-EXT-IPS:type': 'fixed', 'OS-EXT-IPS-MAC:mac_addr': '52:54:00:00:00:0a' }], net2: [] });
  assert.deepEqual([s.status, s['OS-EXT-STS:vm_state'], s['OS-EXT-STS:power_state'], s['OS-EXT-STS:task_state']], ['ACTIVE', 'active', 1, null]);
  assert.equal(s.flavor.id, 'small');
  assert.equal(s.image.id, osUuid('image', 'tiny'));
  assert.deepEqual(s['os-extended-volumes:volumes_attached'], [{ id: osUuid('volume', 'data1') }]);
  assert.equal(s.created, '2026-12-07T04:29:00Z');
  assert.equal(s.updated, '2026-12-07T04:30:01Z');
  assert.equal(s['OS-SRV-USG:launched_at'], '2026-12-07T04:29:00.456000');
  assert.match(s.hostId, /^[0-9a-f]{56}$/);
  assert.equal('OS-EXT-SRV-ATTR:host' in s, false, 'the host is an admin\'s to see');
  assert.equal(renderServer({ base: 'http://k:1', project: 'p1', admin: true }, instance())['OS-EXT-SRV-ATTR:host'], 'kvm1');
  const off = renderServer({ base: 'http://k:1', project: 'p1', admin: false, task: 'instance.start' }, instance({ state: 'shut off' }));
  assert.deepEqual([off.status, off['OS-EXT-STS:power_state'], off['OS-EXT-STS:task_state']], ['SHUTOFF', 4, 'powering-on']);
  const gone = renderServer({ base: 'http://k:1', project: 'p1', admin: false }, instance({ state: 'missing', drift: ['the libvirt domain is gone'] }));
  assert.equal(gone.status, 'ERROR');
  assert.match(String((gone as { fault?: { message: string } }).fault?.message), /domain is gone/);
});

test('Nova states: BUILD while the create runs, task states of kumo\'s operations, REBOOT, SHUTOFF, ERROR for a crash', () => {
  assert.deepEqual(novaState('missing', 'instance.create'), { status: 'BUILD', vm_state: 'building', power_state: 0, task_state: 'spawning' });
  assert.deepEqual(novaState('running', 'instance.delete'), { status: 'ACTIVE', vm_state: 'active', power_state: 1, task_state: 'deleting' });
  assert.equal(novaState('running', 'instance.reboot').status, 'REBOOT');
  assert.equal(novaState('running', 'instance.reboot-hard').status, 'HARD_REBOOT');
  assert.deepEqual(novaState('shut off'), { status: 'SHUTOFF', vm_state: 'stopped', power_state: 4, task_state: null });
  assert.equal(novaState('crashed').status, 'ERROR');
  assert.equal(novaState('in shutdown').task_state, 'powering-off');
});
