import { libvirtCallTimeoutMs } from '../../../config.js';
import { WAIT_EVERY_MS, WAIT_FIRST_MS } from '../../../exec/waits.js';
import { KumoError } from '../../../model/errors.js';
import { Channel, type ChannelOptions } from './channel.js';
import { connectionClosed, notAnswering } from './errors.js';
import { AuthType, EVENT_ID_LIFECYCLE, FEATURE_PROGRAM_KEEPALIVE, encodeDomain, type Domain, type LifecycleEvent, Proc } from './protocol.js';
import { type Endpoint, endpointOf } from './transport.js';
import type { XdrReader, XdrWriter } from './xdr.js';

export interface ConnectionOptions extends Partial<ChannelOptions> {
  /** Every call's limit, queueing included (default: KUMO_LIBVIRT_TIMEOUT, config.ts). */
  callTimeoutMs?: number;
  /** The limit of opening a connection: connect, auth, open (default 10 s, at most the call timeout). */
  connectTimeoutMs?: number;
  /** Reconnect backoff for subscribers: first wait, doubled up to the last (default 0.5 s to 10 s). */
  backoffMs?: [first: number, max: number];
  /**
   * Told about every call still waiting after WAIT_FIRST_MS, then every WAIT_EVERY_MS,
   * whatever its procedure (reads and writes alike): what a person waits for is then said.
   */
  onSlow?: (notice: SlowProtocolCall) => void;
}

/** A protocol call that has been waiting a while. */
export interface SlowProtocolCall {
  uri: string;
  /** The procedure, as a person reads it: "domain get xml desc". */
  call: string;
  elapsedMs: number;
}


/** Proc.DOMAIN_GET_XML_DESC -> "domain get xml desc". */
const procName = (proc: Proc): string => (Proc[proc] ?? `procedure ${proc}`).toLowerCase().replaceAll('_', ' ');

/** Who follows a host's domain lifecycle. */
export interface LifecycleSubscriber {
  event(e: LifecycleEvent): void;
  /**
   * The connection was opened again after a loss and events flow again: events in between may be
   * lost, so whoever keeps state re-reads it (e.g. listAllWithState) now.
   */
  resync(): void;
  /** The connection was lost: what is known may go stale until resync. */
  lost?(error: KumoError): void;
}

/**
 * The long-lived connection to one host's libvirtd over libvirt's remote protocol (the decision
 * and its figures: docs/decisions.md). Opened lazily by the first call. After a loss, a call
 * opens it again (failing at once, with the reason, when that does not work); with lifecycle
 * subscribers it also comes back by itself with backoff, registers the events again and tells
 * the subscribers to resynchronise. Every call is bounded by the call timeout.
 */
export class LibvirtConnection {
  readonly endpoint: Endpoint;
  private readonly opts: ChannelOptions & Pick<ConnectionOptions, 'onSlow'> & { callTimeoutMs: number; connectTimeoutMs: number; backoffMs: [number, number] };
  private channel: Channel | undefined;
  private opening: Promise<Channel> | undefined;
  private failure: { at: number; error: unknown } | undefined;
  private everOpened = false;
  private closed = false;
  private retry: { timer?: NodeJS.Timeout; waitMs: number };
  private readonly subscribers = new Set<LifecycleSubscriber>();
  private events: { channel: Channel; registered: Promise<number> } | undefined;

  constructor(readonly uri: string, options: ConnectionOptions = {}) {
    this.endpoint = endpointOf(uri);
    const callTimeoutMs = options.callTimeoutMs ?? libvirtCallTimeoutMs();
    this.opts = {
      maxInFlight: 5, keepaliveIntervalMs: 5_000, keepaliveCount: 5, backoffMs: [500, 10_000], ...options,
      callTimeoutMs, connectTimeoutMs: Math.min(options.connectTimeoutMs ?? 10_000, callTimeoutMs),
    };
    this.retry = { waitMs: this.opts.backoffMs[0] };
  }

  /** One call; resolves with a reader over the reply's payload. */
  async call(proc: Proc, args?: (w: XdrWriter) => void): Promise<XdrReader> {
    const started = Date.now();
    const stopWatch = this.watchSlow(proc, started);
    try {
      const ch = await this.ready();
      return await ch.call(proc, args, Math.max(1, this.opts.callTimeoutMs - (Date.now() - started)));
    } finally {
      stopWatch();
    }
  }

  /** Whether calls report their slowness themselves (then a caller need not watch them too). */
  get reportsSlowCalls(): boolean {
    return this.opts.onSlow !== undefined;
  }

  /** Tells onSlow about a call (opening the connection included) still waiting; returns the stop. */
  private watchSlow(proc: Proc, started: number): () => void {
    const onSlow = this.opts.onSlow;
    if (!onSlow) return () => undefined;
    let timer: NodeJS.Timeout;
    const tell = () => {
      try {
        onSlow({ uri: this.uri, call: procName(proc), elapsedMs: Date.now() - started });
      } catch {
        // A broken listener must not break the call.
      }
      timer = setTimeout(tell, WAIT_EVERY_MS).unref();
    };
    timer = setTimeout(tell, WAIT_FIRST_MS).unref();
    return () => clearTimeout(timer);
  }

  /** Whether a connection is open now (a status for callers that report freshness). */
  get connected(): boolean {
    return this.channel?.alive === true;
  }

  private ready(): Promise<Channel> {
    if (this.closed) return Promise.reject(connectionClosed(this.uri));
    if (this.channel?.alive) return Promise.resolve(this.channel);
    if (this.opening) return this.opening;
    // Right after a failed attempt, fail at once with its reason instead of knocking again.
    if (this.failure && Date.now() - this.failure.at < this.opts.backoffMs[0]) return Promise.reject(this.failure.error);
    return this.open();
  }

  private open(): Promise<Channel> {
    clearTimeout(this.retry.timer);
    this.retry.timer = undefined;
    const attempt = this.handshake().then((ch) => this.opened(ch), (e: unknown) => {
      this.failure = { at: Date.now(), error: e };
      this.scheduleRetry();
      throw e;
    });
    this.opening = attempt.finally(() => { this.opening = undefined; });
    this.opening.catch(() => undefined); // the caller of ready() sees the error; nobody else must
    return this.opening;
  }

  /** Connect, authenticate, open the driver, turn keepalive on: all within the connect timeout. */
  private async handshake(): Promise<Channel> {
    const deadline = Date.now() + this.opts.connectTimeoutMs;
    const left = () => Math.max(1, deadline - Date.now());
    const ch = await this.connect(left());
    try {
      const auth = (await ch.call(Proc.AUTH_LIST, undefined, left())).array((r) => r.int(), 20);
      if (auth.includes(AuthType.POLKIT)) await ch.call(Proc.AUTH_POLKIT, undefined, left());
      else if (auth.length && !auth.includes(AuthType.NONE)) {
        throw new KumoError('LIBVIRT_ERROR', `libvirt at ${this.uri} wants SASL authentication, which kumo does not speak`,
          'reach the host over ssh (qemu+ssh://root@HOST/system) or give its socket polkit or no auth (auth_unix_rw in libvirtd.conf)');
      }
      await ch.call(Proc.CONNECT_OPEN, (w) => w.optional(this.endpoint.openUri, (x, v) => x.string(v)).uint(0), left());
      // Asking for the feature also starts the daemon's pings and its answers to ours.
      const keepalive = (await ch.call(Proc.CONNECT_SUPPORTS_FEATURE, (w) => w.int(FEATURE_PROGRAM_KEEPALIVE), left())).int();
      if (keepalive) ch.startKeepalive();
      if (this.subscribers.size) await this.registerEvents(ch);
      return ch;
    } catch (e) {
      ch.destroy('the connection could not be opened');
      throw e;
    }
  }

  /** The transport and a channel over it, or an error naming the host and why (no socket, ssh failed, too slow). */
  private connect(timeoutMs: number): Promise<Channel> {
    let ch: Channel | undefined;
    return new Promise<Channel>((resolve, reject) => {
      let late = false;
      const timer = setTimeout(() => {
        late = true;
        reject(notAnswering(this.endpoint, `no connection within ${timeoutMs / 1000} s: stopped or stuck?`));
      }, timeoutMs);
      Channel.open(this.endpoint, this.opts, (e) => this.deliver(ch, e), (reason) => this.lost(ch, reason)).then((opened) => {
        ch = opened;
        clearTimeout(timer);
        if (late) opened.destroy('too late');
        else resolve(opened);
      }, (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof KumoError ? e : notAnswering(this.endpoint, (e as Error).message));
      });
    });
  }

  private opened(ch: Channel): Channel {
    if (this.closed) {
      void this.bye(ch);
      throw connectionClosed(this.uri);
    }
    const again = this.everOpened;
    this.channel = ch;
    this.everOpened = true;
    this.failure = undefined;
    this.retry.waitMs = this.opts.backoffMs[0];
    if (again) for (const s of this.subscribers) s.resync();
    return ch;
  }

  private lost(ch: Channel | undefined, reason: string): void {
    if (ch === undefined || this.channel !== ch || this.closed) return;
    // No failure is recorded: the next call tries once at once (a restarted daemon is back).
    this.channel = undefined;
    this.events = undefined;
    const error = notAnswering(this.endpoint, reason);
    for (const s of this.subscribers) s.lost?.(error);
    this.scheduleRetry();
  }

  /** With subscribers, come back without waiting for a call: they need their events. */
  private scheduleRetry(): void {
    if (this.closed || !this.subscribers.size || this.retry.timer !== undefined) return;
    const wait = this.retry.waitMs;
    this.retry.waitMs = Math.min(wait * 2, this.opts.backoffMs[1]);
    this.retry.timer = setTimeout(() => {
      this.retry.timer = undefined;
      if (!this.channel?.alive && !this.opening) void this.open().catch(() => undefined);
    }, wait);
    this.retry.timer.unref();
  }

  private deliver(ch: Channel | undefined, e: LifecycleEvent): void {
    if (ch === undefined || this.events?.channel !== ch) return;
    for (const s of this.subscribers) s.event(e);
  }

  private registerEvents(ch: Channel): Promise<number> {
    if (this.events?.channel === ch) return this.events.registered;
    const registered = ch.call(Proc.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
      (w) => w.int(EVENT_ID_LIFECYCLE).optional<Domain>(undefined, encodeDomain), this.opts.callTimeoutMs).then((r) => r.int());
    this.events = { channel: ch, registered };
    registered.catch(() => { if (this.events?.registered === registered) this.events = undefined; });
    return registered;
  }

  /**
   * Follows every domain's lifecycle on this host until the returned function is called. Resolves
   * once the daemon sends events (it opens the connection if needed); from then on a loss and
   * reconnect reach the subscriber as lost() then resync().
   */
  async subscribeLifecycle(subscriber: LifecycleSubscriber): Promise<() => Promise<void>> {
    this.subscribers.add(subscriber);
    try {
      await this.registerEvents(await this.ready());
    } catch (e) {
      this.subscribers.delete(subscriber);
      throw e;
    }
    return async () => {
      if (!this.subscribers.delete(subscriber) || this.subscribers.size || !this.events) return;
      const { channel, registered } = this.events;
      this.events = undefined;
      const id = await registered.catch(() => undefined);
      if (id !== undefined && channel.alive) {
        await channel.call(Proc.CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY, (w) => w.int(id), this.opts.callTimeoutMs).catch(() => undefined);
      }
    };
  }

  /** Says goodbye to the daemon (CONNECT_CLOSE, briefly) and stops reconnecting; later calls fail. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry.timer);
    this.subscribers.clear();
    const ch = this.channel;
    this.channel = undefined;
    if (ch) await this.bye(ch);
  }

  private async bye(ch: Channel): Promise<void> {
    if (ch.alive) await ch.call(Proc.CONNECT_CLOSE, undefined, Math.min(2_000, this.opts.callTimeoutMs)).catch(() => undefined);
    ch.destroy();
  }
}
