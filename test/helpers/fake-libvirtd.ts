import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { frame } from '../../src/drivers/libvirt/rpc/channel.js';
import {
  decodeHeader, encodeDomain, type Domain, KEEPALIVE_PROC_PING, KEEPALIVE_PROC_PONG, KEEPALIVE_PROGRAM, MessageStatus, MessageType, Proc,
  REMOTE_PROGRAM, type Header,
} from '../../src/drivers/libvirt/rpc/protocol.js';
import { XdrReader, type XdrWriter } from '../../src/drivers/libvirt/rpc/xdr.js';

/**
 * A scripted libvirtd on a unix socket for the protocol driver's unit tests: it answers the
 * handshake (auth, open, keepalive feature, event registration) by itself, hands every other
 * call to `answer`, records what it was sent, and can go away and come back on the same path.
 */
export interface FakeCall { h: Header; body: XdrReader; socket: Socket }

export interface FakeLibvirtdOptions {
  /** What AUTH_LIST answers (default: polkit, as Debian's socket). */
  auth?: number[];
  /** Answer kumo's keepalive PINGs (default true); false plays a stalled daemon. */
  answerPings?: boolean;
  answer?: (call: FakeCall) => void;
}

export const reply = (h: Header, body?: (w: XdrWriter) => void, status = MessageStatus.OK) =>
  frame({ ...h, type: MessageType.REPLY, status }, body);

export const lifecycleMessage = (callbackId: number, dom: Domain, event: number, detail: number) =>
  frame({ prog: REMOTE_PROGRAM, vers: 1, proc: Proc.DOMAIN_EVENT_CALLBACK_LIFECYCLE, type: MessageType.MESSAGE, serial: 0, status: 0 },
    (w) => { w.int(callbackId); encodeDomain(w, dom); w.int(event).int(detail); });

export const pingMessage = () => frame({ prog: KEEPALIVE_PROGRAM, vers: 1, proc: KEEPALIVE_PROC_PING, type: MessageType.MESSAGE, serial: 0, status: 0 });

export async function fakeLibvirtd(opts: FakeLibvirtdOptions = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-rpc-test-'));
  const path = join(dir, 'sock');
  const sockets: Socket[] = [];
  const log: { conn: number; proc: number }[] = [];
  const keepalive = { pings: 0, pongs: 0 };
  let nextCallbackId = 100;
  let server: Server | undefined;
  const handle = (s: Socket, conn: number, h: Header, body: XdrReader) => {
    if (h.prog === KEEPALIVE_PROGRAM) {
      if (h.proc === KEEPALIVE_PROC_PONG) keepalive.pongs++;
      if (h.proc === KEEPALIVE_PROC_PING) {
        keepalive.pings++;
        if (opts.answerPings !== false) s.write(frame({ ...h, proc: KEEPALIVE_PROC_PONG }));
      }
      return;
    }
    log.push({ conn, proc: h.proc });
    if (h.proc === Proc.AUTH_LIST) s.write(reply(h, (w) => w.array(opts.auth ?? [2], (x, v) => x.int(v))));
    else if ([Proc.AUTH_POLKIT, Proc.CONNECT_OPEN, Proc.CONNECT_CLOSE].includes(h.proc)) s.write(reply(h, (w) => w.int(1)));
    else if (h.proc === Proc.CONNECT_SUPPORTS_FEATURE) s.write(reply(h, (w) => w.int(1)));
    else if (h.proc === Proc.CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY) s.write(reply(h));
    else if (h.proc === Proc.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY) s.write(reply(h, (w) => w.int(nextCallbackId++)));
    else opts.answer?.({ h, body, socket: s });
  };
  const listen = async () => {
    server = createServer((s) => {
      const conn = sockets.push(s) - 1;
      let inbox = Buffer.alloc(0);
      s.on('error', () => undefined);
      s.on('data', (chunk) => {
        inbox = Buffer.concat([inbox, chunk]);
        while (inbox.length >= 4 && inbox.length >= inbox.readUInt32BE(0)) {
          const r = new XdrReader(inbox.subarray(0, inbox.readUInt32BE(0)), 4);
          inbox = inbox.subarray(inbox.readUInt32BE(0));
          handle(s, conn, decodeHeader(r), r);
        }
      });
    });
    await new Promise<void>((resolve) => server!.listen(path, resolve));
  };
  /** Closes the listener and every connection: the socket file goes too (ENOENT, as a dead daemon's). */
  const stop = async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    server = undefined;
  };
  await listen();
  return {
    path, uri: `qemu+unix:///system?socket=${path}`, sockets, log, keepalive,
    /** The callback ID the last registration was given. */
    lastCallbackId: () => nextCallbackId - 1,
    /** Calls of procedure PROC seen, per connection number. */
    seen: (proc: number) => log.filter((l) => l.proc === proc).map((l) => l.conn),
    stop, start: listen,
    close: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
