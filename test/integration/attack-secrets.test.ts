import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import { apiToken, listenApi } from '../helpers/api.js';
import type { ApiServer } from '../../src/api/server.js';
import { homeLayout, openContext } from '../../src/service/context.js';
import { paths } from '../../src/config.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { VolumeService } from '../../src/service/volumes.js';
import { qemuGroup, secureHome } from '../../src/drivers/host/private-files.js';
import { local } from '../../src/exec/exec.js';

/**
 * Attack tests, "secrets lie open" (issue 14): kumo.db, seeds and disks were 0644 in 0755
 * folders, and every VNC console listened on 127.0.0.1 without a password, so any local user
 * read every root password hash and opened every console. Here a real instance is made and a
 * local user (nobody) tries; the console still opens through kumo; an old install's modes are
 * closed on start; a console WebSocket refuses a message too big instead of holding it.
 */
let env: TestEnv;
let app: ApiServer | undefined;
let base: string;
let token: string;
let name: string;
const volume = () => `${env.prefix}-v`;
const extraHomes: string[] = [];

before(async () => {
  assert.equal(process.getuid?.(), 0, 'these attack tests run as root: they check modes and try as another user');
  env = await makeTestEnv('sec');
  token = apiToken(env.ctx);
  await new ImageService(env.ctx).buildTiny();
  name = `${env.prefix}-a`;
  await new InstanceService(env.ctx).create({ name, image: 'tiny', flavor: 'small', password: 'pw', networks: [env.network], dataDisks: [1] });
  await new VolumeService(env.ctx).create(volume(), 1);
  ({ app, base } = await listenApi(env.ctx, { monitor: false }));
});

after(async () => {
  await app?.close();
  for (const h of extraHomes) await rm(h, { recursive: true, force: true });
  if (env) {
    await new InstanceService(env.ctx).delete(name).catch(() => undefined);
    await new VolumeService(env.ctx).delete(volume()).catch(() => undefined);
    await env.cleanup();
  }
});

const mode = async (path: string) => (await stat(path)).mode & 0o7777;
const octal = (m: number) => `0${m.toString(8)}`;

/** Runs a command as nobody (no groups): what any local user could do. */
async function asNobody(command: string, args: string[]): Promise<{ code: number; stdout: string }> {
  const r = await local.run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', command, ...args], { allowFailure: true, timeoutMs: 10_000 });
  return { code: r.code, stdout: r.stdout };
}

async function ticket(console: 'vnc' | 'serial'): Promise<{ status: number; path?: string }> {
  const r = await fetch(`${base}/api/v1/instances/${name}/console-ticket`, {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ console }),
  });
  return { status: r.status, ...(await r.json() as { path?: string }) };
}

test('the store and every instance file are closed to other local users: modes, and nobody reads nothing', async () => {
  const dir = join(env.home, 'instances', name);
  for (const f of [env.ctx.paths.db, join(dir, 'seed.iso'), join(dir, 'root.qcow2')]) {
    const r = await asNobody('cat', [f]);
    assert.notEqual(r.code, 0, `nobody read ${f}`);
    assert.equal(r.stdout, '');
  }
  const group = qemuGroup();
  assert.ok(group, 'this machine has a group for QEMU (libvirt-qemu)');
  assert.equal(await mode(env.home), 0o711, 'KUMO_HOME: others may walk through, not list');
  for (const d of ['instances', 'images', 'volumes', join('instances', name)]) {
    const st = await stat(join(env.home, d));
    assert.equal(st.mode & 0o7777, 0o710, `${d} is ${octal(st.mode & 0o7777)}`);
    assert.equal(st.gid, group.gid, `${d} belongs to QEMU's group`);
  }
  const files = [env.ctx.paths.db, `${env.ctx.paths.db}-wal`, `${env.ctx.paths.db}-shm`,
    join(dir, 'root.qcow2'), join(dir, 'data1.qcow2'), join(dir, 'seed.iso'), join(env.home, 'volumes', `${volume()}.qcow2`)];
  for (const f of files) assert.equal(await mode(f) & 0o077, 0, `${f} is ${octal(await mode(f))}: group and others must have nothing`);
});

test('VNC is a unix socket only root reaches: no TCP port, and nobody cannot open it', async () => {
  const inst = await waitFor('a VNC display', async () => { const i = await new InstanceService(env.ctx).get(name); return i.vnc ? i : undefined; }, 60_000);
  const target = inst.vnc!.startsWith('/') ? `UNIX-CONNECT:${inst.vnc}` : `TCP:${inst.vnc}`;
  const tried = await asNobody('socat', ['-T', '3', '-', target]);
  assert.doesNotMatch(tried.stdout, /RFB/, `nobody opened the console at ${inst.vnc}`);
  const xml = await env.ctx.virsh.dumpXml(name) ?? '';
  assert.doesNotMatch(xml, /<graphics[^>]*\bport=|<listen type=.address/, 'the domain has no VNC TCP listener');
  assert.ok(inst.vnc!.startsWith(`${env.home}/`), `the socket lives in KUMO_HOME: ${inst.vnc}`);
  const root = await local.run('socat', ['-T', '3', '-', target], { allowFailure: true, timeoutMs: 10_000 });
  assert.match(root.stdout, /^RFB 003\.008/, 'root (kumo) still reaches it');
});

/** Opens a console WebSocket; resolves with the first message. */
function open(path: string): Promise<{ first: Buffer; ws: WebSocket }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base.replace('http', 'ws')}${path}`, ['binary']);
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`no answer on ${path}`)); }, 30_000);
    ws.once('message', (first: Buffer) => { clearTimeout(timer); resolve({ first, ws }); });
    ws.once('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

function closeCode(ws: WebSocket): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the socket stayed open')), 15_000);
    ws.once('close', (code) => { clearTimeout(timer); resolve(code); });
  });
}

test('the console opens through kumo (RFB banner over the WebSocket); a message over 1 MiB closes it with 1009 and the server keeps serving', async () => {
  const t = await ticket('vnc');
  assert.equal(t.status, 201);
  const vnc = await open(t.path!);
  assert.match(vnc.first.toString('latin1'), /^RFB 003\.008\n/);
  const closed = closeCode(vnc.ws);
  vnc.ws.send(Buffer.alloc(2 * 1024 * 1024, 0x41));
  assert.equal(await closed, 1009, 'message too big');
  // The serial console's socket is bounded the same way.
  const s = await waitFor('a serial ticket', async () => { const x = await ticket('serial'); return x.status === 201 ? x : undefined; }, 30_000);
  const serial = new WebSocket(`${base.replace('http', 'ws')}${s.path!}`, ['binary']);
  await new Promise((r, j) => { serial.once('open', r); serial.once('error', j); });
  const serialClosed = closeCode(serial);
  serial.send(Buffer.alloc(2 * 1024 * 1024, 0x41));
  assert.equal(await serialClosed, 1009);
  // Still alive: an API call and a new console work.
  assert.equal((await fetch(`${base}/api/v1/instances/${name}`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
  const again = await open((await ticket('vnc')).path!);
  assert.match(again.first.toString('latin1'), /^RFB 003\.008\n/);
  again.ws.close();
});

test('an install made with open modes is closed on start; what kumo cannot fix is named with its fix', async () => {
  const home = await mkdtemp('/tmp/kumo-test-secmodes-');
  extraHomes.push(home);
  openContext({ home }).close();
  // As an older kumo left it: everything readable by everyone.
  await chmod(home, 0o755);
  const inst = join(home, 'instances', 'old1');
  await mkdir(inst);
  for (const d of ['images', 'instances', 'volumes', 'instances/old1']) await chmod(join(home, d), 0o755);
  await writeFile(join(inst, 'seed.iso'), 'secret', { mode: 0o644 });
  await writeFile(join(home, 'volumes', 'v.qcow2'), 'data', { mode: 0o644 });
  await chmod(join(home, 'kumo.db'), 0o644);
  const before = secureHome(homeLayout(paths(home)), { fix: false });
  for (const p of [home, join(inst, 'seed.iso'), join(home, 'volumes', 'v.qcow2')]) {
    const found = before.find((x) => x.path === p);
    assert.ok(found, `${p} is reported`);
    assert.match(found.fix, /chmod 0[67][01][01] /);
  }
  openContext({ home }).close();
  assert.equal(await mode(home), 0o711);
  assert.equal(await mode(join(home, 'kumo.db')), 0o600);
  assert.equal(await mode(join(inst, 'seed.iso')), 0o600);
  assert.equal(await mode(join(home, 'volumes', 'v.qcow2')), 0o600);
  for (const d of ['images', 'instances', 'volumes', 'instances/old1']) assert.equal(await mode(join(home, d)), 0o710, d);
  assert.deepEqual(secureHome(homeLayout(paths(home)), { fix: false }).filter((p) => p.path.startsWith(home)), []);
});
