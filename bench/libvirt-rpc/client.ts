import { connect, type Socket } from 'node:net';
import {
  AuthType, decodeDomain, decodeError, decodeHeader, decodeLifecycle, decodeTypedParam, DOMAIN_STATE_NAMES, DOMAIN_STATS_STATE, type Domain,
  encodeDomain, encodeHeader, EVENT_ID_LIFECYCLE, KEEPALIVE_PROC_PING, KEEPALIVE_PROC_PONG, KEEPALIVE_PROGRAM, KEEPALIVE_PROTOCOL_VERSION,
  type LifecycleEvent, MESSAGE_MAX, MessageStatus, MessageType, Proc, REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX,
  REMOTE_DOMAIN_LIST_MAX, REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION,
} from './protocol.js';
import { XdrReader, XdrWriter } from './xdr.js';

/**
 * A prototype client of libvirtd's remote protocol over its unix socket: one connection,
 * calls in flight at once (matched to replies by serial), events pushed by the daemon, and
 * answers to the daemon's keepalive pings. No reconnect, no TLS/ssh, no streams: what the
 * side-by-side measurement needs and no more (docs/decisions.md says what the real one needs).
 */
export class LibvirtRpc {
  private serial = 0;
  private pending = new Map<number, { resolve: (r: XdrReader) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private inbox: Buffer = Buffer.alloc(0);
  private lifecycleListeners: ((e: LifecycleEvent) => void)[] = [];
  private closedError: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk) => this.receive(chunk));
    // A reset and a plain close mean the same to callers: the connection is gone, reconnect.
    socket.on('close', () => this.fail(new Error('lost the connection to libvirtd (it closed)')));
    socket.on('error', (e) => this.fail(new Error(`lost the connection to libvirtd (${e.message})`)));
  }

  /**
   * Connects to SOCKET and opens URI (e.g. qemu:///system) on it. The unix socket's auth is
   * "none" or "polkit" (Debian's default); libvirtd lets root through polkit without asking it.
   */
  static async open(socketPath: string, uri: string): Promise<LibvirtRpc> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(socketPath, () => resolve(s));
      s.once('error', reject);
    });
    const rpc = new LibvirtRpc(socket);
    const auth = (await rpc.call(Proc.AUTH_LIST)).array((r) => r.int(), 20);
    if (auth.includes(AuthType.POLKIT)) await rpc.call(Proc.AUTH_POLKIT);
    else if (auth.length && !auth.includes(AuthType.NONE)) {
      await rpc.close();
      throw new Error(`libvirtd at ${socketPath} wants SASL authentication, which this prototype does not speak`);
    }
    await rpc.call(Proc.CONNECT_OPEN, (w) => w.optional(uri, (x, v) => x.string(v)).uint(0));
    return rpc;
  }

  /** Sends one call and resolves with a reader over its reply's payload. */
  call(proc: Proc, args?: (w: XdrWriter) => void, timeoutMs = 30_000): Promise<XdrReader> {
    if (this.closedError) return Promise.reject(this.closedError);
    const serial = ++this.serial;
    const w = new XdrWriter().uint(0); // the length word, filled in below
    encodeHeader(w, { prog: REMOTE_PROGRAM, vers: REMOTE_PROTOCOL_VERSION, proc, type: MessageType.CALL, serial, status: MessageStatus.OK });
    args?.(w);
    const msg = w.bytes();
    msg.writeUInt32BE(msg.length, 0);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(serial);
        reject(new Error(`libvirtd did not answer procedure ${Proc[proc]} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(serial, { resolve, reject, timer });
      this.socket.write(msg);
    });
  }

  private receive(chunk: Buffer): void {
    this.inbox = this.inbox.length ? Buffer.concat([this.inbox, chunk]) : chunk;
    while (this.inbox.length >= 4) {
      const len = this.inbox.readUInt32BE(0);
      if (len < 28 || len > MESSAGE_MAX) {
        this.fail(new Error(`libvirtd sent a message of ${len} bytes: not libvirt's protocol`));
        this.socket.destroy();
        return;
      }
      if (this.inbox.length < len) return;
      const r = new XdrReader(this.inbox.subarray(0, len), 4);
      this.inbox = this.inbox.subarray(len);
      this.dispatch(r);
    }
  }

  private dispatch(r: XdrReader): void {
    const h = decodeHeader(r);
    if (h.prog === KEEPALIVE_PROGRAM) {
      if (h.proc === KEEPALIVE_PROC_PING) this.pong();
      return;
    }
    if (h.prog !== REMOTE_PROGRAM) return;
    if (h.type === MessageType.REPLY) {
      const p = this.pending.get(h.serial);
      if (!p) return;
      this.pending.delete(h.serial);
      clearTimeout(p.timer);
      if (h.status === MessageStatus.OK) p.resolve(r);
      else p.reject(new Error(`libvirt: ${decodeError(r).message ?? 'unknown error'}`));
    } else if (h.type === MessageType.MESSAGE && h.proc === Proc.DOMAIN_EVENT_CALLBACK_LIFECYCLE) {
      const e = decodeLifecycle(r);
      for (const l of this.lifecycleListeners) l(e);
    }
  }

  private pong(): void {
    const w = new XdrWriter().uint(0);
    encodeHeader(w, { prog: KEEPALIVE_PROGRAM, vers: KEEPALIVE_PROTOCOL_VERSION, proc: KEEPALIVE_PROC_PONG, type: MessageType.MESSAGE, serial: 0, status: MessageStatus.OK });
    const msg = w.bytes();
    msg.writeUInt32BE(msg.length, 0);
    this.socket.write(msg);
  }

  private fail(e: Error): void {
    this.closedError ??= e;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.pending.clear();
  }

  /** Every domain with its state, in one round trip (what `virsh domstats --state` asks). */
  async listAllWithState(): Promise<{ dom: Domain; state: string }[]> {
    const r = await this.call(Proc.CONNECT_GET_ALL_DOMAIN_STATS, (w) => w.array([], encodeDomain).uint(DOMAIN_STATS_STATE).uint(0));
    return r.array((x) => {
      const dom = decodeDomain(x);
      const params = new Map(x.array(decodeTypedParam, REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX));
      return { dom, state: DOMAIN_STATE_NAMES[Number(params.get('state.state') ?? 0)] ?? 'no state' };
    }, REMOTE_DOMAIN_LIST_MAX);
  }

  /** Every domain (name, UUID, id), without states. */
  async listAll(): Promise<Domain[]> {
    const r = await this.call(Proc.CONNECT_LIST_ALL_DOMAINS, (w) => w.int(1).uint(0));
    return r.array(decodeDomain, REMOTE_DOMAIN_LIST_MAX);
  }

  async lookupByName(name: string): Promise<Domain> {
    return decodeDomain(await this.call(Proc.DOMAIN_LOOKUP_BY_NAME, (w) => w.string(name)));
  }

  async state(dom: Domain): Promise<string> {
    const r = await this.call(Proc.DOMAIN_GET_STATE, (w) => { encodeDomain(w, dom); w.uint(0); });
    return DOMAIN_STATE_NAMES[r.int()] ?? 'no state';
  }

  async xml(dom: Domain, flags = 0): Promise<string> {
    return (await this.call(Proc.DOMAIN_GET_XML_DESC, (w) => { encodeDomain(w, dom); w.uint(flags); })).string();
  }

  async define(xml: string): Promise<Domain> {
    return decodeDomain(await this.call(Proc.DOMAIN_DEFINE_XML, (w) => w.string(xml)));
  }

  async undefine(dom: Domain): Promise<void> {
    await this.call(Proc.DOMAIN_UNDEFINE_FLAGS, (w) => { encodeDomain(w, dom); w.uint(0); });
  }

  /** Asks for every domain's lifecycle events on this connection; `listener` gets each one. */
  async onLifecycle(listener: (e: LifecycleEvent) => void): Promise<number> {
    this.lifecycleListeners.push(listener);
    const r = await this.call(Proc.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY, (w) => w.int(EVENT_ID_LIFECYCLE).optional<Domain>(undefined, encodeDomain));
    return r.int();
  }

  async close(): Promise<void> {
    if (!this.closedError) await this.call(Proc.CONNECT_CLOSE, undefined, 5_000).catch(() => undefined);
    this.socket.destroy();
  }
}
