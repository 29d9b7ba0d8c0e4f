import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { makeTestEnv, type TestEnv } from '../helpers/env.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { KumoError } from '../../src/model/errors.js';
import { local } from '../../src/exec/exec.js';

let env: TestEnv;
let server: Server;
let base: string;
let disk: Buffer;
/** How many bytes the server sends before dropping the connection (simulates a broken download). */
let cutAfter = Infinity;
const ranges: string[] = [];

before(async () => {
  env = await makeTestEnv('img');
  const dir = join(env.home, 'files');
  await mkdir(dir);
  await local.run('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'base.qcow2'), '2G']);
  // Give the file some bulk so a cut-off download is partial.
  await local.run('qemu-io', ['-c', 'write -P 0x5a 0 4M', join(dir, 'base.qcow2')]);
  disk = readFileSync(join(dir, 'base.qcow2'));
  // The "internet" here is a server on loopback that this test runs.
  server = createServer((req, res) => {
    if (req.url !== '/cloud.qcow2') { res.writeHead(404).end(); return; }
    const m = /bytes=(\d+)-/.exec(req.headers.range ?? '');
    ranges.push(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    res.writeHead(m ? 206 : 200, { 'content-length': String(disk.length - start) });
    const body = disk.subarray(start, Math.min(disk.length, start + cutAfter));
    res.write(body, () => (start + body.length < disk.length ? res.destroy() : res.end()));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server?.close();
  await env?.cleanup();
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('import from a local file and from a URL with a checksum; list and show', async () => {
  // Root on the machine (as the CLI): files on the server and the test's own loopback server.
  const images = new ImageService(env.ctx);
  const a = await images.import(`${env.prefix}-local`, join(env.home, 'files', 'base.qcow2'), { os: 'CentOS 7.8' }, 'machine');
  assert.equal(a.format, 'qcow2');
  assert.equal(a.virtualSizeBytes, 2 * 1024 ** 3);
  const b = await images.import(`${env.prefix}-url`, `${base}/cloud.qcow2`, { os: 'Ubuntu 18.04', sha256: sha(disk) }, 'machine');
  assert.deepEqual(readFileSync(b.disk), disk);
  const listed = await env.cli(['image', 'list']);
  assert.match(listed.stdout, /CentOS 7\.8[\s\S]*Ubuntu 18\.04/);
  const shown = JSON.parse((await env.cli(['image', 'show', b.name, '--json'])).stdout) as { os: string };
  assert.equal(shown.os, 'Ubuntu 18.04');
});

test('a broken download resumes on the next try', async () => {
  cutAfter = 1024 * 1024;
  ranges.length = 0;
  const images = new ImageService(env.ctx);
  await assert.rejects(images.import(`${env.prefix}-resume`, `${base}/cloud.qcow2`, {}, 'machine'),
    (e: unknown) => e instanceof KumoError && /broke off[\s\S]*/.test(e.message) && /resumes/.test(e.fix ?? ''));
  assert.equal(existsSync(join(env.home, 'images', `${env.prefix}-resume`)), false, 'no half image is left registered');
  cutAfter = Infinity;
  const img = await images.import(`${env.prefix}-resume`, `${base}/cloud.qcow2`, { sha256: sha(disk) }, 'machine');
  assert.deepEqual(readFileSync(img.disk), disk);
  assert.match(ranges[1] ?? '', /^bytes=\d+-$/, 'the second request asked for the rest only');
});

test('bad imports are refused and leave nothing', async () => {
  const images = new ImageService(env.ctx);
  const before = readdirSync(join(env.home, 'images')).sort();
  const cases: [string, string, object, RegExp][] = [
    ['bad/name', join(env.home, 'files', 'base.qcow2'), {}, /image name "bad\/name" is not valid/],
    [`${env.prefix}-x`, join(env.home, 'files', 'nope.qcow2'), {}, /does not exist/],
    [`${env.prefix}-x`, `${base}/cloud.qcow2`, { sha256: '0'.repeat(64) }, /checksum mismatch/],
    [`${env.prefix}-x`, `${base}/cloud.qcow2`, { sha256: 'xyz' }, /64 hexadecimal digits/],
    [`${env.prefix}-x`, `${base}/missing.qcow2`, {}, /HTTP 404/],
    [`${env.prefix}-x`, join(env.home, 'files', 'base.qcow2'), { initrd: '/x' }, /need --kernel/],
    [`${env.prefix}-local`, join(env.home, 'files', 'base.qcow2'), {}, /already exists/],
  ];
  for (const [name, src, opts, says] of cases) {
    await assert.rejects(images.import(name, src, opts, 'machine'), (e: unknown) => e instanceof KumoError && says.test(e.message), `${name} ${src}`);
  }
  assert.deepEqual(readdirSync(join(env.home, 'images')).sort(), before);
});

test('an image in use cannot be deleted; once free it can', async () => {
  const name = `${env.prefix}-local`;
  const inst = `${env.prefix}-user`;
  await new InstanceService(env.ctx).create({ name: inst, image: name, flavor: 'small', password: 'x', networks: [env.network], start: false });
  const r = await env.cli(['image', 'delete', name]);
  assert.equal(r.code, 4);
  assert.match(r.stderr, new RegExp(`used by instance ${inst}[\\s\\S]*kumo instance delete ${inst}`));
  await new InstanceService(env.ctx).delete(inst);
  assert.equal((await env.cli(['image', 'delete', name])).code, 0);
  assert.equal(existsSync(join(env.home, 'images', name)), false);
});

test('flavors: the course\'s built-ins, custom ones, and refusals', async () => {
  const list = JSON.parse((await env.cli(['flavor', 'list', '--json'])).stdout) as { name: string; vcpus: number; ramMiB: number; diskGiB: number }[];
  assert.deepEqual(list.slice(0, 2).map((f) => [f.name, f.vcpus, f.ramMiB, f.diskGiB]), [['small', 1, 1024, 10], ['medium', 2, 2048, 20]]);
  assert.equal((await env.cli(['flavor', 'create', 'big', '--vcpus', '4', '--ram', '4096', '--disk-size', '40'])).code, 0);
  assert.match((await env.cli(['flavor', 'list'])).stdout, /big\s+4\s+4 GiB\s+40 GiB\s+no/);
  const dup = await env.cli(['flavor', 'create', 'big', '--vcpus', '4', '--ram', '4096', '--disk-size', '40']);
  assert.equal(dup.code, 4);
  const zero = await env.cli(['flavor', 'create', 'z', '--vcpus', '0', '--ram', '4096', '--disk-size', '40']);
  assert.match(zero.stderr, /--vcpus must be a whole number/);
  const builtin = await env.cli(['flavor', 'delete', 'small']);
  assert.match(builtin.stderr, /built in/);
  assert.equal((await env.cli(['flavor', 'delete', 'big'])).code, 0);
});

test('host info names the acceleration actually in use and the versions', async () => {
  const r = await env.cli(['host', 'info', '--json']);
  const info = JSON.parse(r.stdout) as { accel: string; accelReason: string; libvirt: string; hypervisor: string; libvirtAnswers: boolean };
  assert.ok(info.libvirtAnswers);
  assert.match(info.accel, /^(kvm|tcg)$/);
  assert.ok(info.accelReason.length > 10);
  assert.match(info.libvirt, /^\d+\.\d+/);
  assert.match(info.hypervisor, /QEMU/);
});
