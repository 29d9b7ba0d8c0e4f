import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { freeSubnet, type TestEnv } from '../helpers/env.js';
import { API, ApiClient, closeApiWorld, openApiWorld, refused, type TestApi } from '../helpers/api.js';
import { buildNetworkXml } from '../../src/drivers/libvirt/network-xml.js';
import { local } from '../../src/exec/exec.js';
import { SettingsService } from '../../src/service/settings.js';

/**
 * The REST API's resources that need no instance, in-process on 127.0.0.1:0 over a test's own
 * KUMO_HOME: flavors, hosts, networks and image import; each route's success, 400 naming the
 * field, 404 and 409.
 */

let env: TestEnv;
let api: TestApi | undefined;
let client: ApiClient;
let base: string;
let token: string;

before(async () => {
  ({ env, api, base, token, client } = await openApiWorld('res'));
});

// Pass or fail: the server, the test's world (its networks carry its prefix).
after(() => closeApiWorld({ env, api, client }));

const call = (...a: Parameters<ApiClient['call']>) => client.call(...a);
const finished = (...a: Parameters<ApiClient['finished']>) => client.finished(...a);

test('flavors: list, show, create, delete; 400 naming the field, 404, 409', async () => {
  const list = await call('GET', `${API}/flavors`);
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.map((f: { name: string }) => f.name), ['small', 'medium']);
  assert.deepEqual((await call('GET', `${API}/flavors/small`)).body, { name: 'small', vcpus: 1, ramMiB: 1024, diskGiB: 10, builtin: true });
  const made = await call('POST', `${API}/flavors`, { name: 'tiny1', vcpus: 1, ramMiB: 256, diskGiB: 2 });
  assert.equal(made.status, 201);
  assert.deepEqual(made.body, { name: 'tiny1', vcpus: 1, ramMiB: 256, diskGiB: 2, builtin: false });
  refused(await call('POST', `${API}/flavors`, { name: 'tiny1', vcpus: 1, ramMiB: 256, diskGiB: 2 }), 409, 'ALREADY_EXISTS');
  refused(await call('POST', `${API}/flavors`, { name: 'f2', vcpus: 'two', ramMiB: 256, diskGiB: 2 }), 400, 'INVALID_INPUT', ['body.vcpus']);
  refused(await call('POST', `${API}/flavors`, { name: 'f2', vcpus: 1, ramMiB: 1, diskGiB: 2 }), 400, 'INVALID_INPUT', ['body.ramMiB']);
  refused(await call('POST', `${API}/flavors`, { name: 'f2', vcpus: 1, ram: 256, diskGiB: 2 }), 400, 'INVALID_INPUT', ['body.ram', 'body.ramMiB']);
  refused(await call('POST', `${API}/flavors`, { name: 'bad name', vcpus: 1, ramMiB: 256, diskGiB: 2 }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/flavors`), 400, 'INVALID_INPUT', ['body']);
  const broken = await fetch(`${base}${API}/flavors`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"name":' });
  refused({ status: broken.status, headers: broken.headers, body: await broken.json() }, 400, 'INVALID_INPUT');
  refused(await call('GET', `${API}/flavors/nope`), 404, 'NOT_FOUND');
  refused(await call('DELETE', `${API}/flavors/small`), 400, 'INVALID_INPUT');
  assert.equal((await call('DELETE', `${API}/flavors/tiny1`)).status, 204);
  refused(await call('DELETE', `${API}/flavors/tiny1`), 404, 'NOT_FOUND');
  refused(await call('GET', `${API}/nothing-here`), 404, 'NOT_FOUND');
});

test('hosts: list and show; 404', async () => {
  const list = await call('GET', `${API}/hosts`);
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.map((h: { name: string; up: boolean }) => [h.name, h.up]), [['local', true]]);
  const local = await call('GET', `${API}/hosts/local`);
  assert.equal(local.body.uri, 'qemu:///system');
  assert.ok(local.body.cpus > 0 && local.body.memoryMiB > 0);
  refused(await call('GET', `${API}/hosts/nope`), 404, 'NOT_FOUND');
  const info = await call('GET', `${API}/info`);
  assert.equal(info.status, 200, JSON.stringify(info.body));
  assert.equal(info.body.libvirtAnswers, true);
  assert.ok(info.body.cpus > 0 && Array.isArray(info.body.missing));
});

test('networks: list, show, create, stop, start, delete; 400 naming the field, 404, 409', async () => {
  const list = await call('GET', `${API}/networks`);
  assert.ok(list.body.some((n: { name: string }) => n.name === env.network));
  const mine = await call('GET', `${API}/networks/${env.network}`);
  assert.equal(mine.body.mode, 'isolated');
  assert.equal(mine.body.active, true);
  refused(await call('GET', `${API}/networks/${env.prefix}-none`), 404, 'NOT_FOUND');
  const name = `${env.prefix}-n2`;
  const third = await freeSubnet();
  refused(await call('POST', `${API}/networks`, { name, mode: 'mesh', cidr: `192.168.${third}.0/24` }), 400, 'INVALID_INPUT', ['body.mode']);
  refused(await call('POST', `${API}/networks`, { name, mode: 'nat', cidr: '192.168.1.0/33' }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/networks`, { name, mode: 'isolated', subnet: '10.0.0.0/24' }), 400, 'INVALID_INPUT', ['body.subnet']);
  const made = await call('POST', `${API}/networks`, { name, mode: 'isolated', cidr: `192.168.${third}.0/24`, bridge: `${env.prefix}b2` });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  assert.equal(made.body.cidr, `192.168.${third}.0/24`);
  assert.equal(made.body.active, true);
  refused(await call('POST', `${API}/networks`, { name, mode: 'isolated', cidr: '192.168.251.0/24' }), 409, 'ALREADY_EXISTS');
  assert.equal((await call('POST', `${API}/networks/${name}/stop`)).body.active, false);
  assert.equal((await call('POST', `${API}/networks/${name}/start`)).body.active, true);
  refused(await call('POST', `${API}/networks/${env.prefix}-none/start`), 404, 'NOT_FOUND');
  refused(await call('POST', `${API}/networks/${env.prefix}-none/stop`), 404, 'NOT_FOUND');
  const xml = await fetch(`${base}${API}/networks/${name}/xml`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(xml.status, 200);
  assert.match(xml.headers.get('content-type') ?? '', /^application\/xml/);
  assert.match(await xml.text(), new RegExp(`<name>${name}</name>`));
  refused(await call('GET', `${API}/networks/${env.prefix}-none/xml`), 404, 'NOT_FOUND');
  refused(await call('POST', `${API}/networks/${name}/autostart`, { enabled: 'yes' }), 400, 'INVALID_INPUT', ['body.enabled']);
  assert.equal((await call('POST', `${API}/networks/${name}/autostart`, { enabled: true })).body.autostart, true);
  assert.equal((await call('POST', `${API}/networks/${name}/autostart`, { enabled: false })).body.autostart, false);
  refused(await call('POST', `${API}/networks/${env.prefix}-none/autostart`, { enabled: true }), 404, 'NOT_FOUND');
  assert.equal((await call('DELETE', `${API}/networks/${name}`)).status, 204);
  refused(await call('DELETE', `${API}/networks/${name}`), 404, 'NOT_FOUND');
  // From libvirt XML, like the course's testnat.xml: defined, not started.
  const defined = `${env.prefix}-n3`;
  const fourth = await freeSubnet();
  refused(await call('POST', `${API}/networks/define`, {}), 400, 'INVALID_INPUT', ['body.xml']);
  refused(await call('POST', `${API}/networks/define`, { xml: '<network><nme>x</nme></network>' }), 400, 'INVALID_INPUT');
  const fromXml = await call('POST', `${API}/networks/define`, {
    xml: buildNetworkXml({ name: defined, mode: 'isolated', bridge: `${env.prefix}b3`, ipv4: { address: `192.168.${fourth}.1`, prefix: 24 } }),
  });
  assert.equal(fromXml.status, 201, JSON.stringify(fromXml.body));
  assert.deepEqual([fromXml.body.name, fromXml.body.active, fromXml.body.cidr], [defined, false, `192.168.${fourth}.0/24`]);
  assert.equal((await call('DELETE', `${API}/networks/${defined}`)).status, 204);
});

test('image import as an operation (from the site\'s mirror over http); a server file or a bad checksum is a 400 naming the problem; a missing URL fails the operation', async () => {
  const file = join(env.home, 'import-me.qcow2');
  await local.run('qemu-img', ['create', '-f', 'qcow2', file, '64M']);
  // The "mirror" is a server on loopback this test runs; the site setting lets the API use it.
  const mirror = createServer((req, res) => {
    if (req.url !== '/import-me.qcow2') { res.writeHead(404).end(); return; }
    res.writeHead(200).end(readFileSync(file));
  });
  await new Promise<void>((r) => mirror.listen(0, '127.0.0.1', r));
  try {
    new SettingsService(env.ctx).set('image.mirrors', '127.0.0.1');
    const url = `http://127.0.0.1:${(mirror.address() as AddressInfo).port}`;
    const name = `${env.prefix}-img`;
    refused(await call('POST', `${API}/images/import`, { name, source: `${url}/import-me.qcow2`, sha256: 'abc' }), 400, 'INVALID_INPUT', ['body.sha256']);
    refused(await call('POST', `${API}/images/import`, { name }), 400, 'INVALID_INPUT', ['body.source']);
    refused(await call('POST', `${API}/images/import`, { name, source: file }), 400, 'INVALID_INPUT');
    refused(await call('POST', `${API}/images/build`, { recipe: 'debian-12', packages: ['Not A Package'] }), 400, 'INVALID_INPUT', ['body.packages.0']);
    const started = await call('POST', `${API}/images/import`, { name, source: `${url}/import-me.qcow2`, os: 'Test OS' });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    const op = await finished(started.body.operation.id);
    assert.equal(op.state, 'succeeded', JSON.stringify(op.error));
    assert.deepEqual([op.kind, op.result.name, op.result.os, op.result.virtualSizeBytes], ['image.import', name, 'Test OS', 64 * 2 ** 20]);
    assert.equal((await call('GET', `${API}/images/${name}`)).body.format, 'qcow2');
    const missing = await call('POST', `${API}/images/import`, { name: `${name}2`, source: `${url}/no-such.qcow2` });
    assert.equal(missing.status, 202);
    const failed = await finished(missing.body.operation.id);
    assert.equal(failed.state, 'failed');
    assert.match(failed.error.message, /no-such\.qcow2: HTTP 404/);
    assert.equal((await call('DELETE', `${API}/images/${name}`)).status, 204);
  } finally {
    mirror.close();
  }
});
