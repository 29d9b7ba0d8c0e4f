import type { Context } from '../context.js';
import { AuditService } from '../audit.js';
import { DEFAULT_WATCH, type HostHa, type WatchOptions } from '../../model/ha.js';
import type { InstanceRecord } from '../../store/instances.js';
import type { FenceOutcome } from './fence.js';

/** Who the audit log names for every step the watcher takes. */
export const HA_ACTOR = 'ha-watcher';
/** A host that could not be fenced is tried again every this many missed beats (its fence may have been set meanwhile). */
export const FENCE_RETRY_BEATS = 30;
/** An instance whose restart failed is tried again after this long, not at every beat. */
export const RESTART_RETRY_MS = 30_000;

/** What the watcher asks and does, given from outside: the live ones (live.ts), or stand-ins in tests. */
export interface HaDeps {
  now(): number;
  /** Whether the host's libvirt answers within the beat's short timeout. */
  libvirtAnswers(host: string): Promise<boolean>;
  /** Whether the host's own shell answers (told in the story; the libvirt beats decide). */
  shellAnswers(host: string): Promise<boolean>;
  fence(host: string): Promise<FenceOutcome>;
  /** Where an HA instance goes (create's placement), never to the hosts in `exclude`. */
  place(r: InstanceRecord, exclude: string[]): Promise<string>;
  /** Defines its domain on `to` and starts it (same disks, UUID and MACs). */
  start(r: InstanceRecord, to: string): Promise<void>;
  /** Removes a moved instance's domain from the host that came back, never starting it. */
  undefine(host: string, r: InstanceRecord): Promise<'none' | 'undefined' | 'was running'>;
  /** Keeps the copy of an HA instance's domain that a restart defines elsewhere. */
  keepCopy(host: string, r: InstanceRecord): Promise<void>;
  /** A resource event for live views (kumo serve: /api/v1/events). */
  event?(resource: 'host' | 'instance', name: string, action: string): void;
  /** A line for the operator (kumo ha run prints it). */
  log?(line: string): void;
}

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * The HA watcher: a beat asks every hypervisor's libvirt and shell; after `misses` missed
 * libvirt beats a host is DOWN, is fenced, and only when the fence said it is off are its HA
 * instances started elsewhere, each claimed first in the store by a compare-and-set (the record
 * moves only if it still names the dead host), so two watchers never start one instance twice.
 * A host that answers again rejoins: the domains of what moved away are removed there, unstarted.
 */
export class HaWatcher {
  private readonly missed = new Map<string, number>();
  private readonly failedAt = new Map<string, number>();
  private readonly audit: AuditService;

  constructor(private readonly ctx: Context, private readonly deps: HaDeps, private readonly opts: WatchOptions = DEFAULT_WATCH) {
    this.audit = new AuditService(ctx);
  }

  /**
   * One beat over every hypervisor with an HA instance (or a story not over yet), all at once; one
   * host's trouble does not stop the others. A host with nothing highly available is left alone:
   * fencing it would only destroy, and its libvirt's hiccups are not HA's business.
   */
  async beat(): Promise<void> {
    const withHa = new Set(this.ctx.instances.list().filter((i) => i.ha).map((i) => i.host));
    const hosts = this.ctx.hosts.list().filter((h) => h.uri && h.roles.includes('hypervisor')).map((h) => h.name)
      .filter((h) => withHa.has(h) || (this.ctx.hostHa.get(h)?.state ?? 'up') !== 'up');
    for (const h of this.missed.keys()) if (!hosts.includes(h)) this.missed.delete(h);
    await Promise.all(hosts.map((h) => this.watch(h).catch((e: unknown) => this.deps.log?.(`ha: ${h}: ${errorText(e)}`))));
  }

  /** Beats every `intervalMs` until `signal` aborts; each waits for the one before. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const started = this.deps.now();
      await this.beat();
      const wait = Math.max(0, this.opts.intervalMs - (this.deps.now() - started));
      await new Promise<void>((resolve) => {
        const stop = () => { clearTimeout(timer); resolve(); };
        // One listener per wait, removed when the wait ends: a long run must not pile them up.
        const timer = setTimeout(() => { signal.removeEventListener('abort', stop); resolve(); }, wait);
        signal.addEventListener('abort', stop, { once: true });
      });
    }
  }

  private async watch(host: string): Promise<void> {
    const [libvirt, shell] = await Promise.all([this.deps.libvirtAnswers(host), this.deps.shellAnswers(host)]);
    const state = this.ctx.hostHa.get(host)?.state ?? 'up';
    if (libvirt) {
      this.missed.set(host, 0);
      if (state !== 'up') await this.rejoin(host);
      await this.keepCopies(host);
      return;
    }
    const missed = (this.missed.get(host) ?? 0) + 1;
    this.missed.set(host, missed);
    if (state === 'up' && missed >= this.opts.misses) await this.down(host, missed, shell);
    else if (state === 'down' || (state === 'unfenced' && missed % FENCE_RETRY_BEATS === 0)) await this.fence(host);
    else if (state === 'fenced') await this.restartAll(host);
  }

  private async down(host: string, missed: number, shell: boolean): Promise<void> {
    const at = this.iso();
    if (!this.ctx.hostHa.change(host, ['up'], () => ({ state: 'down', downAt: at, moved: [] }))) return;
    this.record('ha.down', host, 'ok', `libvirt missed ${missed} beats; the host's shell ${shell ? 'answers (libvirtd is dead or stuck)' : 'does not answer either'}`);
    this.deps.event?.('host', host, 'down');
    await this.fence(host);
  }

  private async fence(host: string): Promise<void> {
    const outcome = await this.deps.fence(host);
    const at = this.iso();
    if (!outcome.ok) {
      const changed = this.ctx.hostHa.change(host, ['down', 'unfenced'], (s) => ({ ...s, state: 'unfenced', fenceError: outcome.error }));
      if (changed) this.record('ha.fence-failed', host, 'FENCE_FAILED', `${outcome.error}; its instances are not started elsewhere`);
      this.deps.event?.('host', host, 'unfenced');
      return;
    }
    const { fenceError: _, ...rest } = this.ctx.hostHa.get(host) ?? { state: 'down' as const, moved: [] };
    if (!this.ctx.hostHa.change(host, ['down', 'unfenced'], () => ({ ...rest, state: 'fenced', fencedAt: at }))) return;
    this.record('ha.fence', host, 'ok', 'the fence says the host is off');
    this.deps.event?.('host', host, 'fenced');
    await this.restartAll(host);
  }

  /** Starts each HA instance still recorded on the fenced host elsewhere, one after the other (placement counts each). */
  private async restartAll(host: string): Promise<void> {
    for (const r of this.ctx.instances.list().filter((i) => i.host === host && i.ha)) {
      const failed = this.failedAt.get(r.name);
      if (failed !== undefined && this.deps.now() - failed < RESTART_RETRY_MS) continue;
      await this.restart(host, r);
    }
  }

  private async restart(host: string, r: InstanceRecord): Promise<void> {
    let to: string;
    try {
      to = await this.deps.place(r, [host]);
    } catch (e) {
      return this.restartFailed(r, `no place to start it: ${errorText(e)}`);
    }
    // The claim: whoever moves the record first starts the instance; anyone else leaves it.
    if (!this.ctx.instances.moveIfOn(r.name, host, to)) return;
    try {
      await this.deps.start({ ...r, host: to }, to);
    } catch (e) {
      this.ctx.instances.moveIfOn(r.name, to, host); // given back: a later try (this watcher's or another's) claims it again
      return this.restartFailed(r, `could not start it on ${to}: ${errorText(e)}`);
    }
    this.failedAt.delete(r.name);
    this.ctx.hostHa.addMove(host, { instance: r.name, to, at: this.iso() });
    this.record('ha.restart', r.name, 'ok', `started on ${to} (its host ${host} is fenced), same disks, UUID and MACs`);
    this.deps.event?.('instance', r.name, 'moved');
  }

  private restartFailed(r: InstanceRecord, why: string): void {
    this.failedAt.set(r.name, this.deps.now());
    this.record('ha.restart', r.name, 'RESTART_FAILED', `${why}; tried again in ${RESTART_RETRY_MS / 1000} s`);
  }

  /** A host that answers again: what moved away is removed there (never started), then it is up. */
  private async rejoin(host: string): Promise<void> {
    const story: HostHa = this.ctx.hostHa.get(host) ?? { state: 'up', moved: [] };
    const removed: string[] = [];
    for (const m of story.moved) {
      const r = this.ctx.instances.get(m.instance);
      if (!r || r.host === host) continue;
      const outcome = await this.deps.undefine(host, r);
      if (outcome !== 'none') removed.push(outcome === 'was running' ? `${r.name} (WAS RUNNING: ended)` : r.name);
    }
    const at = this.iso();
    if (!this.ctx.hostHa.change(host, ['down', 'fenced', 'unfenced'], (s) => ({ ...s, state: 'up', rejoinedAt: at }))) return;
    this.record('ha.rejoin', host, 'ok', removed.length ? `domains of moved instances removed there, unstarted: ${removed.join(', ')}` : 'nothing of it had moved');
    this.deps.event?.('host', host, 'rejoined');
  }

  private async keepCopies(host: string): Promise<void> {
    for (const r of this.ctx.instances.list().filter((i) => i.host === host && i.ha)) {
      await this.deps.keepCopy(host, r).catch((e: unknown) => this.deps.log?.(`ha: could not copy ${r.name}'s domain: ${errorText(e)}`));
    }
  }

  private record(action: string, target: string, result: string, detail: string): void {
    this.audit.record({ actor: HA_ACTOR, via: 'operation', action, target, result, detail });
    this.deps.log?.(`${action} ${target}: ${detail}`);
  }

  private iso(): string {
    return new Date(this.deps.now()).toISOString();
  }
}
