import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { WebSocket } from 'ws';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import type { ApiServer } from '../../src/api/server.js';
import { apiToken, listenApi } from '../helpers/api.js';
import { ConsoleTickets, TICKET_TTL_MS } from '../../src/api/tickets.js';
import type { VncTarget } from '../../src/service/consoles.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { local } from '../../src/exec/exec.js';

/**
 * The VNC console proxy: a ticket from an authenticated POST opens one WebSocket to the
 * instance's VNC server on 127.0.0.1 (the RFB banner comes through); a used, missing, foreign
 * or made-up ticket gets no WebSocket. A VNC server inside a network namespace (as a lab
 * hypervisor's is) is reached through nsenter + socat.
 */
let env: TestEnv;
let app: ApiServer | undefined;
let base: string;
let token: string;
let name: string;
let netns: string | undefined;
const children: ChildProcess[] = [];
/** The stand-in VNC address for instances named `${prefix}-ns` (the namespace case). */
let nsTarget: VncTarget | undefined;

before(async () => {
  env = await makeTestEnv('vnc');
  token = apiToken(env.ctx);
  await new ImageService(env.ctx).buildTiny();
  name = `${env.prefix}-c`;
  await new InstanceService(env.ctx).create({ name, image: 'tiny', flavor: 'small', password: 'pw', networks: [env.network] });
  const real = new InstanceService(env.ctx);
  ({ app, base } = await listenApi(env.ctx, {
    monitor: false,
    vncResolver: async (n) => {
      if (n === `${env.prefix}-ns`) return nsTarget!;
      const i = await real.get(n);
      assert.ok(i.vnc, `${n} has a VNC display`);
      return { vnc: i.vnc };
    },
  }));
});

after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await app?.close();
  if (netns) await local.run('ip', ['netns', 'del', netns], { allowFailure: true });
  if (env) {
    await new InstanceService(env.ctx).delete(name).catch(() => undefined);
    await env.cleanup();
  }
});

async function ticket(instance: string): Promise<{ status: number; ticket?: string; path?: string }> {
  const r = await fetch(`${base}/api/v1/instances/${instance}/console-ticket`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  const body = await r.json() as { ticket?: string; path?: string };
  return { status: r.status, ...body };
}

/** Opens the console WebSocket; resolves with the first bytes, or the HTTP status of a refused upgrade. */
function open(path: string): Promise<{ banner?: string; refused?: number; ws?: WebSocket }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base.replace('http', 'ws')}${path}`, ['binary']);
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`no answer on ${path}`)); }, 30_000);
    ws.once('message', (data: Buffer) => { clearTimeout(timer); resolve({ banner: data.toString('latin1'), ws }); });
    ws.once('unexpected-response', (_req, res) => { clearTimeout(timer); resolve({ refused: res.statusCode ?? 0 }); ws.terminate(); });
    ws.once('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

test('a ticket opens the console once: the RFB banner comes through; used, missing and foreign tickets are refused', async () => {
  assert.equal((await fetch(`${base}/api/v1/instances/${name}/console-ticket`, { method: 'POST' })).status, 401, 'tickets need the token');
  assert.equal((await ticket('nope')).status, 404);
  const t = await waitFor('a VNC display', async () => { const x = await ticket(name); return x.status === 201 ? x : undefined; }, 60_000);
  assert.match(t.path!, new RegExp(`^/api/v1/instances/${name}/vnc\\?ticket=`));
  const first = await open(t.path!);
  assert.match(first.banner ?? '', /^RFB 003\.008\n/);
  // Speak a little RFB through the proxy: our version, then the server's security types.
  const sec = new Promise<Buffer>((r) => first.ws!.once('message', (d: Buffer) => r(d)));
  first.ws!.send(Buffer.from('RFB 003.008\n'));
  const types = await sec;
  assert.ok(types[0]! >= 1, `security types: ${types.toString('hex')}`);
  first.ws!.close();

  assert.equal((await open(t.path!)).refused, 401, 'a used ticket');
  assert.equal((await open(`/api/v1/instances/${name}/vnc`)).refused, 401, 'no ticket');
  assert.equal((await open(`/api/v1/instances/${name}/vnc?ticket=made-up`)).refused, 401, 'a made-up ticket');
  const other = await ticket(name);
  assert.equal((await open(`/api/v1/instances/${env.prefix}-zz/vnc?ticket=${other.ticket}`)).refused, 401, 'a ticket for another instance');
  assert.equal((await open(other.path!)).refused, 401, 'a ticket tried on the wrong instance is used up');
});

test('a VNC server inside a network namespace is reached through nsenter + socat', async () => {
  netns = `${env.prefix}ns`;
  await local.run('ip', ['netns', 'add', netns]);
  await local.run('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
  // A stand-in VNC server on the namespace's own loopback: only a process in that namespace can reach it.
  const port = 5990 + Math.floor(Math.random() * 9);
  const server = spawn('nsenter', [`--net=/run/netns/${netns}`, '--', 'socat', `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, 'SYSTEM:echo RFB 003.008; cat'], { stdio: 'ignore' });
  children.push(server);
  await waitFor('the stand-in to listen', async () => {
    const r = await local.run('nsenter', [`--net=/run/netns/${netns}`, '--', 'ss', '-ltnH', `sport = :${port}`], { allowFailure: true });
    return r.stdout.trim() ? true : undefined;
  }, 10_000);
  nsTarget = { vnc: `127.0.0.1:${port}`, vncNetns: netns };
  const t = await ticket(`${env.prefix}-ns`);
  assert.equal(t.status, 201);
  const got = await open(t.path!);
  assert.equal(got.banner, 'RFB 003.008\n');
  const echo = new Promise<string>((r) => got.ws!.once('message', (d: Buffer) => r(d.toString())));
  got.ws!.send(Buffer.from('hello'));
  assert.equal(await echo, 'hello');
  got.ws!.close();
});

test('tickets expire and open only the console they were issued for', () => {
  const t = new ConsoleTickets();
  const now = 1_000_000;
  const a = t.issue('x', 'vnc', now);
  assert.equal(a.expiresAt, now + TICKET_TTL_MS);
  assert.equal(t.redeem(a.ticket, 'x', 'vnc', now + TICKET_TTL_MS), false, 'expired');
  const b = t.issue('x', 'vnc', now);
  assert.equal(t.redeem(b.ticket, 'x', 'vnc', now + 1), true);
  assert.equal(t.redeem(b.ticket, 'x', 'vnc', now + 2), false, 'single use');
  assert.notEqual(t.issue('x', 'vnc', now).ticket, t.issue('x', 'vnc', now).ticket);
  const s = t.issue('x', 'serial', now);
  assert.equal(t.redeem(s.ticket, 'x', 'vnc', now + 1), false, 'a serial ticket does not open VNC');
  assert.equal(t.redeem(s.ticket, 'x', 'serial', now + 1), false, 'and is used up by trying');
  const s2 = t.issue('x', 'serial', now);
  assert.equal(t.redeem(s2.ticket, 'x', 'serial', now + 1), true);
});
