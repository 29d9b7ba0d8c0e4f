import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LibvirtRpc } from '../../bench/libvirt-rpc/client.js';
import {
  decodeHeader, encodeDomain, encodeHeader, KEEPALIVE_PROC_PING, KEEPALIVE_PROC_PONG, KEEPALIVE_PROGRAM, MessageStatus, MessageType, Proc,
  REMOTE_PROGRAM, type Header,
} from '../../bench/libvirt-rpc/protocol.js';
import { XdrReader, XdrWriter } from '../../bench/libvirt-rpc/xdr.js';
import { VirshSession } from '../../bench/virsh-session.js';

/**
 * The prototypes the control-plane decision was measured with (docs/decisions.md, "How kumo
 * talks to libvirt"): the XDR codec, the remote-protocol client against a scripted libvirtd on
 * a unix socket (framing, serials, errors, keepalive, events), and the virsh session against
 * virsh's test driver (no daemon needed).
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

function frame(h: Header, body?: (w: XdrWriter) => void): Buffer {
  const w = new XdrWriter().uint(0);
  encodeHeader(w, h);
  body?.(w);
  const b = Buffer.from(w.bytes());
  b.writeUInt32BE(b.length, 0);
  return b;
}

/** A scripted libvirtd: answers what `answer` returns for each call; records keepalive pongs. */
async function fakeDaemon(answer: (h: Header, s: Socket) => void) {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-rpc-test-'));
  const path = join(dir, 'sock');
  const sockets: Socket[] = [];
  const pongs: number[] = [];
  const server = createServer((s) => {
    sockets.push(s);
    let inbox = Buffer.alloc(0);
    s.on('data', (chunk) => {
      inbox = Buffer.concat([inbox, chunk]);
      while (inbox.length >= 4 && inbox.length >= inbox.readUInt32BE(0)) {
        const h = decodeHeader(new XdrReader(inbox.subarray(0, inbox.readUInt32BE(0)), 4));
        inbox = inbox.subarray(inbox.readUInt32BE(0));
        if (h.prog === KEEPALIVE_PROGRAM) pongs.push(h.proc);
        else if (h.proc === Proc.CONNECT_CLOSE) s.write(frame({ ...h, type: MessageType.REPLY }));
        else answer(h, s);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    path, sockets, pongs,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const reply = (h: Header, body?: (w: XdrWriter) => void, status = MessageStatus.OK) =>
  frame({ ...h, type: MessageType.REPLY, status }, body);

test('remote protocol: replies find their call by serial, errors name libvirt\'s message, keepalive is answered, events arrive', async () => {
  let held: Header | undefined;
  const daemon = await fakeDaemon((h, s) => {
    if (h.proc === Proc.AUTH_LIST) s.write(reply(h, (w) => w.array([0], (x, v) => x.int(v))));
    else if (h.proc === Proc.CONNECT_OPEN) s.write(reply(h));
    else if (h.proc === Proc.DOMAIN_GET_XML_DESC) held = h; // answered after the next call: out of order
    else if (h.proc === Proc.DOMAIN_GET_STATE) {
      s.write(reply(h, (w) => w.int(1).int(1)));
      s.write(reply(held!, (w) => w.string('<domain/>')));
    } else if (h.proc === Proc.DOMAIN_LOOKUP_BY_NAME) {
      s.write(reply(h, (w) => w.int(42).int(10).optional('Domain not found: no domain with matching name', (x, v) => x.string(v)).int(2)
        .uint(0).uint(0).uint(0).uint(0).int(0).int(0).uint(0), MessageStatus.ERROR));
    } else if (h.proc === Proc.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY) {
      s.write(reply(h, (w) => w.int(7)));
      s.write(frame({ prog: REMOTE_PROGRAM, vers: 1, proc: Proc.DOMAIN_EVENT_CALLBACK_LIFECYCLE, type: MessageType.MESSAGE, serial: 0, status: 0 },
        (w) => { w.int(7); encodeDomain(w, DOM); w.int(5).int(1); }));
    }
  });
  const rpc = await LibvirtRpc.open(daemon.path, 'qemu:///system');
  try {
    const [xml, state] = await Promise.all([rpc.xml(DOM), rpc.state(DOM)]);
    assert.equal(xml, '<domain/>');
    assert.equal(state, 'running');
    await assert.rejects(rpc.lookupByName('nope'), /libvirt: Domain not found: no domain with matching name/);

    daemon.sockets[0]!.write(frame({ prog: KEEPALIVE_PROGRAM, vers: 1, proc: KEEPALIVE_PROC_PING, type: MessageType.MESSAGE, serial: 0, status: 0 }));
    const events: string[] = [];
    await rpc.onLifecycle((e) => events.push(`${e.dom.name} ${e.dom.uuid} ${e.event}/${e.detail}`));
    for (let i = 0; i < 100 && (!events.length || !daemon.pongs.length); i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(events, [`web1 ${DOM.uuid} 5/1`], 'the lifecycle event (Stopped, Destroyed) reaches the listener');
    assert.deepEqual(daemon.pongs, [KEEPALIVE_PROC_PONG], 'a keepalive PING is answered with a PONG');
  } finally {
    await rpc.close();
    await daemon.close();
  }
});

test('remote protocol: a call in flight fails when the daemon goes away, and so does every later call', async () => {
  const daemon = await fakeDaemon((h, s) => {
    if (h.proc === Proc.AUTH_LIST) s.write(reply(h, (w) => w.array([2], (x, v) => x.int(v))));
    else if (h.proc === Proc.AUTH_POLKIT || h.proc === Proc.CONNECT_OPEN) s.write(reply(h, (w) => w.int(1)));
    else if (h.proc === Proc.CONNECT_LIST_ALL_DOMAINS) s.destroy(); // the daemon dies mid-call
  });
  const rpc = await LibvirtRpc.open(daemon.path, 'qemu:///system');
  try {
    await assert.rejects(rpc.listAll(), /lost the connection to libvirtd/);
    await assert.rejects(rpc.state(DOM), /lost the connection to libvirtd/);
  } finally {
    await rpc.close();
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
