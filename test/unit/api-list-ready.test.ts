import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Executor } from '../../src/exec/exec.js';
import { KumoError } from '../../src/model/errors.js';
import { buildServer, type ApiServer } from '../../src/api/server.js';
import { Instance } from '../../src/api/schemas.js';
import { openContext, type Context } from '../../src/service/context.js';
import { DomainWatch, type WatchedHost } from '../../src/service/domain-watch.js';
import { LEASES_FRESH_MS } from '../../src/service/instance-list.js';
import { ProjectService } from '../../src/service/projects.js';
import { TokenService } from '../../src/service/tokens.js';
import type { LifecycleSubscriber } from '../../src/drivers/libvirt/rpc/connection.js';
import { MessageStatus, Proc, VIR_ERR_NO_NETWORK } from '../../src/drivers/libvirt/rpc/protocol.js';
import type { DomainListing } from '../../src/drivers/libvirt/virsh.js';
import type { XdrWriter } from '../../src/drivers/libvirt/rpc/xdr.js';
import type { InstanceRecord } from '../../src/store/instances.js';
import { fakeLibvirtd, reply, type FakeCall } from '../helpers/fake-libvirtd.js';

/**
 * GET /api/v1/instances answers from a list kept ready (service/instance-list.ts), built again
 * only when something it shows may have changed: a write to the store by this process or by
 * another one, a lifecycle event, leases that changed. It is kept per project, never handed to
 * another project's caller, and no list request spawns a process: states come from the watch,
 * DHCP leases over the protocol connection (NETWORK_GET_DHCP_LEASES).
 */

const A = 'aaaaaaaa-0000-4000-8000-00000000000a';
const B = 'bbbbbbbb-0000-4000-8000-00000000000b';
const MAC_A = '52:54:00:00:00:0a';
const EVENT = { Started: 2, Stopped: 5 };
const tick = () => new Promise((r) => setImmediate(r));

/** A watched host the test scripts: its listing, and the subscriber its events go to. */
interface ScriptedHost { domains: DomainListing[]; subscriber: LifecycleSubscriber | undefined; source: WatchedHost; event(uuid: string, name: string, event: number): void }

function scriptedHost(domains: DomainListing[]): ScriptedHost {
  const h: ScriptedHost = {
    domains, subscriber: undefined,
    source: {
      subscribe: async (s: LifecycleSubscriber) => { h.subscriber = s; return async () => { h.subscriber = undefined; }; },
      list: async () => h.domains.map((d) => ({ ...d })),
    },
    event(uuid: string, name: string, event: number) {
      h.subscriber!.event({ callbackID: 1, dom: { name, uuid, id: 1 }, event, detail: 0 });
    },
  };
  return h;
}

/** A shell that records what it was asked to run and refuses it: a list must not spawn anything. */
function spyShell(spawned: string[][]): Executor {
  return {
    description: 'spy',
    onThisMachine: true,
    async run(command, args) {
      spawned.push([command, ...args]);
      throw new KumoError('COMMAND_FAILED', `${command} was spawned during an instance list`);
    },
    async open() { throw new Error('not used'); },
  };
}

const noNetwork = (h: FakeCall['h']) => reply(h, (w) => w.int(VIR_ERR_NO_NETWORK).int(19)
  .optional('Network not found', (x, v) => x.string(v)).int(2)
  .uint(0).uint(0).uint(0).uint(0).int(0).int(0).uint(0), MessageStatus.ERROR);

/** remote_network_dhcp_lease, as libvirtd sends one. */
function writeLease(w: XdrWriter, mac: string, ip: string): void {
  const str = (x: XdrWriter, v: string) => x.string(v);
  w.string('virbr9').uint(0).uint(0).int(0).optional(mac, str).optional<string>(undefined, str) // iface, expirytime (hyper), type, mac, iaid
    .string(ip).uint(24).optional('guest', str).optional<string>(undefined, str); // ipaddr, prefix, hostname, clientid
}

const record = (name: string, uuid: string, project: string, mac?: string): InstanceRecord => ({
  name, uuid, host: 'local', image: 'tiny', vcpus: 1, ramMiB: 64, diskGiB: 1, networks: mac ? ['kumo-lan'] : [],
  nics: mac ? [{ mac, network: 'kumo-lan' }] : [], dataDisks: [], sshKeys: [], createdAt: new Date().toISOString(), project,
  passwordHash: '$6$salt$secret-hash-never-sent',
});

let home: string;
let ctx: Context;
let app: ApiServer;
let daemon: Awaited<ReturnType<typeof fakeLibvirtd>>;
let watch: DomainWatch;
const spawned: string[][] = [];
const host = scriptedHost([{ name: 'a1', uuid: A, state: 'running' }, { name: 'b1', uuid: B, state: 'running' }]);
/** What the daemon's DHCP knows, and how often it was asked. */
const dhcp = { leases: [] as [string, string][], asked: 0 };
const tokens: Record<string, string> = {};

before(async () => {
  home = await mkdtemp(join(tmpdir(), 'kumo-unit-list-ready-'));
  process.env.KUMO_LIBVIRT_TIMEOUT ??= '10';
  daemon = await fakeLibvirtd({
    answer: ({ h, body, socket }) => {
      if (h.proc === Proc.NETWORK_LOOKUP_BY_NAME) {
        const name = body.string();
        socket.write(name === 'kumo-lan' ? reply(h, (w) => w.string(name).fixedOpaque(Buffer.alloc(16, 7))) : noNetwork(h));
      } else if (h.proc === Proc.NETWORK_GET_DHCP_LEASES) {
        dhcp.asked++;
        socket.write(reply(h, (w) => { w.array(dhcp.leases, (x, [mac, ip]) => writeLease(x, mac, ip)); w.uint(dhcp.leases.length); }));
      } else if (h.proc === Proc.CONNECT_GET_ALL_DOMAIN_STATS) {
        socket.write(reply(h, (w) => w.uint(0))); // asked only before the watch has listed: no domains
      }
    },
  });
  // This machine's libvirt is the scripted daemon, and every command the context would run is refused and recorded.
  ctx = openContext({ home, libvirtUri: daemon.uri, exec: spyShell(spawned), libvirtProtocol: true });
  ctx.images.upsert({ name: 'tiny', os: 'stand-in', disk: join(home, 'tiny.qcow2'), format: 'qcow2', virtualSizeBytes: 1 << 30, source: 'test', createdAt: new Date().toISOString() });
  for (const p of ['pa', 'pb']) {
    new ProjectService(ctx).create(p);
    tokens[p] = new TokenService(ctx).create(`reader-${p}`, { project: p, role: 'reader' }).token;
  }
  tokens.admin = new TokenService(ctx).create('admin').token;
  ctx.instances.insert(record('a1', A, 'pa', MAC_A));
  ctx.instances.insert(record('b1', B, 'pb'));
  watch = new DomainWatch({ hostSource: (name) => (name === 'local' ? host.source : undefined) });
  app = await buildServer(ctx, { monitor: false, watchDomains: false, webRoot: join(home, 'no-web') });
  ctx.observed = watch; // the server's own watch, scripted
  await app.ready();
  watch.of('local');
  for (let i = 0; i < 200 && !watch.of('local'); i++) await tick();
  assert.ok(watch.of('local'), 'the watch listed the host');
});

after(async () => {
  await app?.close();
  await watch?.stop();
  ctx?.close();
  await daemon?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

async function list(token: string, query = ''): Promise<{ name: string; state: string; stateSource: string; nics: { ipv4?: string }[]; passwordSet: boolean }[]> {
  const r = await app.inject({ method: 'GET', url: `/api/v1/instances${query}`, headers: { authorization: `Bearer ${token}` } });
  assert.equal(r.statusCode, 200, r.body);
  assert.match(String(r.headers['content-type']), /^application\/json; charset=utf-8/);
  assert.ok(!r.body.includes('secret-hash-never-sent'), 'the password hash never leaves the server');
  const body = JSON.parse(r.body) as unknown[];
  for (const item of body) Instance.parse(item); // still the response schema's shape
  return body as Awaited<ReturnType<typeof list>>;
}

/** Lists until the watch has listed the host (its first read starts following it). */
async function primed(token: string) {
  for (let i = 0; i < 200; i++) {
    const l = await list(token);
    if (l.every((x) => x.stateSource !== 'asked')) return l;
    await tick();
  }
  throw new Error('the watch never listed the host');
}

test('a domain event changes the next list: the kept answer is built again, with the event as its source', async () => {
  const [before] = await primed(tokens.pa!);
  assert.deepEqual([before!.name, before!.state], ['a1', 'running']);
  assert.deepEqual((await list(tokens.pa!))[0]!.state, 'running', 'answered again from the kept list');
  host.event(A, 'a1', EVENT.Stopped);
  const [after] = await list(tokens.pa!);
  assert.deepEqual([after!.state, after!.stateSource], ['shut off', 'events']);
  host.event(A, 'a1', EVENT.Started);
  assert.deepEqual((await list(tokens.pa!))[0]!.state, 'running');
});

test('the kept list is per project: a caller of project pa never gets pb\'s answer, even right after it was made', async () => {
  await primed(tokens.pb!);
  const pb = await list(tokens.pb!);
  assert.deepEqual(pb.map((x) => x.name), ['b1']);
  const pa = await list(tokens.pa!);
  assert.deepEqual(pa.map((x) => x.name), ['a1'], 'pa sees its own instance only');
  // An admin's ?project= picks the project; a reader naming another project is refused as before.
  assert.deepEqual((await list(tokens.admin!, '?project=pb')).map((x) => x.name), ['b1']);
  assert.deepEqual((await list(tokens.admin!)).map((x) => x.name), [], 'the admin\'s own project (default) has none');
  const refused = await app.inject({ method: 'GET', url: '/api/v1/instances?project=pb', headers: { authorization: `Bearer ${tokens.pa!}` } });
  assert.equal(refused.statusCode, 404);
});

test('a write by another process (the CLI on the same store) shows in the next list', async () => {
  await primed(tokens.pa!);
  assert.deepEqual((await list(tokens.pa!)).map((x) => x.name), ['a1']);
  // Another process opens the same SQLite file and adds an instance record, as `kumo instance create` would.
  const repo = fileURLToPath(new URL('../../src/store/instances.js', import.meta.url));
  const db = fileURLToPath(new URL('../../src/store/db.js', import.meta.url));
  const script = `const { openDb } = await import(${JSON.stringify(db)}); const { InstanceRepo } = await import(${JSON.stringify(repo)});
    new InstanceRepo(openDb(process.argv[1])).insert(JSON.parse(process.argv[2]));`;
  await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script, ctx.paths.db,
    JSON.stringify(record('a2', 'aaaaaaaa-0000-4000-8000-0000000000a2', 'pa'))]);
  const after = await list(tokens.pa!);
  assert.deepEqual(after.map((x) => x.name), ['a1', 'a2']);
  assert.equal(after[1]!.state, 'missing', 'libvirt has no such domain: said so, from the listing');
  // And one made in this process (this connection's own write) too.
  ctx.instances.delete('a2');
  assert.deepEqual((await list(tokens.pa!)).map((x) => x.name), ['a1']);
});

test('a list spawns no process: DHCP leases come over the protocol connection, kept for a short while, then read again', async () => {
  await primed(tokens.pa!);
  dhcp.leases = [[MAC_A.toUpperCase(), '10.9.0.10']];
  await new Promise((r) => setTimeout(r, LEASES_FRESH_MS + 100)); // the kept leases grow old
  const [a1] = await list(tokens.pa!);
  assert.equal(a1!.nics[0]!.ipv4, '10.9.0.10', 'the lease is read over the protocol');
  const asked = dhcp.asked;
  for (let i = 0; i < 5; i++) await list(tokens.pa!);
  assert.equal(dhcp.asked, asked, 'young leases are not asked again on every request');
  dhcp.leases = [[MAC_A, '10.9.0.11']];
  await new Promise((r) => setTimeout(r, LEASES_FRESH_MS + 100));
  assert.equal((await list(tokens.pa!))[0]!.nics[0]!.ipv4, '10.9.0.11', 'a changed lease shows once the kept one is old');
  assert.deepEqual(spawned, [], 'no process was spawned by any list');
});

test('KUMO_LIBVIRT_PROTOCOL=0: leases are still read, by virsh net-dhcp-leases', async () => {
  const h2 = await mkdtemp(join(tmpdir(), 'kumo-unit-list-virsh-'));
  const ran: string[][] = [];
  const virshShell: Executor = {
    description: 'virsh stand-in', onThisMachine: true,
    async run(command, args) {
      ran.push([command, ...args]);
      if (args.includes('net-dhcp-leases')) {
        return { code: 0, stderr: '', stdout: ` 2026-12-07 10:00:00   ${MAC_A}   ipv4   10.9.0.12/24   guest   -\n` };
      }
      return { code: 0, stderr: '', stdout: '' };
    },
    async open() { throw new Error('not used'); },
  };
  const c2 = openContext({ home: h2, libvirtUri: 'test:///default', exec: virshShell, libvirtProtocol: false });
  try {
    c2.images.upsert({ name: 'tiny', os: 'stand-in', disk: join(h2, 'tiny.qcow2'), format: 'qcow2', virtualSizeBytes: 1 << 30, source: 'test', createdAt: new Date().toISOString() });
    c2.instances.insert(record('a1', A, 'default', MAC_A));
    const { InstanceService } = await import('../../src/service/instances.js');
    const [a1] = await new InstanceService(c2).list();
    assert.equal(a1!.nics[0]!.ipv4, '10.9.0.12');
    assert.ok(ran.some((r) => r.includes('net-dhcp-leases') && r.includes('kumo-lan')), JSON.stringify(ran));
  } finally {
    c2.close();
    await rm(h2, { recursive: true, force: true });
  }
});
