import { EventEmitter } from 'node:events';
import { randomBytes, randomUUID } from 'node:crypto';
import { KumoError, notFound, publicError } from '../model/errors.js';
import { reportingWaitsTo, type WaitListener } from '../exec/waits.js';

/**
 * Long work (instance create, migrate, image build) that a face starts and does not wait
 * for: the registry runs it, keeps its state, and tells subscribers about every change.
 * In memory only: after a restart the operations are gone, and the undo journal has taken
 * care of any that were half done.
 */
export type OperationState = 'running' | 'succeeded' | 'failed';

export interface OperationError {
  code: string;
  message: string;
  fix?: string;
}

/** A step's wait, as an operation shows it. */
export interface OperationWait {
  what: string;
  seconds: number;
  hint?: string;
}

/** Who starts an operation: the name the concurrency cap counts by, and the project it acts in. */
export interface OperationOwner {
  name: string;
  project: string;
}

export interface Operation {
  id: string;
  /** Who started it: an API token's name (absent for work started otherwise). */
  owner?: string;
  /** The project it works in (absent for work started otherwise): only that project's actors see it. */
  project?: string;
  /** What it does, e.g. "instance.create". */
  kind: string;
  /** The resource it works on, e.g. the instance's name. */
  target: string;
  state: OperationState;
  /** The step it is at (instance create: disk, seed, define, start, boot). */
  step?: string;
  /** Steps done so far, in order. */
  steps: string[];
  /** What the current step has been waiting for, once it waits over 2 s (gone at the next step). */
  waiting?: OperationWait;
  /** What the work returned, when it succeeded (e.g. the instance). */
  result?: unknown;
  error?: OperationError;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
}

/** What subscribers hear: operation changes, and changes to resources made outside operations. */
export type KumoEvent =
  | { type: 'operation'; operation: Operation }
  | { type: 'resource'; resource: string; name: string; action: string };

export interface SequencedEvent {
  /**
   * "<run>-<seq>": the registry's run and the sequence number. A server restart starts a new run,
   * so an id from before it is never mistaken for one of this run's (see since()).
   */
  id: string;
  /** Increases by one per event, within a run. */
  seq: number;
  at: string;
  event: KumoEvent;
}

/**
 * Why a client cannot be caught up from its last event id: it was given by another server run
 * (a restart), the events after it are no longer kept, or it is not an id kumo gives.
 * Such a client reloads its state instead.
 */
export type ReplayGap = 'restarted' | 'too-old' | 'unknown';

const EVENT_ID = /^([0-9a-f]{12})-(\d+)$/;

export interface OperationLimits {
  perOwner: number;
  total: number;
}

/** How many events a reconnecting client can catch up on, and how many finished operations are kept. */
const REPLAY = 1_000;
const KEEP_FINISHED = 500;

export class OperationRegistry {
  private readonly ops = new Map<string, Operation>();
  private readonly emitter = new EventEmitter();
  private readonly recent: SequencedEvent[] = [];
  private seq = 0;
  /** This registry's run: random, so that two server runs never give the same event id. */
  readonly run = randomBytes(6).toString('hex');

  /** Caps on running operations (startFor); read at each start, so a changed setting applies at once. */
  private limits: () => OperationLimits = () => ({ perOwner: Infinity, total: Infinity });

  constructor() {
    // Every open event stream is a listener; Node's leak warning at 10 does not fit that.
    this.emitter.setMaxListeners(0);
  }

  /** Bounds what startFor lets run at once (the server reads kumo's settings here). */
  limitConcurrency(limits: () => OperationLimits): void {
    this.limits = limits;
  }

  /**
   * start, on behalf of `owner` (an API token's name), refused with TOO_BUSY when that owner or
   * everyone together already has as many operations running as the limits allow: each holds
   * QEMU, qemu-img or a download, and a token must not be able to starve the machine.
   */
  startFor<T>(by: OperationOwner, kind: string, target: string, work: (progress: (step: string) => void) => Promise<T>,
    render?: (result: T) => unknown): Operation {
    const owner = by.name;
    const { perOwner, total } = this.limits();
    const running = [...this.ops.values()].filter((o) => o.state === 'running');
    const mine = running.filter((o) => o.owner === owner).length;
    if (mine >= perOwner || running.length >= total) {
      const which = mine >= perOwner ? `token "${owner}" has ${mine} long operations running (at most ${perOwner})` : `${running.length} long operations are running (at most ${total} at once)`;
      throw new KumoError('TOO_BUSY', `${which}; ${kind} was not started`,
        'wait for one to finish (GET /api/v1/operations) and try again; the limits are the settings api.operations-per-token and api.operations-total (kumo config set)');
    }
    return this.start(kind, target, work, render, by);
  }

  /**
   * Starts work in the background and returns its operation at once. The work reports
   * steps through `progress`; its result is rendered with `render` (default: as is).
   */
  start<T>(kind: string, target: string, work: (progress: (step: string) => void) => Promise<T>,
    render: (result: T) => unknown = (r) => r, by?: OperationOwner): Operation {
    const now = new Date().toISOString();
    const op: Operation = {
      id: randomUUID(), ...(by ? { owner: by.name, project: by.project } : {}), kind, target, state: 'running', steps: [], createdAt: now, updatedAt: now,
    };
    this.ops.set(op.id, op);
    this.prune();
    this.changed(op);
    const progress = (step: string) => {
      if (op.state !== 'running') return;
      op.step = step;
      op.steps.push(step);
      delete op.waiting;
      this.changed(op);
    };
    // A wait anywhere in the work (a poll, a daemon, a libvirt call) shows in the operation and its event.
    const waited: WaitListener = (n) => {
      if (op.state !== 'running') return;
      op.waiting = { what: n.what, seconds: Math.round(n.elapsedMs / 1000), ...(n.hint ? { hint: n.hint } : {}) };
      this.changed(op);
    };
    // Deferred so that the caller has the operation (and can answer 202) before any work runs.
    setImmediate(() => {
      reportingWaitsTo(waited, () => work(progress)).then((result) => {
        op.result = render(result);
        this.finish(op, 'succeeded');
      }, (e: unknown) => {
        // What a caller reads is publicError's; the detail goes to whoever listens (the server's log).
        const { withheldUnder, ...shown } = publicError(e, op.id, 'operation');
        op.error = shown;
        if (withheldUnder) this.emitter.emit('failure', snapshot(op), e);
        this.finish(op, 'failed');
      });
    });
    return snapshot(op);
  }

  get(id: string): Operation {
    const op = this.ops.get(id);
    if (!op) throw notFound(`there is no operation "${id}"`, 'operations are kept in memory by the running server; see GET /api/v1/operations');
    return snapshot(op);
  }

  /** Calls `listener` with the full error of every operation whose detail its callers do not see. Returns the unsubscribe. */
  onWithheldFailure(listener: (op: Operation, error: unknown) => void): () => void {
    this.emitter.on('failure', listener);
    return () => this.emitter.off('failure', listener);
  }

  /** Newest first. */
  list(): Operation[] {
    return [...this.ops.values()].reverse().map(snapshot);
  }

  /** Resolves when the operation has finished, either way. */
  wait(id: string): Promise<Operation> {
    const op = this.get(id);
    if (op.state !== 'running') return Promise.resolve(op);
    return new Promise((resolve) => {
      const off = this.subscribe((e) => {
        if (e.event.type === 'operation' && e.event.operation.id === id && e.event.operation.state !== 'running') {
          off();
          resolve(e.event.operation);
        }
      });
    });
  }

  /** A change to a resource made without an operation (a start, a delete...), for live views. */
  resourceChanged(resource: string, name: string, action: string): void {
    this.publish({ type: 'resource', resource, name, action });
  }

  /** Calls `listener` for every event from now on. Returns the function that unsubscribes. */
  subscribe(listener: (e: SequencedEvent) => void): () => void {
    const safe = (e: SequencedEvent) => {
      try {
        listener(e);
      } catch {
        // A broken subscriber (a client gone mid-write) must not break the work that published.
      }
    };
    this.emitter.on('event', safe);
    return () => this.emitter.off('event', safe);
  }

  /**
   * The events after the one with id `lastId`, when this run still keeps them all (a reconnecting
   * client then misses nothing); otherwise why not, and the client must reload its state.
   */
  since(lastId: string): { events: SequencedEvent[] } | { gap: ReplayGap } {
    const m = EVENT_ID.exec(lastId);
    if (!m) return { gap: 'unknown' };
    if (m[1] !== this.run) return { gap: 'restarted' };
    const seq = Number(m[2]);
    if (seq > this.seq) return { gap: 'unknown' };
    // The events kept are oldest..this.seq: one right after `seq` must still be among them.
    const oldest = this.recent[0]?.seq ?? this.seq + 1;
    if (seq < oldest - 1) return { gap: 'too-old' };
    return { events: this.recent.filter((e) => e.seq > seq) };
  }

  /** The id of the newest event ("<run>-0" before any): catching up from it replays nothing. */
  lastId(): string {
    return `${this.run}-${this.seq}`;
  }

  /** The sequence number of the newest event (0 before any). */
  lastSeq(): number {
    return this.seq;
  }

  private finish(op: Operation, state: OperationState): void {
    op.state = state;
    delete op.waiting;
    op.finishedAt = new Date().toISOString();
    this.changed(op);
  }

  private changed(op: Operation): void {
    op.updatedAt = new Date().toISOString();
    this.publish({ type: 'operation', operation: snapshot(op) });
  }

  private publish(event: KumoEvent): void {
    const seq = ++this.seq;
    const e: SequencedEvent = { id: `${this.run}-${seq}`, seq, at: new Date().toISOString(), event };
    this.recent.push(e);
    if (this.recent.length > REPLAY) this.recent.shift();
    this.emitter.emit('event', e);
  }

  /** Forgets the oldest finished operations beyond KEEP_FINISHED; running ones always stay. */
  private prune(): void {
    const finished = [...this.ops.values()].filter((o) => o.state !== 'running');
    for (const o of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) this.ops.delete(o.id);
  }
}

/** A copy, so that what was handed out does not change under its reader. */
const snapshot = (op: Operation): Operation => ({ ...op, steps: [...op.steps], ...(op.waiting ? { waiting: { ...op.waiting } } : {}) });
