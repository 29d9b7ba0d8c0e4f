import {
  decodeError, decodeHeader, decodeLifecycle, encodeHeader, KEEPALIVE_PROC_PING, KEEPALIVE_PROC_PONG, KEEPALIVE_PROGRAM,
  KEEPALIVE_PROTOCOL_VERSION, type LifecycleEvent, MESSAGE_MAX, MessageStatus, MessageType, Proc, REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION,
} from './protocol.js';
import { type Endpoint, openTransport, type Transport, type TransportOptions } from './transport.js';
import { callTimedOut, libvirtRefused, notAnswering } from './errors.js';
import { XdrReader, XdrWriter } from './xdr.js';

export interface ChannelOptions extends TransportOptions {
  /**
   * Calls of one connection libvirtd serves at once (its max_client_requests, 5 by default):
   * the rest wait here. A call that timed out keeps its place until its late answer comes,
   * because the daemon is still working on it.
   */
  maxInFlight: number;
  /** Send a keepalive PING after this long without hearing from the daemon (libvirt's default 5 s). */
  keepaliveIntervalMs: number;
  /** Drop the connection after this many unanswered PINGs in a row (libvirt's default 5). */
  keepaliveCount: number;
}

interface Waiting {
  proc: Proc;
  message: (serial: number) => Buffer;
  resolve: (r: XdrReader) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  serial?: number;
}

/**
 * One physical connection to one libvirtd: framing, calls matched to replies by serial (in any
 * order), at most maxInFlight calls at the daemon, keepalive both ways, lifecycle events handed
 * to `onEvent`. It dies once (`onLost`), failing everything waiting on it; the long-lived
 * connection (connection.ts) opens a new one.
 */
export class Channel {
  private transport: Transport | undefined;
  private serial = 0;
  private inbox: Buffer = Buffer.alloc(0);
  private readonly queue: Waiting[] = [];
  private readonly sent = new Map<number, Waiting>();
  /** Timed-out calls the daemon has not answered yet: each still holds a place. */
  private readonly abandoned = new Set<number>();
  private lostReason: string | undefined;
  private heardAt = Date.now();
  private missedPings = 0;
  private pinger: NodeJS.Timeout | undefined;

  private constructor(
    private readonly ep: Endpoint,
    private readonly opts: ChannelOptions,
    private readonly onEvent: (e: LifecycleEvent) => void,
    private readonly onLost: (reason: string) => void,
  ) {}

  static async open(ep: Endpoint, opts: ChannelOptions, onEvent: (e: LifecycleEvent) => void, onLost: (reason: string) => void): Promise<Channel> {
    const ch = new Channel(ep, opts, onEvent, onLost);
    ch.transport = await openTransport(ep, { data: (b) => ch.receive(b), closed: (why) => ch.lose(why) }, opts);
    return ch;
  }

  get alive(): boolean {
    return this.lostReason === undefined;
  }

  /** Sends one call (or queues it behind maxInFlight) and resolves with a reader over its reply. */
  call(proc: Proc, args: ((w: XdrWriter) => void) | undefined, timeoutMs: number): Promise<XdrReader> {
    if (this.lostReason !== undefined) return Promise.reject(notAnswering(this.ep, this.lostReason));
    return new Promise((resolve, reject) => {
      const waiting: Waiting = {
        proc, resolve, reject,
        message: (serial) => frame({ prog: REMOTE_PROGRAM, vers: REMOTE_PROTOCOL_VERSION, proc, type: MessageType.CALL, serial, status: MessageStatus.OK }, args),
        timer: setTimeout(() => this.timeOut(waiting, timeoutMs), timeoutMs),
      };
      this.queue.push(waiting);
      this.pump();
    });
  }

  private timeOut(w: Waiting, timeoutMs: number): void {
    if (w.serial === undefined) this.queue.splice(this.queue.indexOf(w), 1);
    else {
      this.sent.delete(w.serial);
      this.abandoned.add(w.serial);
    }
    w.reject(callTimedOut(this.ep, Proc[w.proc] ?? String(w.proc), timeoutMs));
  }

  private pump(): void {
    while (this.queue.length && this.sent.size + this.abandoned.size < this.opts.maxInFlight && this.transport) {
      const w = this.queue.shift()!;
      w.serial = ++this.serial;
      this.sent.set(w.serial, w);
      this.transport.write(w.message(w.serial));
    }
  }

  /** Calls sent and not answered, and calls waiting for a place (what the unit tests look at). */
  get load(): { atDaemon: number; queued: number } {
    return { atDaemon: this.sent.size + this.abandoned.size, queued: this.queue.length };
  }

  /** Starts kumo's own pings; the daemon answers them once keepalive was asked for (connection.ts). */
  startKeepalive(): void {
    const { keepaliveIntervalMs: every, keepaliveCount: count } = this.opts;
    this.pinger = setInterval(() => {
      if (Date.now() - this.heardAt < every) return;
      if (this.missedPings >= count) {
        this.lose(`it did not answer ${count} keepalive pings in ${((count + 1) * every / 1000).toFixed(1)} s: stopped or stuck?`);
        return;
      }
      this.missedPings++;
      this.transport?.write(frame({ prog: KEEPALIVE_PROGRAM, vers: KEEPALIVE_PROTOCOL_VERSION, proc: KEEPALIVE_PROC_PING, type: MessageType.MESSAGE, serial: 0, status: MessageStatus.OK }));
    }, every);
    this.pinger.unref();
  }

  private receive(chunk: Buffer): void {
    this.heardAt = Date.now();
    this.missedPings = 0;
    this.inbox = this.inbox.length ? Buffer.concat([this.inbox, chunk]) : chunk;
    while (this.inbox.length >= 4 && this.lostReason === undefined) {
      const len = this.inbox.readUInt32BE(0);
      if (len < 28 || len > MESSAGE_MAX) {
        this.lose(`it sent a message of ${len} bytes, which is not libvirt's protocol`);
        return;
      }
      if (this.inbox.length < len) return;
      const r = new XdrReader(this.inbox.subarray(0, len), 4);
      this.inbox = this.inbox.subarray(len);
      try {
        this.dispatch(r);
      } catch (e) {
        this.lose(`it sent a message kumo cannot read (${(e as Error).message})`);
      }
    }
  }

  private dispatch(r: XdrReader): void {
    const h = decodeHeader(r);
    if (h.prog === KEEPALIVE_PROGRAM) {
      if (h.proc === KEEPALIVE_PROC_PING) {
        this.transport?.write(frame({ prog: KEEPALIVE_PROGRAM, vers: KEEPALIVE_PROTOCOL_VERSION, proc: KEEPALIVE_PROC_PONG, type: MessageType.MESSAGE, serial: 0, status: MessageStatus.OK }));
      }
      return;
    }
    if (h.prog !== REMOTE_PROGRAM) return;
    if (h.type === MessageType.REPLY) {
      // A late answer to a timed-out call only gives its place back.
      if (this.abandoned.delete(h.serial)) return this.pump();
      const w = this.sent.get(h.serial);
      if (!w) return;
      this.sent.delete(h.serial);
      clearTimeout(w.timer);
      if (h.status === MessageStatus.OK) w.resolve(r);
      else w.reject(libvirtRefused(decodeError(r)));
      this.pump();
    } else if (h.type === MessageType.MESSAGE && h.proc === Proc.DOMAIN_EVENT_CALLBACK_LIFECYCLE) {
      this.onEvent(decodeLifecycle(r));
    }
  }

  /** The connection is gone (closed, reset, dead keepalive, garbage): fail everything, once. */
  private lose(reason: string): void {
    if (this.lostReason !== undefined) return;
    this.lostReason = reason;
    clearInterval(this.pinger);
    this.transport?.destroy();
    const error = notAnswering(this.ep, reason);
    for (const w of [...this.queue, ...this.sent.values()]) {
      clearTimeout(w.timer);
      w.reject(error);
    }
    this.queue.length = 0;
    this.sent.clear();
    this.abandoned.clear();
    this.onLost(reason);
  }

  /** Closes without a word to the daemon (connection.ts says CONNECT_CLOSE first when it can). */
  destroy(reason = 'kumo closed the connection'): void {
    this.lose(reason);
  }
}

/** One message: the length word (counting itself), the header, the payload. */
export function frame(h: { prog: number; vers: number; proc: number; type: MessageType; serial: number; status: MessageStatus }, body?: (w: XdrWriter) => void): Buffer {
  const w = new XdrWriter().uint(0);
  encodeHeader(w, h);
  body?.(w);
  const msg = Buffer.from(w.bytes());
  msg.writeUInt32BE(msg.length, 0);
  return msg;
}
