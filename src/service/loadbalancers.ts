import { join } from 'node:path';
import type { Context } from './context.js';
import { InstanceService } from './instances.js';
import { Haproxy } from '../drivers/daemons/haproxy/haproxy.js';
import type { ServerHealth } from '../drivers/daemons/haproxy/stats.js';
import { NginxWaf } from '../drivers/daemons/nginx-waf/nginx-waf.js';
import type { WafEvent } from '../drivers/daemons/nginx-waf/audit-log.js';
import { HostLinks } from '../drivers/net/links.js';
import { checkPort } from '../drivers/daemons/config-values.js';
import { KumoError, invalid, notFound } from '../model/errors.js';
import { checkName } from '../model/names.js';
import { parseIp } from '../model/checks.js';
import type { LoadBalancerRecord } from '../store/load-balancers.js';
import { machineActor, type Actor } from '../model/actor.js';
import { sees } from './scope.js';
import { onRecover, withUndo } from './undo.js';
import { sleep } from '../exec/process.js';

/** The journal's undo of a load balancer create (service/undo.ts), run in-process or after a crash. */
const UNDO_CREATE = 'undo-load-balancer-create';
/** The journal step that puts a drained instance back into rotation (a migration that failed or was killed). */
export const UNDRAIN = 'undrain-instance';

export interface CreateLoadBalancerRequest {
  name: string;
  host: string;
  /** ADDRESS or ADDRESS:PORT (default port 80); the address must be the host's. */
  frontend: string;
  network: string;
  instances: string[];
  backendPort?: number;
  waf?: { enabled: boolean; paranoia?: number };
}

export interface LoadBalancerView extends LoadBalancerRecord {
  running: boolean;
  wafRunning?: boolean;
  backends: { instance: string; address?: string; status: string; check?: string }[];
}

/** Health checks every second; two failures take a backend out, two passes put it back. */
export const LB_HEALTH = { path: '/', intervalMs: 1000, fall: 2, rise: 2 };
const FIRST_INTERNAL_PORT = 18080;
/** How long a drain lets an instance finish the requests it has before it moves anyway. */
const DRAIN_WAIT_MS = 10_000;

function checkParanoia(paranoia: number): number {
  if (!Number.isInteger(paranoia) || paranoia < 1 || paranoia > 4) throw invalid(`paranoia level ${paranoia} is not 1-4`, 'use 1 (few false positives) to 4 (strictest)');
  return paranoia;
}

/**
 * Load balancers (the course's LB: the only way in): HAProxy on an lb host balancing to
 * instances' port 8080 with active health checks, and optionally nginx + ModSecurity (WAF) in
 * front of it on the public port. The store holds the intent; `sync` makes the host match it
 * (instance addresses come from their DHCP leases, so a migration changes nothing).
 */
export class LoadBalancerService {
  /** `actor`: who asks; it sees and makes load balancers of its project, over its instances (root in `default` by default). */
  constructor(private readonly ctx: Context, private readonly actor: Actor = machineActor()) {}

  async create(req: CreateLoadBalancerRequest): Promise<LoadBalancerView> {
    checkName('load balancer', req.name);
    if (this.ctx.loadBalancers.get(req.name)) throw new KumoError('ALREADY_EXISTS', `load balancer "${req.name}" already exists`, 'pick another name, or delete it first');
    const host = this.ctx.hosts.get(req.host);
    if (!host) throw notFound(`host "${req.host}" is not registered`, 'see `kumo host list`');
    if (!host.roles.includes('lb')) throw invalid(`host "${req.host}" does not have the lb role (${host.roles.join(', ')})`, 'pick a host with the lb role (kumo host list)');
    const m = /^([\d.]+)(?::(\d+))?$/.exec(req.frontend);
    if (!m) throw invalid(`frontend "${req.frontend}" is not ADDRESS[:PORT]`, 'e.g. --frontend 10.5.1.213:80');
    parseIp(m[1]!, 'frontend address');
    const port = checkPort(m[2] ? Number(m[2]) : 80, 'frontend port');
    const backendPort = checkPort(req.backendPort ?? 8080, 'backend port');
    const own = await new HostLinks(this.ctx.shellOf(req.host)).addresses();
    if (!own.some((a) => a.address === m[1])) {
      throw invalid(`${m[1]} is not an address of host ${req.host} (it has ${own.map((a) => a.address).filter((a) => a !== '127.0.0.1').join(', ') || 'none'})`,
        'give the LB host\'s own frontend address');
    }
    if (!req.instances.length) throw invalid('a load balancer needs at least one --instance', 'e.g. --instance web1 --instance web2');
    for (const i of req.instances) this.checkInstance(i, req.network);
    const paranoia = checkParanoia(req.waf?.paranoia ?? 1);
    const taken = this.ctx.loadBalancers.list().filter((l) => l.host === req.host).map((l) => l.internalPort);
    let internalPort = FIRST_INTERNAL_PORT;
    while (taken.includes(internalPort)) internalPort++;
    const record: LoadBalancerRecord = {
      name: req.name, host: req.host, frontend: { address: m[1]!, port }, instances: [...new Set(req.instances)],
      network: req.network, backendPort, internalPort,
      waf: req.waf ? { enabled: req.waf.enabled, paranoia } : null, createdAt: new Date().toISOString(), project: this.actor.project,
    };
    await withUndo(this.ctx, `create load-balancer ${req.name}`, async (undo, step) => {
      undo({ kind: 'service', handler: UNDO_CREATE, args: { name: req.name, host: req.host, createdAt: record.createdAt } });
      this.ctx.loadBalancers.put(record);
      step();
      await this.sync(req.name, step);
    });
    return this.get(req.name);
  }

  list(): Promise<LoadBalancerView[]> {
    return Promise.all(this.ctx.loadBalancers.list(this.actor.project).map((l) => this.view(l)));
  }

  async get(name: string): Promise<LoadBalancerView> {
    return this.view(this.record(name));
  }

  /** Changes which instances are behind it, then syncs. */
  setInstances(name: string, instances: string[]): Promise<LoadBalancerView> {
    return this.update(name, { instances });
  }

  /**
   * Changes the instances behind it and/or its WAF (on, detection only, or none), then syncs in
   * place: HAProxy and nginx reload, nothing is recreated (with or without the WAF in front,
   * HAProxy or nginx takes the public port over).
   */
  async update(name: string, change: { instances?: string[]; waf?: { enabled: boolean; paranoia: number } | null }): Promise<LoadBalancerView> {
    const r = this.record(name);
    for (const i of change.instances ?? []) this.checkInstance(i, r.network);
    if (change.waf) checkParanoia(change.waf.paranoia);
    this.ctx.loadBalancers.put({
      ...r,
      ...(change.instances ? { instances: [...new Set(change.instances)] } : {}),
      ...(change.waf !== undefined ? { waf: change.waf && { enabled: change.waf.enabled, paranoia: change.waf.paranoia } } : {}),
    });
    await this.sync(name);
    return this.get(name);
  }

  /**
   * Makes the LB host match the record: HAProxy with the instances' current addresses (an
   * instance without an address yet is left out until the next sync), and the WAF in front when
   * it is on. Reloads keep connections.
   */
  async sync(name: string, step: () => void = () => undefined): Promise<void> {
    const r = this.record(name);
    try {
      await this.syncDaemons(r, step);
    } catch (e) {
      throw await this.whichDied(r, e);
    }
  }

  /**
   * A sync that failed because HAProxy or the WAF's nginx died under it (killed, crashed) says
   * which one, on which host, and that `kumo lb sync` starts it again; other errors pass as they are.
   */
  private async whichDied(r: LoadBalancerRecord, e: unknown): Promise<unknown> {
    const { haproxy, waf } = this.daemons(r);
    const down = [
      ...((await haproxy.pid().catch(() => undefined)) === undefined ? ['HAProxy'] : []),
      ...(r.waf && (await waf.pid().catch(() => undefined)) === undefined ? ['the WAF\'s nginx'] : []),
    ];
    if (!down.length || !this.ctx.loadBalancers.get(r.name)) return e;
    const why = e instanceof Error ? e.message : String(e);
    return new KumoError('HOST_UNREACHABLE', `load balancer "${r.name}": ${down.join(' and ')} on host "${r.host}" is not running (${why})`,
      `\`kumo lb sync ${r.name}\` starts it again with kumo's config (\`kumo lb list\` shows it STOPPED until then); after a failed create, run the create again`, { cause: e });
  }

  private async syncDaemons(r: LoadBalancerRecord, step: () => void): Promise<void> {
    const { haproxy, waf } = this.daemons(r);
    const addresses = await this.addresses(r);
    const backends = r.instances.filter((i) => addresses.has(i)).map((i) => ({ name: i, address: addresses.get(i)!, port: r.backendPort }));
    const internal = { address: '127.0.0.1', port: r.internalPort };
    if (r.waf) {
      await haproxy.apply({ name: r.name, frontend: internal, backends, health: LB_HEALTH });
      step();
      await waf.apply({ name: r.name, listen: r.frontend, upstream: internal, enabled: r.waf.enabled, paranoia: r.waf.paranoia });
    } else {
      await waf.stop(); // it held the public port
      await haproxy.apply({ name: r.name, frontend: r.frontend, backends, health: LB_HEALTH });
    }
  }

  /**
   * Takes an instance out of the rotation of every load balancer it serves, before a live
   * migration: new requests go to the others and the ones it has finish (up to DRAIN_WAIT_MS).
   * Its switch-over pause then holds no request, and a health check failed in that pause closes
   * none (on-marked-down shutdown-sessions would fail them). Returns the load balancers it was
   * drained from; one whose HAProxy does not answer serves nothing, and is passed by. One where
   * no other server is up is passed by too: draining its only server would fail every request
   * for the whole migration, where staying in rotation fails at most those of the pause.
   */
  async drain(instance: string): Promise<string[]> {
    // Every project's load balancers (the instance's own may not be the caller's): servedBy reads the store.
    const drained: { name: string; haproxy: Haproxy }[] = [];
    for (const r of this.servedBy(instance)) {
      const { haproxy } = this.daemons(r);
      const others = (await haproxy.health().catch(() => [])).filter((h) => h.backend === r.name && h.server !== instance && h.status === 'UP');
      if (!others.length) continue;
      const ok = await haproxy.setServerState(r.name, instance, 'drain').then(() => true, () => false);
      if (ok) drained.push({ name: r.name, haproxy });
    }
    const deadline = Date.now() + DRAIN_WAIT_MS;
    for (const { haproxy } of drained) {
      const busy = async () => ((await haproxy.health().catch(() => [])).find((h) => h.server === instance)?.sessions ?? 0) > 0;
      while ((await busy()) && Date.now() < deadline) await sleep(100);
    }
    return drained.map((d) => d.name);
  }

  /** Puts an instance back into the rotation of every load balancer it serves (after drain; idempotent). */
  async undrain(instance: string): Promise<void> {
    for (const r of this.servedBy(instance)) {
      await this.daemons(r).haproxy.setServerState(r.name, instance, 'ready').catch(() => undefined);
    }
  }

  private servedBy(instance: string): LoadBalancerRecord[] {
    return this.ctx.loadBalancers.list().filter((r) => r.instances.includes(instance));
  }

  /** Why the LB host does not match the record (empty: it does): what `sync` would fix. */
  async drift(name: string): Promise<string[]> {
    const r = this.record(name);
    const { haproxy, waf } = this.daemons(r);
    if ((await haproxy.pid().catch(() => undefined)) === undefined) return ['HAProxy does not run'];
    const why: string[] = [];
    if (r.waf && (await waf.pid().catch(() => undefined)) === undefined) why.push('the WAF does not run');
    const addresses = await this.addresses(r);
    const want = r.instances.filter((i) => addresses.has(i)).map((i) => `${i}=${addresses.get(i)}:${r.backendPort}`).sort();
    const have = (await haproxy.health().catch(() => [])).map((h) => `${h.server}=${h.address}`).sort();
    if (want.join() !== have.join()) why.push(`backends are ${have.join(', ') || 'none'}, should be ${want.join(', ') || 'none'}`);
    return why;
  }

  async delete(name: string): Promise<void> {
    const r = this.record(name);
    await this.stopDaemons(r);
    await this.ctx.shellOf(r.host).run('rm', ['-rf', '--', this.dir(r)]);
    this.ctx.loadBalancers.delete(name);
  }

  /**
   * Undoes a create (an error in it, or kumo killed in it): stops the daemons it started on its
   * host, removes their folder and forgets the record it wrote (not another create's of the same
   * name, whose daemons and folder are then left alone). Idempotent.
   */
  async undoCreate(args: { name: string; host: string; createdAt: string }): Promise<void> {
    const other = this.ctx.loadBalancers.get(args.name);
    if (other && other.createdAt !== args.createdAt) return;
    const r = { name: args.name, host: args.host } as const;
    // Only a host still registered is reached (a removed host took its daemons with it).
    if (this.ctx.hosts.get(args.host)) {
      await this.stopDaemons(r);
      await this.ctx.shellOf(args.host).run('rm', ['-rf', '--', this.dir(r)]);
    }
    if (other) this.ctx.loadBalancers.delete(args.name);
  }

  /** Recent requests the WAF blocked (or, in detection-only mode, let through but flagged). */
  async wafLog(name: string, limit = 50): Promise<WafEvent[]> {
    const r = this.record(name);
    if (!r.waf) throw invalid(`load balancer "${name}" has no web application firewall`, `create it with --waf`);
    return this.daemons(r).waf.recentEvents(limit);
  }

  private async view(r: LoadBalancerRecord): Promise<LoadBalancerView> {
    const { haproxy, waf } = this.daemons(r);
    const running = (await haproxy.pid().catch(() => undefined)) !== undefined;
    const health: ServerHealth[] = running ? await haproxy.health().catch(() => []) : [];
    const addresses = await this.addresses(r);
    return {
      ...r, running,
      ...(r.waf ? { wafRunning: (await waf.pid().catch(() => undefined)) !== undefined } : {}),
      backends: r.instances.map((i) => {
        const h = health.find((s) => s.server === i);
        const address = addresses.get(i);
        return { instance: i, ...(address ? { address } : {}), status: h?.status ?? (address ? 'NOT SYNCED' : 'NO ADDRESS'), ...(h?.checkInfo ? { check: h.checkInfo } : {}) };
      }),
    };
  }

  /** Each instance's address on the LB's network, from its DHCP lease. */
  private async addresses(r: LoadBalancerRecord): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const known = (await new InstanceService(this.ctx, machineActor(r.project)).list()).filter((i) => r.instances.includes(i.name));
    for (const i of known) {
      const ip = i.nics.find((n) => n.network === r.network)?.ipv4;
      if (ip) out.set(i.name, ip);
    }
    return out;
  }

  private checkInstance(name: string, network: string): void {
    const i = this.ctx.instances.get(name);
    if (!i || !sees(this.actor, i.project)) throw notFound(`instance "${name}" does not exist`, 'see `kumo instance list`');
    if (!i.nics.some((n) => n.network === network)) {
      throw invalid(`instance "${name}" has no NIC on network "${network}" (it is on ${i.nics.map((n) => n.network).join(', ')})`, 'give the network the LB and its instances share, with --network');
    }
  }

  private async stopDaemons(r: Pick<LoadBalancerRecord, 'name' | 'host'>): Promise<void> {
    const { haproxy, waf } = this.daemons(r);
    await waf.stop();
    await haproxy.stop();
  }

  private daemons(r: Pick<LoadBalancerRecord, 'name' | 'host'>) {
    const shell = this.ctx.shellOf(r.host);
    return { haproxy: new Haproxy(join(this.dir(r), 'haproxy'), shell), waf: new NginxWaf(join(this.dir(r), 'waf'), shell) };
  }

  private dir(r: Pick<LoadBalancerRecord, 'name'>): string {
    return join(this.ctx.paths.home, 'lb', r.name);
  }

  private record(name: string): LoadBalancerRecord {
    const r = this.ctx.loadBalancers.get(name);
    // Another project's load balancer is answered exactly like a missing one.
    if (!r || !sees(this.actor, r.project)) throw notFound(`load balancer "${name}" does not exist`, 'see `kumo lb list`');
    return r;
  }
}


onRecover(UNDO_CREATE, async (ctx, args) => {
  await new LoadBalancerService(ctx).undoCreate({ name: args.name ?? '', host: args.host ?? '', createdAt: args.createdAt ?? '' });
});

onRecover(UNDRAIN, async (ctx, args) => {
  await new LoadBalancerService(ctx).undrain(args.instance ?? '');
});
