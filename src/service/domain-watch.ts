import type { DomainListing } from '../drivers/libvirt/virsh.js';
import type { LifecycleSubscriber } from '../drivers/libvirt/rpc/connection.js';
import type { LifecycleEvent } from '../drivers/libvirt/rpc/protocol.js';
import type { KumoError } from '../model/errors.js';
import type { ObservedState, RuntimeState } from '../model/types.js';
import type { Context, ObservedStates } from './context.js';

/** What the watch needs of one hypervisor: its lifecycle events and its list of domains. */
export interface WatchedHost {
  subscribe(subscriber: LifecycleSubscriber): Promise<() => Promise<void>>;
  list(): Promise<DomainListing[]>;
}

export interface DomainWatchOptions {
  /** The host's events and listing, or undefined when it cannot be followed (no protocol connection: qemu+tls). */
  hostSource: (host: string) => WatchedHost | undefined;
  /** Told when a domain's observed state changed, or became unknown (lost) or known again (resync). */
  onChange?: (host: string, uuid: string) => void;
  /** Waits between attempts to follow a host that could not be reached: first, doubled up to max. */
  retryMs?: [first: number, max: number];
}

interface Entry extends ObservedState {
  name: string;
  /** The update's order among events and listings: a listing older than an event does not undo it. */
  seq: number;
}

interface Followed {
  host: string;
  source: WatchedHost;
  fresh: boolean;
  /** Bumped on every loss: a listing begun before one does not make the host fresh. */
  generation: number;
  listedAt: string;
  domains: Map<string, Entry>;
  unsubscribe?: () => Promise<void>;
  retry?: NodeJS.Timeout;
  waitMs: number;
}

/** virDomainEventType (rpc/protocol.ts LIFECYCLE_EVENT_NAMES) by number. */
const enum Lifecycle { Defined, Undefined, Started, Suspended, Resumed, Stopped, Shutdown, PMSuspended, Crashed }

/**
 * The state a lifecycle event leaves a domain in: 'gone' when it was undefined, undefined when
 * the event says nothing about the state (a Shutdown is followed by its Stopped; a Defined of a
 * known domain is a new definition, not a new state).
 */
export function stateAfter(event: number, known: RuntimeState | undefined): RuntimeState | 'gone' | undefined {
  switch (event) {
    case Lifecycle.Defined: return known === undefined || known === 'missing' ? 'shut off' : undefined;
    case Lifecycle.Undefined: return 'gone';
    case Lifecycle.Started: case Lifecycle.Resumed: return 'running';
    case Lifecycle.Suspended: return 'paused';
    case Lifecycle.Stopped: return 'shut off';
    case Lifecycle.PMSuspended: return 'pmsuspended';
    case Lifecycle.Crashed: return 'crashed';
    default: return undefined;
  }
}

/**
 * The observed state of every domain on the hypervisors a long-running process (`kumo serve`)
 * reads: per host, one listing, then libvirt's lifecycle events keep it fresh; a lost connection
 * makes the host's states unknown here (readers then ask libvirt, and say so) until the
 * connection is back and a new listing has resynchronised them. A host is followed from the
 * first read that asks for it, so hosts added later are followed too. Kept in memory only: the
 * store holds what kumo made, libvirt what it does.
 */
export class DomainWatch implements ObservedStates {
  private readonly hosts = new Map<string, Followed>();
  private seq = 0;
  private changes = 0;
  private stopped = false;

  constructor(private readonly opts: DomainWatchOptions) {}

  /** The host's states, or undefined when they are not known fresh (not followed yet, connection lost, listing not done). */
  of(host: string): ((uuid: string) => ObservedState) | undefined {
    const f = this.follow(host);
    if (!f?.fresh) return undefined;
    return (uuid) => {
      const e = f.domains.get(uuid.toLowerCase());
      // Not listed and no event since: libvirt has no such domain.
      return e ? { state: e.state, observedAt: e.observedAt, source: e.source } : { state: 'missing', observedAt: f.listedAt, source: 'listing' };
    };
  }

  /** Bumped on every event, listing and loss: anything of() answers may differ after it. */
  get version(): number {
    return this.changes;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.changes++;
    const all = [...this.hosts.values()];
    this.hosts.clear();
    for (const f of all) clearTimeout(f.retry);
    await Promise.all(all.map((f) => f.unsubscribe?.().catch(() => undefined)));
  }

  private follow(host: string): Followed | undefined {
    if (this.stopped) return undefined;
    let f = this.hosts.get(host);
    if (f) return f;
    const source = this.opts.hostSource(host);
    if (!source) return undefined;
    f = { host, source, fresh: false, generation: 0, listedAt: '', domains: new Map(), waitMs: this.opts.retryMs?.[0] ?? 1_000 };
    this.hosts.set(host, f);
    void this.start(f);
    return f;
  }

  /** Subscribes first, then lists: an event during the listing is not lost, and wins over it (seq). */
  private async start(f: Followed): Promise<void> {
    try {
      const unsubscribe = await f.source.subscribe({
        event: (e) => this.onEvent(f, e),
        resync: () => void this.relist(f),
        lost: (e) => this.onLost(f, e),
      });
      if (this.stopped) return void unsubscribe().catch(() => undefined);
      f.unsubscribe = unsubscribe;
    } catch {
      // Not reachable now: readers ask libvirt meanwhile (and get its error); try again later.
      return this.later(f, () => this.start(f));
    }
    await this.relist(f);
  }

  private later(f: Followed, again: () => Promise<void>): void {
    if (this.stopped || f.retry) return;
    const wait = f.waitMs;
    f.waitMs = Math.min(wait * 2, this.opts.retryMs?.[1] ?? 10_000);
    f.retry = setTimeout(() => {
      f.retry = undefined;
      void again();
    }, wait);
    f.retry.unref();
  }

  private async relist(f: Followed): Promise<void> {
    const generation = f.generation;
    const mark = ++this.seq;
    let listed: DomainListing[];
    try {
      listed = await f.source.list();
    } catch {
      // A loss reconnects and resyncs by itself; anything else is listed again later.
      if (f.generation === generation) this.later(f, () => this.relist(f));
      return;
    }
    if (this.stopped || f.generation !== generation) return;
    const at = new Date().toISOString();
    const wasFresh = f.fresh;
    const seen = new Set<string>();
    for (const d of listed) {
      if (!d.uuid) continue; // defined between virsh's two reads: its event follows
      seen.add(d.uuid);
      const e = f.domains.get(d.uuid);
      if (e && e.seq > mark) continue; // an event after the listing began knows better
      f.domains.set(d.uuid, { name: d.name, state: d.state, observedAt: at, source: 'listing', seq: mark });
      if (!wasFresh || e?.state !== d.state) this.opts.onChange?.(f.host, d.uuid);
    }
    for (const [uuid, e] of f.domains) {
      if (seen.has(uuid) || e.seq > mark) continue;
      f.domains.delete(uuid);
      if (!wasFresh || e.state !== 'missing') this.opts.onChange?.(f.host, uuid);
    }
    f.listedAt = at;
    f.fresh = true;
    this.changes++;
    f.waitMs = this.opts.retryMs?.[0] ?? 1_000;
  }

  private onEvent(f: Followed, e: LifecycleEvent): void {
    const uuid = e.dom.uuid.toLowerCase();
    const next = stateAfter(e.event, f.domains.get(uuid)?.state);
    if (next === undefined) return;
    this.changes++;
    f.domains.set(uuid, { name: e.dom.name, state: next === 'gone' ? 'missing' : next, observedAt: new Date().toISOString(), source: 'events', seq: ++this.seq });
    this.opts.onChange?.(f.host, uuid);
  }

  private onLost(f: Followed, _error: KumoError): void {
    f.generation++;
    this.changes++;
    if (!f.fresh) return;
    f.fresh = false;
    for (const uuid of f.domains.keys()) this.opts.onChange?.(f.host, uuid);
  }
}

/**
 * A watch over the Context's hypervisors, through their protocol connections (hosts the driver
 * does not speak, qemu+tls, are not followed: their reads keep asking virsh).
 */
export function watchDomains(ctx: Context, onChange?: (host: string, uuid: string) => void): DomainWatch {
  return new DomainWatch({
    ...(onChange ? { onChange } : {}),
    hostSource: (host) => {
      let virsh;
      try {
        virsh = ctx.virshFor(host);
      } catch {
        return undefined; // not registered, or not a hypervisor
      }
      const conn = virsh.protocol;
      return conn && { subscribe: (s) => conn.subscribeLifecycle(s), list: () => virsh.listDomains() };
    },
  });
}
