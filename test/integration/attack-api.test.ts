import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TestEnv } from '../helpers/env.js';
import { API, ApiClient, closeApiWorld, deleteMadeResources, openApiWorld, refused, type TestApi } from '../helpers/api.js';
import { local } from '../../src/exec/exec.js';

/**
 * Attack tests, issue 14 ("Trust"), first finding: the API can do what the cloud does and
 * nothing more. Each test is an attack a token holder could make through the real API server,
 * and each was accepted (or reached the server) before. Extend this list with the next one.
 *
 * Nothing here reaches a real address: the "internet" is a server on 127.0.0.1 this test runs
 * (allowed only where the test names it a mirror), and the refused addresses are refused before
 * any connection (a listener on 127.0.0.1 counts what reaches it).
 */

let env: TestEnv;
let api: TestApi | undefined;
let client: ApiClient;
/** What the loopback web server saw, and what it serves. */
const seen: string[] = [];
let server: Server | undefined;
let url: string;
let qcow2: Buffer;

before(async () => {
  ({ env, api, client } = await openApiWorld('atk'));
  const file = join(env.home, 'good.qcow2');
  await local.run('qemu-img', ['create', '-q', '-f', 'qcow2', file, '64M']);
  qcow2 = readFileSync(file);
  server = createServer((req, res) => {
    seen.push(req.url ?? '');
    if (req.url === '/good.qcow2') res.writeHead(200).end(qcow2);
    else if (req.url === '/text.img') res.writeHead(200).end('hello\n');
    else if (req.url === '/huge.img') res.writeHead(200, { 'content-length': String(3 * 2 ** 30) }).end();
    else if (req.url === '/endless.img') { res.writeHead(200); res.end(Buffer.alloc(1024 * 1024, 0x41)); } // chunked: no length announced
    else if (req.url === '/to-metadata') res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

// Pass or fail: the web server, the API server, what an accepted attack made (old code: a share of /), the test's world.
after(async () => {
  server?.close();
  await closeApiWorld({ env, api, client }, (e) => deleteMadeResources(e.ctx));
});

const call = (...a: Parameters<ApiClient['call']>) => client.call(...a);
/** The site setting naming mirrors (set in the store, as `kumo config set` does). */
const mirrors = (value: string) => env.ctx.settings.set('image.mirrors', value);

test('POST /hosts: an ext URI with command= (runs a program) and other program or file parameters are refused before libvirt sees them', async () => {
  const marker = join(env.home, 'ext-ran');
  const prog = join(env.home, 'prog.sh');
  await writeFile(prog, `#!/bin/sh\ntouch ${marker}\n`);
  await chmod(prog, 0o755);
  for (const uri of [`qemu+ext:///system?command=${prog}`, `qemu+ssh://root@127.0.0.1/system?command=${prog}`,
    `qemu+ssh://root@127.0.0.1/system?netcat=${prog}`, 'qemu+ssh://root@127.0.0.1/system?keyfile=/root/.ssh/id_rsa',
    'qemu+unix:///system?socket=/run/libvirt/libvirt-sock', 'qemu+tcp://127.0.0.1/system']) {
    refused(await call('POST', `${API}/hosts`, { name: `${env.prefix}-h`, uri }), 400, 'INVALID_INPUT');
  }
  refused(await call('POST', `${API}/hosts`, { name: `${env.prefix}-h`, roles: ['storage'], shell: { kind: 'ssh', destination: 'root@127.0.0.1', identity: '/root/.ssh/id_rsa' } }), 400, 'INVALID_INPUT');
  assert.equal(existsSync(marker), false, 'the program in the URI never ran');
  assert.deepEqual(env.ctx.hosts.list().map((h) => h.name), ['local'], 'no host registered');
});

test('POST /networks/define: XML with dnsmasq:options (any option to a root dnsmasq) or a TFTP root is refused, nothing defined', async () => {
  const name = `${env.prefix}-evil`;
  const body = (inner: string, ns = '') => `<network${ns}><name>${name}</name><bridge name="${env.prefix}ev"/>${inner}</network>`;
  const attacks = [
    body('<dnsmasq:options><dnsmasq:option value="dhcp-script=/tmp/x"/></dnsmasq:options>', ' xmlns:dnsmasq="http://libvirt.org/schemas/network/dnsmasq/1.0"'),
    body('<ip address="192.168.7.1" netmask="255.255.255.0"><tftp root="/"/></ip>'),
  ];
  for (const xml of attacks) {
    const r = await call('POST', `${API}/networks/define`, { xml });
    refused(r, 400, 'INVALID_INPUT');
    assert.match(r.body.error.message, /reaches past the network/);
  }
  refused(await call('GET', `${API}/networks/${name}`), 404, 'NOT_FOUND');
});

test('POST /images/import: a server path (/etc/shadow) is refused without saying whether it exists; kernel files too', async () => {
  const before = readdirSync(env.ctx.paths.images);
  const answers = [];
  for (const source of ['/etc/shadow', '/etc/no-such-file-kumo', 'file:///etc/shadow', '../../etc/shadow']) {
    const r = await call('POST', `${API}/images/import`, { name: `${env.prefix}-p`, source });
    refused(r, 400, 'INVALID_INPUT');
    answers.push(JSON.stringify(r.body.error));
  }
  assert.equal(answers[0], answers[1], 'an existing and a missing path get the same answer');
  assert.doesNotMatch(answers.join(), /shadow|[0-9a-f]{64}/, 'the answer names neither the file nor a checksum');
  mirrors('127.0.0.1');
  refused(await call('POST', `${API}/images/import`, { name: `${env.prefix}-p`, source: `${url}/good.qcow2`, kernel: '/etc/shadow' }), 400, 'INVALID_INPUT');
  mirrors('');
  assert.deepEqual(readdirSync(env.ctx.paths.images), before, 'no image folder made');
  assert.equal(env.ctx.images.get(`${env.prefix}-p`), undefined);
});

test('POST /images/import: loopback, metadata and private addresses are refused before any connection', async () => {
  seen.length = 0;
  for (const source of [`${url}/good.qcow2`, 'http://localhost:1/x.img', 'http://169.254.169.254/latest/meta-data/', 'http://10.0.0.1/x.img',
    'http://[::1]:1/x.img', 'http://[::ffff:127.0.0.1]:1/x.img', 'http://0.0.0.0:1/x.img']) {
    const r = await call('POST', `${API}/images/import`, { name: `${env.prefix}-a`, source });
    refused(r, 400, 'INVALID_INPUT');
    assert.match(r.body.error.message, /loopback|link-local|private|unspecified/, source);
  }
  assert.deepEqual(seen, [], 'the loopback server saw no request');
  assert.equal(env.ctx.images.get(`${env.prefix}-a`), undefined);
});

test('POST /images/import: from a mirror the site named; its redirect to a metadata address, an oversized answer and a text file are refused and leave nothing', async () => {
  mirrors('127.0.0.1');
  env.ctx.settings.set('image.max_import_gib', '0.0002'); // ~210 KiB: the qcow2 fits, the endless answer does not
  try {
    const downloads = join(env.ctx.paths.cache, 'downloads');
    const leftovers = () => (existsSync(downloads) ? readdirSync(downloads) : []);
    const before = leftovers();
    for (const [path, says] of [['/to-metadata', /169\.254\.169\.254 is a link-local address/], ['/huge.img', /larger than the import limit.*announces/],
      ['/endless.img', /larger than the import limit.*sent more/], ['/text.img', /not a disk image/]] as const) {
      const started = await call('POST', `${API}/images/import`, { name: `${env.prefix}-m`, source: `${url}${path}` });
      assert.equal(started.status, 202, JSON.stringify(started.body));
      const op = await client.finished(started.body.operation.id);
      assert.equal(op.state, 'failed', path);
      assert.match(op.error.message, says, path);
      assert.equal(env.ctx.images.get(`${env.prefix}-m`), undefined, `${path}: nothing registered`);
      assert.equal(existsSync(join(env.ctx.paths.images, `${env.prefix}-m`)), false, `${path}: no image folder`);
      assert.deepEqual(leftovers(), before, `${path}: no downloaded part left`);
    }
    const good = await call('POST', `${API}/images/import`, { name: `${env.prefix}-m`, source: `${url}/good.qcow2` });
    const op = await client.finished(good.body.operation.id);
    assert.equal(op.state, 'succeeded', JSON.stringify(op.error));
    assert.deepEqual(readFileSync(env.ctx.images.get(`${env.prefix}-m`)!.disk), qcow2);
    assert.equal((await call('DELETE', `${API}/images/${env.prefix}-m`)).status, 204);
  } finally {
    mirrors('');
    env.ctx.settings.unset('image.max_import_gib');
  }
});

test('POST /shares: a path outside KUMO_HOME/shares (/ , a link out of it, the shares folder itself) is refused, nothing registered', async () => {
  const root = join(env.home, 'shares');
  await mkdir(root, { recursive: true });
  await symlink('/', join(root, 'escape'));
  for (const path of ['/', '/etc', join(root, 'escape'), join(root, 'escape', 'etc'), root, `${root}/../images`]) {
    const r = await call('POST', `${API}/shares`, { name: `${env.prefix}-s`, networks: [env.network], path });
    refused(r, 400, 'INVALID_INPUT');
    assert.match(r.body.error.message, /outside KUMO_HOME\/shares/, path);
  }
  assert.deepEqual(env.ctx.shares.list(), []);
});
