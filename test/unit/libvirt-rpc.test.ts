import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KumoError } from '../../src/model/errors.js';
import { LibvirtConnection, type LifecycleSubscriber } from '../../src/drivers/libvirt/rpc/connection.js';
import { domainState, domainXml, listAll, lookupByName } from '../../src/drivers/libvirt/rpc/domains.js';
import { LibvirtRefusal } from '../../src/drivers/libvirt/rpc/errors.js';
import { LibvirtConnections } from '../../src/drivers/libvirt/rpc/registry.js';
import { endpointOf, sshArgv } from '../../src/drivers/libvirt/rpc/transport.js';
import { MessageStatus, Proc, VIR_ERR_NO_DOMAIN, type LifecycleEvent } from '../../src/drivers/libvirt/rpc/protocol.js';
import { XdrReader, XdrWriter } from '../../src/drivers/libvirt/rpc/xdr.js';
import { fakeLibvirtd, lifecycleMessage, pingMessage, reply, type FakeCall } from '../helpers/fake-libvirtd.js';
import { VirshSession } from '../../bench/virsh-session.js';
/**
 * kumo's libvirt protocol driver (src/drivers/libvirt/rpc/; docs/decisions.md, "How kumo talks
 * to libvirt"): the XDR codec, and the long-lived connection against a scripted libvirtd on a
 * unix socket (test/helpers/fake-libvirtd.ts): serials, errors, the 5-call limit, reconnect,
 * keepalive, event re-registration, the ssh transport, URIs, the registry. Also the virsh
 * session the decision was measured against (bench/), on virsh's test driver (no daemon).
 */

test('XDR: strings are padded to 4 bytes, optionals and arrays round-trip, a huge length is refused', () => {
  const w = new XdrWriter().string('abcde').optional<string>(undefined, (x, v) => x.string(v)).optional('x', (x, v) => x.string(v))
    .array([1, -2, 3], (x, v) => x.int(v));
  const bytes = w.bytes();
  assert.equal(bytes.length, 4 + 8 + 4 + 4 + 4 + 4 + 4 * 4);
  const r = new XdrReader(bytes);
  assert.equal(r.string(), 'abcde');
  assert.equal(r.optional((x) => x.string()), undefined);
  assert.equal(r.optional((x) => x.string()), 'x');
  assert.deepEqual(r.array((x) => x.int(), 10), [1, -2, 3]);
  assert.throws(() => new XdrReader(new XdrWriter().uint(0xffffff00).bytes()).string(), /over its limit/);
  assert.throws(() => new XdrReader(new XdrWriter().uint(8).bytes()).string(), /message ends/);
});

const DOM = { name: 'web1', uuid: '92b82821-a133-4be0-9b23-78ffd1273585', id: -1 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, probe: () => boolean, ms = 5_000): Promise<void> {
  for (const end = Date.now() + ms; !probe(); await sleep(10)) if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
}
const noDomain = (h: FakeCall['h']) => reply(h, (w) => w.int(VIR_ERR_NO_DOMAIN).int(10)
  .optional('Domain not found: no domain with matching name', (x, v) => x.string(v)).int(2)
  .uint(0).uint(0).uint(0).uint(0).int(0).int(0).uint(0), MessageStatus.ERROR);

/** Records what a lifecycle subscriber is told. */
function recorder() {
  const seen: string[] = [];
  const sub: LifecycleSubscriber = {
    event: (e: LifecycleEvent) => seen.push(`event ${e.dom.name} ${e.event}/${e.detail}`),
    resync: () => seen.push('resync'),
    lost: (e) => seen.push(`lost ${e.message}`),
  };
  return { seen, sub };
}

test('protocol driver: the handshake turns keepalive on, replies find their call by serial, libvirt\'s errors keep their number', async () => {
  let held: FakeCall['h'] | undefined;
  const daemon = await fakeLibvirtd({
    answer: ({ h, socket }) => {
      if (h.proc === Proc.DOMAIN_GET_XML_DESC) held = h; // answered after the next call: out of order
      else if (h.proc === Proc.DOMAIN_GET_STATE) {
        socket.write(reply(h, (w) => w.int(1).int(1)));
        socket.write(reply(held!, (w) => w.string('<domain/>')));
      } else if (h.proc === Proc.DOMAIN_LOOKUP_BY_NAME) socket.write(noDomain(h));
    },
  });
  const conn = new LibvirtConnection(daemon.uri, { callTimeoutMs: 5_000 });
  try {
    const [xml, state] = await Promise.all([domainXml(conn, DOM), domainState(conn, DOM)]);
    assert.deepEqual([xml, state], ['<domain/>', 'running']);
    assert.deepEqual(daemon.log.slice(0, 4).map((l) => Proc[l.proc]), ['AUTH_LIST', 'AUTH_POLKIT', 'CONNECT_OPEN', 'CONNECT_SUPPORTS_FEATURE']);
    const refusal = await lookupByName(conn, 'nope').then(() => undefined, (e: unknown) => e);
    assert.ok(refusal instanceof LibvirtRefusal && refusal.remote.code === VIR_ERR_NO_DOMAIN, 'the error number reaches the caller');
    assert.match(refusal.message, /libvirt refused: Domain not found/);
    daemon.sockets[0]!.write(pingMessage());
    await until('a PONG', () => daemon.keepalive.pongs === 1);
  } finally {
    await conn.close();
    await daemon.close();
  }
});

test('protocol driver: at most 5 calls are at the daemon at once; the rest wait in order, and a timed-out call keeps its place until answered', async () => {
  const held: FakeCall[] = [];
  const daemon = await fakeLibvirtd({ answer: (c) => { held.push(c); } });
  const conn = new LibvirtConnection(daemon.uri, { callTimeoutMs: 1_500 });
  try {
    await listAll(conn).catch(() => undefined); // opens the connection; its call times out and holds a place
    const calls = Array.from({ length: 7 }, () => listAll(conn).catch((e: unknown) => e));
    await until('5 calls at the daemon', () => held.length === 5);
    await sleep(100);
    assert.equal(held.length, 5, 'the timed-out call still holds one of the 5 places: 4 new ones are sent, 3 wait');
    held[0]!.socket.write(reply(held[0]!.h, (w) => w.uint(0).uint(0))); // the late answer frees a place
    await until('the sixth call', () => held.length === 6);
    for (const c of held.slice(1)) c.socket.write(reply(c.h, (w) => w.uint(0).uint(0)));
    await until('every call', () => held.length === 8);
    for (const c of held.slice(6)) c.socket.write(reply(c.h, (w) => w.uint(0).uint(0)));
    assert.deepEqual((await Promise.all(calls)).map((r) => (Array.isArray(r) ? 'ok' : String(r))), Array(7).fill('ok'));
  } finally {
    await conn.close();
    await daemon.close();
  }
});

test('protocol driver: a daemon that goes away fails calls at once, naming the URI and the fix; the next call after it is back works', async () => {
  const daemon = await fakeLibvirtd({ answer: ({ h, socket }) => { if (h.proc === Proc.CONNECT_LIST_ALL_DOMAINS) socket.write(reply(h, (w) => w.uint(0).uint(0))); } });
  const conn = new LibvirtConnection(daemon.uri, { callTimeoutMs: 30_000 });
  try {
    assert.deepEqual(await listAll(conn), []);
    await daemon.stop();
    const started = Date.now();
    // The call that meets the closing connection fails with that; the next one finds no daemon.
    await assert.rejects(listAll(conn), /does not answer \((it closed the connection|its socket .* does not exist): libvirtd/);
    await sleep(600); // past the short pause after a failed attempt: this call knocks again
    const down = await listAll(conn).then(() => undefined, (e: unknown) => e);
    assert.ok(down instanceof KumoError, String(down));
    assert.equal(down.code, 'LIBVIRT_ERROR');
    assert.equal(down.message, `libvirt at qemu+unix:///system?socket=${daemon.path} does not answer (its socket ${daemon.path} does not exist: libvirtd not running?)`);
    assert.match(down.fix ?? '', /libvirtd -d.*reconnects by itself/);
    await assert.rejects(listAll(conn), /does not answer/, 'and at once again, without knocking, right after a failed attempt');
    assert.ok(Date.now() - started < 2_000, 'failed at once, not after the 30 s call timeout');
    await daemon.start();
    await sleep(600); // past the short pause after a failed attempt
    assert.deepEqual(await listAll(conn), [], 'the next call reconnects by itself');
    assert.equal(new Set(daemon.seen(Proc.CONNECT_OPEN)).size, 2, 'a second connection was opened');
  } finally {
    await conn.close();
    await daemon.close();
  }
});

test('protocol driver: a daemon that stops answering (keepalive unanswered) is dropped within interval × (count + 1); a silent call times out', async () => {
  const daemon = await fakeLibvirtd({ answerPings: false, answer: () => undefined });
  const conn = new LibvirtConnection(daemon.uri, { callTimeoutMs: 400, keepaliveIntervalMs: 200, keepaliveCount: 3 });
  try {
    const timedOut = await listAll(conn).then(() => undefined, (e: unknown) => e);
    assert.ok(timedOut instanceof KumoError && timedOut.code === 'TIMEOUT', String(timedOut));
    assert.match(timedOut.message, /did not answer CONNECT_LIST_ALL_DOMAINS within 0\.4 s/);
    const started = Date.now();
    await until('the connection is dropped', () => !conn.connected, 3_000);
    assert.ok(Date.now() - started < 1_500, 'dropped within about (3 + 1) × 200 ms of silence');
    assert.ok(daemon.keepalive.pings >= 3, 'kumo sent its own PINGs');
    daemon.sockets[0]!.destroy();
  } finally {
    await conn.close();
    await daemon.close();
  }
});

test('protocol driver: a call in flight when the keepalive gives up fails with that reason, not after its own timeout', async () => {
  const daemon = await fakeLibvirtd({ answerPings: false, answer: () => undefined });
  const conn = new LibvirtConnection(daemon.uri, { callTimeoutMs: 20_000, keepaliveIntervalMs: 200, keepaliveCount: 2 });
  try {
    const started = Date.now();
    await assert.rejects(listAll(conn), /does not answer \(it did not answer 2 keepalive pings in 0\.6 s: stopped or stuck\?\)/);
    assert.ok(Date.now() - started < 3_000);
  } finally {
    await conn.close();
    await daemon.close();
  }
});

test('protocol driver: lifecycle events are registered again after a reconnect, subscribers hear lost then resync, events flow again', async () => {
  const daemon = await fakeLibvirtd();
  const conn = new LibvirtConnection(daemon.uri, { callTimeoutMs: 5_000, backoffMs: [50, 200] });
  const { seen, sub } = recorder();
  try {
    const unsubscribe = await conn.subscribeLifecycle(sub);
    daemon.sockets[0]!.write(lifecycleMessage(daemon.lastCallbackId(), DOM, 2, 0));
    await until('the first event', () => seen.length === 1);
    await daemon.stop();
    await until('lost', () => seen.length === 2);
    // A call while it is down knocks once itself (and fails): the background retries go on.
    await assert.rejects(listAll(conn), /does not answer/);
    await sleep(300); // a few failed attempts while it is down
    await daemon.start();
    await until('resync', () => seen.includes('resync'), 5_000);
    const conns = daemon.seen(Proc.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY);
    assert.equal(conns.length, 2, 'registered once per connection');
    daemon.sockets[conns[1]!]!.write(lifecycleMessage(daemon.lastCallbackId(), DOM, 5, 1));
    await until('the event after the reconnect', () => seen.length === 4);
    assert.equal(seen[0], 'event web1 2/0');
    assert.match(seen[1]!, /^lost libvirt at .* does not answer \(it closed the connection: libvirtd stopped or restarted\?\)$/);
    assert.deepEqual(seen.slice(2), ['resync', 'event web1 5/1']);
    await unsubscribe();
    await until('the deregistration', () => daemon.seen(Proc.CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY).length === 1);
  } finally {
    await conn.close();
    await daemon.close();
  }
});

test('protocol driver: over ssh, kumo runs ssh without a terminal and virt-ssh-helper (else nc) on the far side; the bytes are the same', async () => {
  const daemon = await fakeLibvirtd({ answer: ({ h, socket }) => { if (h.proc === Proc.CONNECT_LIST_ALL_DOMAINS) socket.write(reply(h, (w) => w.uint(0).uint(0))); } });
  const dir = await mkdtemp(join(tmpdir(), 'kumo-fake-ssh-'));
  const fakeSsh = join(dir, 'ssh');
  // A stand-in for ssh: records its arguments and joins its stdin/stdout to the scripted daemon.
  await writeFile(fakeSsh, `#!${process.execPath}\nrequire('fs').writeFileSync(${JSON.stringify(join(dir, 'argv'))}, JSON.stringify(process.argv.slice(2)));\n` +
    `const s = require('net').connect(${JSON.stringify(daemon.path)}); process.stdin.pipe(s); s.pipe(process.stdout); s.on('close', () => process.exit(0));\n`);
  await chmod(fakeSsh, 0o755);
  const conn = new LibvirtConnection('qemu+ssh://root@kvm2:2222/system?keyfile=/root/.ssh/kumo', { callTimeoutMs: 5_000, sshProgram: fakeSsh });
  try {
    assert.deepEqual(await listAll(conn), []);
    const argv = JSON.parse(await readFile(join(dir, 'argv'), 'utf8')) as string[];
    assert.deepEqual(argv, sshArgv(conn.endpoint as Extract<typeof conn.endpoint, { kind: 'ssh' }>));
    assert.equal(argv[0], '-T');
    assert.ok(argv.includes('BatchMode=yes') && argv.includes('/root/.ssh/kumo') && argv.includes('2222') && argv.includes('root@kvm2'));
    assert.match(argv.at(-1)!, /^sh -c '.*virt-ssh-helper qemu:\/\/\/system; else exec nc -U \/run\/libvirt\/libvirt-sock; fi'$/);
    await daemon.stop(); // ssh's far end goes away
    await assert.rejects(listAll(conn), /libvirt at qemu\+ssh:\/\/root@kvm2:2222\/system\?keyfile=\/root\/.ssh\/kumo does not answer \(ssh to root@kvm2 ended/);
  } finally {
    await conn.close();
    await daemon.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('protocol driver: URIs: the system socket, a lab socket, ssh with its options; TLS, sessions and other transports are refused with the way out', async () => {
  assert.deepEqual(endpointOf('qemu:///system'), { kind: 'unix', uri: 'qemu:///system', socket: '/run/libvirt/libvirt-sock', openUri: 'qemu:///system' });
  assert.equal((endpointOf('qemu+unix:///system?socket=/x/run/libvirt-sock') as { socket: string }).socket, '/x/run/libvirt-sock');
  const ssh = endpointOf('qemu+ssh://root@[fd00::2]/system?no_verify=1');
  assert.deepEqual(ssh, { kind: 'ssh', uri: 'qemu+ssh://root@[fd00::2]/system?no_verify=1', destination: 'root@fd00::2', noVerify: true, openUri: 'qemu:///system' });
  assert.deepEqual(sshArgv(ssh as Extract<typeof ssh, { kind: 'ssh' }>).slice(0, 5), ['-T', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null']);
  assert.throws(() => endpointOf('qemu+tls://kvm2/system'), (e: KumoError) => e.code === 'INVALID_INPUT' && /TLS/.test(e.message) && /virsh/.test(e.fix ?? ''));
  assert.throws(() => endpointOf('qemu:///session'), /session daemon/);
  assert.throws(() => endpointOf('qemu+ext:///system?command=/bin/sh'), /transport, which kumo does not allow/);
  assert.throws(() => endpointOf('qemu+ssh://kvm2/system?netcat=/bin/sh'), /parameter "netcat"/);
});

test('protocol driver: the registry keeps one connection per URI, opens nothing until a call, and closes them all', async () => {
  const daemon = await fakeLibvirtd({ answer: ({ h, socket }) => { if (h.proc === Proc.CONNECT_LIST_ALL_DOMAINS) socket.write(reply(h, (w) => w.uint(0).uint(0))); } });
  const registry = new LibvirtConnections({ callTimeoutMs: 5_000 });
  try {
    const a = registry.get(daemon.uri);
    assert.equal(registry.get(daemon.uri), a);
    assert.equal(daemon.sockets.length, 0, 'nothing opened yet');
    await Promise.all([listAll(a), listAll(a)]);
    assert.equal(daemon.sockets.length, 1, 'two calls at once share one connection');
    await registry.close();
    assert.deepEqual(daemon.seen(Proc.CONNECT_CLOSE), [0], 'closing says goodbye');
    await assert.rejects(listAll(a), /is closed/);
  } finally {
    await registry.close();
    await daemon.close();
  }
});
test('virsh session: each answer ends at its own marker, an error answers that command only, quotes are refused', async () => {
  const session = new VirshSession('test:///default'); // virsh's built-in test driver: no daemon
  try {
    assert.match(await session.run(['list', '--all']), /^\s*1\s+test\s+running\s*$/m);
    await assert.rejects(session.run(['domstate', 'nope']), /libvirt refused: failed to get domain 'nope'/);
    assert.equal((await session.run(['domstate', 'test'])).trim(), 'running');
    const [a, b] = await Promise.all([session.run(['domstate', 'test']), session.run(['dumpxml', 'test'])]);
    assert.equal(a.trim(), 'running');
    assert.match(b, /^<domain type='test'[^>]*>[\s\S]*<\/domain>\s*$/);
    assert.throws(() => session.run(["it's"]), /may not contain quotes/);
  } finally {
    session.close();
  }
});
