import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { makeTestEnv, sleep, waitFor, type TestEnv } from '../helpers/env.js';
import type { ApiServer } from '../../src/api/server.js';
import { apiToken, listenApi } from '../helpers/api.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { local } from '../../src/exec/exec.js';

/**
 * The serial console over a WebSocket: a ticket for {"console": "serial"} opens one WebSocket to
 * `virsh console` of a real tiny guest in a pty; "\r" brings up its login prompt; closing the
 * WebSocket ends virsh, and virsh ending (Ctrl+]) closes the WebSocket. Wrong, reused and
 * cross-console tickets get no WebSocket.
 */
let env: TestEnv;
let app: ApiServer | undefined;
let base: string;
let token: string;
let name: string;
const sockets: WebSocket[] = [];

before(async () => {
  env = await makeTestEnv('ser');
  token = apiToken(env.ctx);
  await new ImageService(env.ctx).buildTiny();
  name = `${env.prefix}-s`;
  await new InstanceService(env.ctx).create({ name, image: 'tiny', flavor: 'small', password: 'pw', networks: [env.network] });
  ({ app, base } = await listenApi(env.ctx, { monitor: false }));
});

after(async () => {
  for (const ws of sockets) ws.terminate();
  await app?.close();
  // No virsh console of this run may outlive it, pass or fail.
  for (const pid of await consolePids()) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  if (env) {
    await new InstanceService(env.ctx).delete(name).catch(() => undefined);
    await env.cleanup();
  }
});

/** The `virsh ... console UUID` processes of this test's instance (kumo addresses its domain by UUID). */
async function consolePids(): Promise<number[]> {
  const uuid = name ? env.ctx.instances.get(name)?.uuid : undefined;
  if (!uuid) return [];
  const ps = (await local.run('ps', ['-eo', 'pid=,args='])).stdout.split('\n');
  return ps.filter((l) => /\bvirsh\b/.test(l) && l.includes(` console ${uuid}`)).map((l) => Number(l.trim().split(/\s+/)[0])).filter((p) => p > 1);
}

async function ticket(instance: string, console?: 'vnc' | 'serial'): Promise<{ status: number; ticket?: string; path?: string; console?: string }> {
  const r = await fetch(`${base}/api/v1/instances/${instance}/console-ticket`, {
    method: 'POST', headers: { authorization: `Bearer ${token}`, ...(console ? { 'content-type': 'application/json' } : {}) },
    ...(console ? { body: JSON.stringify({ console }) } : {}),
  });
  const body = await r.json() as { ticket?: string; path?: string; console?: string };
  return { status: r.status, ...body };
}

interface Session { ws: WebSocket; output: () => string; closed: Promise<number> }

/** Opens a WebSocket; resolves when it is open, or with the HTTP status of a refused upgrade. */
function open(path: string): Promise<{ session?: Session; refused?: number }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base.replace('http', 'ws')}${path}`);
    sockets.push(ws);
    let out = '';
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.on('message', (d: Buffer) => { out += d.toString('utf8'); });
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`no answer on ${path}`)); }, 30_000);
    ws.once('open', () => { clearTimeout(timer); resolve({ session: { ws, output: () => out, closed } }); });
    ws.once('unexpected-response', (_req, res) => { clearTimeout(timer); resolve({ refused: res.statusCode ?? 0 }); ws.terminate(); });
    ws.once('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

/** Presses Enter every 2 s until the guest's login prompt (or a shell prompt) shows. */
async function prompt(s: Session, from = 0): Promise<void> {
  await waitFor('the guest login prompt on the serial console', async () => {
    if (/login:|[#$] $/m.test(s.output().slice(from))) return true;
    s.ws.send(Buffer.from('\r'), { binary: true });
    await sleep(1500);
    return /login:|[#$] ?$/m.test(s.output().slice(from)) ? true : undefined;
  }, 180_000);
}

test('a serial ticket opens virsh console: Enter brings the login prompt; closing the WebSocket ends virsh', async () => {
  assert.equal((await ticket('nope', 'serial')).status, 404);
  const t = await waitFor('the instance running', async () => { const x = await ticket(name, 'serial'); return x.status === 201 ? x : undefined; }, 60_000);
  assert.equal(t.console, 'serial');
  assert.match(t.path!, new RegExp(`^/api/v1/instances/${name}/serial\\?ticket=`));
  const { session } = await open(t.path!);
  assert.ok(session);
  await prompt(session);
  assert.equal((await consolePids()).length, 1, 'one virsh console while connected');
  // The guest answers what is typed: a user name brings the password question.
  const mark = session.output().length;
  session.ws.send(Buffer.from('root\r'), { binary: true });
  await waitFor('the password question', async () => (/assword/i.test(session.output().slice(mark)) ? true : undefined), 30_000);
  session.ws.close();
  await session.closed;
  await waitFor('virsh console to end after the WebSocket closed', async () => ((await consolePids()).length === 0 ? true : undefined), 15_000);

  assert.equal((await open(t.path!)).refused, 401, 'a used ticket');
  assert.equal((await open(`/api/v1/instances/${name}/serial`)).refused, 401, 'no ticket');
  assert.equal((await open(`/api/v1/instances/${name}/serial?ticket=made-up`)).refused, 401, 'a made-up ticket');
  const vnc = await ticket(name, 'vnc');
  assert.equal(vnc.status, 201);
  assert.equal((await open(`/api/v1/instances/${name}/serial?ticket=${vnc.ticket}`)).refused, 401, 'a VNC ticket does not open the serial console');
  const serial = await ticket(name, 'serial');
  assert.equal((await open(`/api/v1/instances/${name}/vnc?ticket=${serial.ticket}`)).refused, 401, 'a serial ticket does not open VNC');
  const other = await ticket(name, 'serial');
  assert.equal((await open(`/api/v1/instances/${env.prefix}-zz/serial?ticket=${other.ticket}`)).refused, 401, 'a ticket for another instance');
  assert.equal((await consolePids()).length, 0, 'refused tickets start no virsh');
});

test('virsh console ending (Ctrl+]) closes the WebSocket, leaving no process', async () => {
  const t = await ticket(name, 'serial');
  assert.equal(t.status, 201);
  const { session } = await open(t.path!);
  assert.ok(session);
  await prompt(session);
  session.ws.send(Buffer.from('\x1d'), { binary: true }); // virsh console's escape: it leaves
  const code = await Promise.race([session.closed, sleep(15_000).then(() => -1)]);
  assert.notEqual(code, -1, 'the WebSocket closed when virsh left');
  await waitFor('no virsh console left', async () => ((await consolePids()).length === 0 ? true : undefined), 15_000);
});
