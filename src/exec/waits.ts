import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Waits that say what they wait for. Any layer that waits (a poll loop, a daemon's readiness, a
 * slow libvirt call) opens a `waiting(what)`; if it lasts over WAIT_FIRST_MS, whoever listens is
 * told what it waits for and for how long, then every WAIT_EVERY_MS until it ends. Who listens
 * is the face's business: the CLI prints to stderr (reportWaits), an API operation puts it in
 * its `waiting` field and publishes an event (reportingWaitsTo). The listener is found through
 * the async context, so the code that waits needs no extra parameter.
 */
export interface WaitNotice {
  /** What is awaited, as it completes "waiting for ...": `a DHCP lease for instance "web1"`. */
  what: string;
  elapsedMs: number;
  /** What such a wait usually means, where kumo knows. */
  hint?: string;
}
export type WaitListener = (notice: WaitNotice) => void;

/** The issue's bar: a step that takes longer than this says what it waits for. */
export const WAIT_FIRST_MS = 2_000;
export const WAIT_EVERY_MS = 5_000;

const scoped = new AsyncLocalStorage<WaitListener>();
let processWide: WaitListener | undefined;

/** Where waits go when no scope says otherwise (the CLI: its terminal; the server: its log). */
export function reportWaits(listener: WaitListener | undefined): void {
  processWide = listener;
}

/** Runs `work` with its waits (and those of everything it starts) going to `listener`. */
export function reportingWaitsTo<T>(listener: WaitListener, work: () => T): T {
  return scoped.run(listener, work);
}

/** Tells the current listener about a wait measured elsewhere (a libvirt call's own watch). */
export function tellWait(notice: WaitNotice): void {
  const listener = scoped.getStore() ?? processWide;
  try {
    listener?.(notice);
  } catch {
    // A broken listener (a closed terminal) must not break the work that waits.
  }
}

export interface Waiting {
  /** The wait goes on, for something else now (a lease came, now HTTP): its clock starts again. */
  now(what: string, hint?: string): void;
  /** The wait is over: no more notices. */
  done(): void;
}

/** Starts watching a wait: silent for WAIT_FIRST_MS, then a notice every WAIT_EVERY_MS until done(). */
export function waiting(what: string, hint?: string): Waiting {
  // Taken now: the timers below run in this async context too, but done() may come from another.
  const listener = scoped.getStore() ?? processWide;
  let current = { what, hint, started: Date.now() };
  let timer: NodeJS.Timeout | undefined;
  let over = false;
  const tell = () => {
    try {
      listener?.({ what: current.what, elapsedMs: Date.now() - current.started, ...(current.hint ? { hint: current.hint } : {}) });
    } catch {
      // as in tellWait
    }
    timer = setTimeout(tell, WAIT_EVERY_MS);
    timer.unref();
  };
  const arm = () => {
    clearTimeout(timer);
    if (!listener || over) return;
    timer = setTimeout(tell, WAIT_FIRST_MS);
    timer.unref(); // a wait never keeps the process alive by itself
  };
  arm();
  return {
    now(next, nextHint) {
      if (next === current.what) return;
      current = { what: next, hint: nextHint, started: Date.now() };
      arm();
    },
    done() {
      over = true;
      clearTimeout(timer);
      timer = undefined;
    },
  };
}

/** Runs `work`, saying what it waits for when it takes over WAIT_FIRST_MS. */
export async function waitingFor<T>(what: string, work: () => Promise<T>, hint?: string): Promise<T> {
  const w = waiting(what, hint);
  try {
    return await work();
  } finally {
    w.done();
  }
}

/** "waiting for X: 12 s (hint)": one wording for every face that prints a notice. */
export const describeWait = (n: WaitNotice, lead = 'waiting for'): string =>
  `${lead} ${n.what}: ${Math.round(n.elapsedMs / 1000)} s${n.hint ? ` (${n.hint})` : ''}`;
