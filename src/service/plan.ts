import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Context } from './context.js';
import { ImageService } from './images.js';
import { InstanceService } from './instances.js';
import { LabService } from './lab.js';
import { LoadBalancerService } from './loadbalancers.js';
import { ShareService } from './shares.js';
import { FirewallService } from './firewall.js';
import { FlavorService } from './flavors.js';
import { HostService, chooseHost } from './host.js';
import { MonitoringService } from './monitoring.js';
import { SiteService, networkResource, parseNetworkResource } from './site.js';
import { KumoError } from '../model/errors.js';
import { dhcpPlan } from '../model/lab.js';
import { DatacenterSchema, groupMembers, type Datacenter, type InstanceGroup } from '../model/datacenter.js';
import { parseYamlFile } from '../model/yaml-file.js';
import { cloudConfigText, nfsMountConfig } from '../drivers/image/seed.js';
import type { ResourceKind } from '../store/datacenter-resources.js';

type LoadBalancerSpec = Datacenter['loadbalancers'][string];

type Hosts = NonNullable<Datacenter['hosts']>;
/** The hypervisor nodes of the file's hosts. */
const hypervisorsOf = (hosts: Hosts) => Object.entries(hosts.nodes).filter(([, n]) => n.roles.includes('hypervisor'));
/** Each hypervisor of the file's hosts with each instance segment it links. */
const hostNetworks = (hosts: Hosts): [string, string][] =>
  hypervisorsOf(hosts).flatMap(([node, n]) => Object.keys(n.links).filter((seg) => hosts.segments[seg]?.instances).map((seg): [string, string] => [node, seg]));
/** Where a group without `hosts` goes on real hosts: the file's hypervisors only (not this machine's `local`). */
const fileHypervisors = (dc: Datacenter): string[] | undefined => (dc.hosts ? hypervisorsOf(dc.hosts).map(([x]) => x) : undefined);
/** The networks of a group without `networks` on real hosts: the instance segments every hypervisor links. */
const fileInstanceSegments = (dc: Datacenter): string[] | undefined => {
  const hosts = dc.hosts;
  if (!hosts) return undefined;
  const hvs = hypervisorsOf(hosts);
  return Object.keys(hosts.segments).filter((seg) => hosts.segments[seg]!.instances && hvs.every(([, n]) => seg in n.links));
};
const wafOf = (l: LoadBalancerSpec) => (l.waf ? { enabled: l.waf.enabled, paranoia: l.waf.paranoia } : null);
const wafWords = (w: { enabled: boolean; paranoia: number } | null) => (!w ? 'none' : `${w.enabled ? 'on' : 'detection only'} (paranoia ${w.paranoia})`);

export type Action = 'create' | 'update' | 'start' | 'recreate' | 'delete';

export interface Change {
  action: Action;
  kind: ResourceKind;
  name: string;
  /** Why, in words (what differs between the file and what runs). */
  why: string;
  /** An instance to create: the hypervisor the plan placed it on (when the hosts are known yet). */
  host?: string;
}

/**
 * `kumo plan|apply|destroy FILE`: observe what runs, compare it with the file, act on the
 * difference (the controller pattern). apply re-plans from reality every time, so it converges
 * from any partial state: an interrupted apply, an instance deleted by hand, a dead daemon.
 */
export class PlanService {
  constructor(private readonly ctx: Context) {}

  async load(file: string): Promise<Datacenter> {
    const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new KumoError('NOT_FOUND', `cannot read datacenter file ${file}: ${e.code ?? e.message}`, 'give the path of a datacenter YAML file, e.g. examples/course-datacenter.yaml');
    });
    return this.parse(text, file);
  }

  /** A datacenter file given as text (the API's request body); errors name `file` with line and column. */
  parse(text: string, file: string): Datacenter {
    return parseYamlFile(text, DatacenterSchema, file);
  }

  /** What apply would do, in order. */
  async plan(dc: Datacenter): Promise<Change[]> {
    this.checkOwnership(dc);
    const changes: Change[] = [];
    const add = (action: Action, kind: ResourceKind, name: string, why: string, host?: string) =>
      changes.push({ action, kind, name, why, ...(host ? { host } : {}) });

    if (dc.lab) {
      const lab = new LabService(this.ctx);
      const state = lab.state();
      if (!state) add('create', 'lab', dc.lab.name, 'no lab is up');
      else if (state.bare) {
        throw new KumoError('IN_USE', `lab "${state.spec.name}" is up bare (machines and cables only)`, 'describe its nodes under hosts: instead of lab: (kumo lab status shows their netns and URIs), or take it down first (kumo lab down)');
      } else if (JSON.stringify(state.spec) !== JSON.stringify(dc.lab)) {
        throw new KumoError('IN_USE', `lab "${state.spec.name}" is up with another topology than the file's`, 'take it down first (kumo lab down), or make the file\'s lab the same');
      } else {
        const problems = await this.labProblems(lab);
        if (problems.length) add('update', 'lab', dc.lab.name, problems.join('; '));
      }
    }
    if (dc.hosts) await this.planHosts(dc.hosts, add);
    for (const [name, image] of Object.entries(dc.images)) {
      const state = await this.imageState(name, image);
      if (state === 'missing') add('create', 'image', name, `build ${image.build}`);
      if (state === 'stale') add('update', 'image', name, `registered from an older ${image.build} recipe`);
    }
    for (const [name, f] of Object.entries(dc.flavors)) {
      const have = this.ctx.flavors.get(name);
      const spec = `${f.vcpus} vCPU / ${f.ram_mib} MiB / ${f.disk_gib} GiB`;
      if (!have) add('create', 'flavor', name, spec);
      else if (have.vcpus !== f.vcpus || have.ramMiB !== f.ram_mib || have.diskGiB !== f.disk_gib) {
        if (have.builtin) throw new KumoError('IN_USE', `flavor "${name}" is built in (${have.vcpus} vCPU / ${have.ramMiB} MiB / ${have.diskGiB} GiB) and cannot be redefined`, `give the file's flavor another name than ${name}`);
        add('update', 'flavor', name, `is ${have.vcpus} vCPU / ${have.ramMiB} MiB / ${have.diskGiB} GiB, should be ${spec} (instances keep their size)`);
      }
    }
    for (const [name, s] of Object.entries(dc.shares)) {
      const have = this.ctx.shares.get(name);
      if (!have) add('create', 'share', name, `serve to ${s.networks.join(', ')}`);
      else if (have.networks.join() !== s.networks.join() || have.readOnly !== s.read_only) {
        add('update', 'share', name, `networks/access are ${have.networks.join(', ')}${have.readOnly ? ' (ro)' : ''}, should be ${s.networks.join(', ')}${s.read_only ? ' (ro)' : ''}`);
      } else {
        const missing = Object.keys(s.files).filter((f) => !existsSync(join(have.path, f)));
        if (missing.length) add('update', 'share', name, `missing ${missing.join(', ')}`);
      }
    }
    // One listing per host for all instances, not a full read of each.
    const states = new Map((await new InstanceService(this.ctx).list()).map((i) => [i.name, i.state]));
    const wanted = new Set<string>();
    const placer = await this.dryPlacer(dc, changes.some((c) => c.kind === 'lab' || c.kind === 'host'));
    for (const [group, g] of Object.entries(dc.instances)) {
      const flavor = this.flavorOf(dc, group, g);
      for (const name of groupMembers(group, g.count)) {
        wanted.add(name);
        const record = this.ctx.instances.get(name);
        if (!record) { add('create', 'instance', name, `${g.image}, ${g.flavor}`, placer(name, flavor, g)); continue; }
        if (record.image !== g.image || record.vcpus !== flavor.vcpus || record.ramMiB !== flavor.ramMiB) {
          add('recreate', 'instance', name, `is ${record.image}/${record.vcpus} vCPU/${record.ramMiB} MiB, should be ${g.image}/${g.flavor}`, placer(name, flavor, g));
          continue;
        }
        const state = states.get(name);
        if (state === 'missing') add('recreate', 'instance', name, 'its domain was deleted outside kumo');
        else if (state === 'shut off' || state === 'crashed') add('start', 'instance', name, `it is ${state}`);
      }
    }
    for (const { name } of this.ctx.datacenterResources.owned(dc.name, 'instance')) {
      if (!wanted.has(name)) add('delete', 'instance', name, 'no longer in the file');
    }
    const lbs = new LoadBalancerService(this.ctx);
    for (const [name, l] of Object.entries(dc.loadbalancers)) {
      const have = this.ctx.loadBalancers.get(name);
      const members = groupMembers(l.instances, dc.instances[l.instances]!.count);
      if (!have) { add('create', 'loadbalancer', name, `${l.frontend.address}:${l.frontend.port} -> ${l.instances} (${members.length})`); continue; }
      const spec = have.host === l.host && have.frontend.address === l.frontend.address && have.frontend.port === l.frontend.port
        && have.network === l.network && have.backendPort === l.backend_port;
      if (!spec) { add('recreate', 'loadbalancer', name, 'its host, frontend, network or port changed'); continue; }
      // The WAF and the backends change in place (reloads), without taking the website down.
      const changed = [
        ...(JSON.stringify(have.waf) !== JSON.stringify(wafOf(l)) ? [`WAF ${wafWords(have.waf)} -> ${wafWords(wafOf(l))}`] : []),
        ...(have.instances.join() !== members.join() ? [`backends ${have.instances.join(', ')} -> ${members.join(', ')}`] : []),
      ];
      if (changed.length) { add('update', 'loadbalancer', name, changed.join('; ')); continue; }
      const drift = await lbs.drift(name);
      if (drift.length) add('update', 'loadbalancer', name, drift.join('; '));
    }
    const firewall = new FirewallService(this.ctx);
    if (firewall.derive(dc).length) {
      const stale = await firewall.drift(dc);
      if (stale.length) add(this.ctx.datacenterResources.owner('firewall', dc.name) ? 'update' : 'create', 'firewall', dc.name, `access rules to load on ${stale.join(', ')}`);
    }
    if (dc.edge) {
      const owned = this.ctx.datacenterResources.owner('edge', dc.edge.host);
      const drift = await firewall.edgeDrift(dc);
      if (!owned) add('create', 'edge', dc.edge.host, `route ${dc.edge.outside} (${dc.edge.public_address}) with SNAT${dc.edge.forwards.map((f) => `, :${f.port} -> ${f.to}`).join('')}${dc.edge.ssh ? ', SSH in' : ''}`);
      else if (drift.length) add('update', 'edge', dc.edge.host, drift.join('; '));
    }
    const collector = await new MonitoringService(this.ctx).collectorDaemon();
    if (dc.monitoring) {
      const want = { intervalS: dc.monitoring.interval, retention: dc.monitoring.retention };
      const owned = this.ctx.datacenterResources.owner('monitoring', dc.name) !== undefined;
      if (!collector) add(owned ? 'update' : 'create', 'monitoring', dc.name, `collector every ${want.intervalS} s, history kept ${want.retention}${owned ? ' (it does not run)' : ''}`);
      else if (JSON.stringify(collector.settings) !== JSON.stringify(want)) add('update', 'monitoring', dc.name, `collector runs every ${collector.settings.intervalS} s, kept ${collector.settings.retention}; should be ${want.intervalS} s, ${want.retention}`);
    }
    for (const { kind, name } of this.ctx.datacenterResources.owned(dc.name)) {
      if (kind === 'monitoring' && !dc.monitoring) add('delete', kind, name, 'no longer in the file');
      if (kind === 'flavor' && !dc.flavors[name]) add('delete', kind, name, 'no longer in the file');
      if (kind === 'edge' && dc.edge?.host !== name) add('delete', kind, name, 'no longer in the file');
      if (kind === 'loadbalancer' && !dc.loadbalancers[name]) add('delete', kind, name, 'no longer in the file');
      if (kind === 'share' && !dc.shares[name]) add('delete', kind, name, 'no longer in the file');
      if (kind === 'host' && !dc.hosts?.nodes[name]) add('delete', kind, name, 'no longer in the file\'s hosts');
      if (kind === 'dhcp' && !dc.hosts?.segments[name]?.instances) add('delete', kind, name, 'no longer an instance segment of the file\'s hosts');
      if (kind === 'network' && !(dc.hosts && hostNetworks(dc.hosts).some(([node, seg]) => networkResource(node, seg) === name))) add('delete', kind, name, 'no longer in the file\'s hosts');
    }
    return changes;
  }

  /** Makes it so; returns what it did (empty: nothing to do). */
  async apply(dc: Datacenter, onChange: (c: Change) => void = () => undefined): Promise<Change[]> {
    const changes = await this.plan(dc);
    const instances = new InstanceService(this.ctx);
    const lbs = new LoadBalancerService(this.ctx);
    const started: string[] = [];
    const order: ResourceKind[] = ['monitoring', 'lab', 'edge', 'image', 'flavor', 'share', 'loadbalancer', 'instance', 'dhcp', 'network', 'host'];
    // Deletions first (load balancers before the instances behind them, hosts' DHCP, networks and
    // registrations after the instances on them), then the rest in dependency order.
    const deletions = changes.filter((c) => c.action === 'delete').sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind));
    for (const c of deletions) {
      onChange(c);
      if (c.kind === 'edge') await new FirewallService(this.ctx).removeEdge(c.name);
      if (c.kind === 'loadbalancer') await lbs.delete(c.name);
      if (c.kind === 'instance') await instances.delete(c.name);
      if (c.kind === 'share') await new ShareService(this.ctx).delete(c.name);
      if (c.kind === 'flavor') new FlavorService(this.ctx).delete(c.name);
      if (c.kind === 'monitoring') await new MonitoringService(this.ctx).stopCollector();
      if (c.kind === 'dhcp') await new SiteService(this.ctx).removeDhcp(c.name);
      if (c.kind === 'network') { const { node, seg } = parseNetworkResource(c.name); await new SiteService(this.ctx).removeNetwork(node, seg); }
      if (c.kind === 'host') new SiteService(this.ctx).unregister(c.name);
      this.ctx.datacenterResources.release(c.kind, c.name);
    }
    const rest = changes.filter((c) => c.action !== 'delete');
    // A share's CIDR comes from network_subnets: record the hosts' segments (silently: a record, not a resource).
    if (dc.hosts) new SiteService(this.ctx).recordSubnets(dc.hosts);
    for (const kind of ['lab', 'host', 'network', 'dhcp', 'image', 'flavor', 'share', 'instance'] as const) {
      for (const c of rest.filter((x) => x.kind === kind)) {
        onChange(c);
        await this.act(dc, c, started);
        this.ctx.datacenterResources.claim(dc.name, c.kind, c.name);
      }
    }
    // Load balancers need their instances' addresses: wait for every new or restarted one.
    // A real image under TCG takes minutes to boot and run cloud-init.
    for (const name of started) await instances.waitReady(name, 900_000);
    // Access rules last: everything they let through exists by now.
    // The edge after both: it forwards to load balancers that run and are let in by then.
    // Monitoring last: it reads every hypervisor and instance there is by then.
    for (const c of [...rest.filter((x) => x.kind === 'loadbalancer' || x.kind === 'firewall'), ...rest.filter((x) => x.kind === 'edge' || x.kind === 'monitoring')]) {
      onChange(c);
      await this.act(dc, c, started);
      this.ctx.datacenterResources.claim(dc.name, c.kind, c.name);
    }
    return changes;
  }

  /** Removes what the file owns (what an apply of it made), newest layers first. */
  async destroy(dc: Datacenter, onChange: (c: Change) => void = () => undefined): Promise<Change[]> {
    const done: Change[] = [];
    const owned = this.ctx.datacenterResources.owned(dc.name);
    const step = async (kind: ResourceKind, act: (name: string) => Promise<unknown>) => {
      for (const r of owned.filter((o) => o.kind === kind)) {
        const c: Change = { action: 'delete', kind, name: r.name, why: `made by ${dc.name}` };
        onChange(c);
        await act(r.name);
        this.ctx.datacenterResources.release(kind, r.name);
        done.push(c);
      }
    };
    await step('monitoring', () => new MonitoringService(this.ctx).stopCollector());
    await step('edge', (n) => new FirewallService(this.ctx).removeEdge(n));
    await step('firewall', () => new FirewallService(this.ctx).remove(dc));
    await step('loadbalancer', (n) => (this.ctx.loadBalancers.get(n) ? new LoadBalancerService(this.ctx).delete(n) : Promise.resolve()));
    await step('instance', (n) => (this.ctx.instances.get(n) ? new InstanceService(this.ctx).delete(n) : Promise.resolve()));
    await step('share', (n) => (this.ctx.shares.get(n) ? new ShareService(this.ctx).delete(n) : Promise.resolve()));
    await step('flavor', async (n) => { if (this.ctx.flavors.get(n)) new FlavorService(this.ctx).delete(n); });
    await step('image', async (n) => {
      if (this.ctx.images.get(n) && !this.ctx.instances.list().some((i) => i.image === n)) await new ImageService(this.ctx).delete(n);
    });
    const site = new SiteService(this.ctx);
    await step('dhcp', (seg) => site.removeDhcp(seg));
    await step('network', (n) => { const { node, seg } = parseNetworkResource(n); return site.removeNetwork(node, seg); });
    await step('host', async (n) => site.unregister(n));
    if (dc.hosts && owned.some((o) => o.kind === 'host')) site.forgetSubnets(dc.hosts);
    await step('lab', () => new LabService(this.ctx).down());
    return done;
  }

  private async act(dc: Datacenter, c: Change, started: string[]): Promise<void> {
    switch (c.kind) {
      case 'lab':
        await new LabService(this.ctx).up(dc.lab!);
        return;
      case 'host':
        await new SiteService(this.ctx).register(c.name, dc.hosts!.nodes[c.name]!);
        return;
      case 'network': {
        const { node, seg } = parseNetworkResource(c.name);
        await new SiteService(this.ctx).ensureNetwork(dc.hosts!, node, seg);
        return;
      }
      case 'dhcp':
        await new SiteService(this.ctx).ensureDhcp(dc.hosts!, c.name);
        return;
      case 'image': {
        const spec = dc.images[c.name]!;
        const images = new ImageService(this.ctx);
        if (spec.build === 'tiny') await images.buildTiny();
        else await images.buildDebian({ recipe: spec.build, name: c.name, packages: spec.packages, ...(spec.size ? { sizeGiB: spec.size } : {}) });
        return;
      }
      case 'share': {
        const s = dc.shares[c.name]!;
        const svc = new ShareService(this.ctx);
        if (c.action === 'update' && /networks/.test(c.why)) await svc.delete(c.name);
        if (!this.ctx.shares.get(c.name)) await svc.create(c.name, { networks: s.networks, readOnly: s.read_only });
        const path = this.ctx.shares.get(c.name)!.path;
        for (const [file, text] of Object.entries(s.files)) {
          if (!existsSync(join(path, file))) await writeFile(join(path, file), text, { mode: 0o644 });
        }
        return;
      }
      case 'instance': {
        const svc = new InstanceService(this.ctx);
        if (c.action === 'start') await svc.start(c.name);
        else {
          if (c.action === 'recreate') await svc.delete(c.name);
          const [group, g] = Object.entries(dc.instances).find(([name, x]) => groupMembers(name, x.count).includes(c.name))!;
          const networks = g.networks ?? fileInstanceSegments(dc);
          const only = g.hosts ?? fileHypervisors(dc);
          await svc.create({
            name: c.name, image: g.image, flavor: g.flavor, sshKeys: g.ssh_keys,
            ...(networks ? { networks } : {}), ...(g.root_password_hash ? { passwordHash: g.root_password_hash } : {}),
            userData: await this.userData(dc, g, group),
            ...(c.host ? { host: c.host } : { placement: { pack: g.placement === 'pack', ...(only ? { only } : {}) } }),
          });
        }
        started.push(c.name);
        return;
      }
      case 'firewall':
        await new FirewallService(this.ctx).apply(dc);
        return;
      case 'flavor': {
        const f = dc.flavors[c.name]!;
        const flavors = new FlavorService(this.ctx);
        if (c.action === 'update') flavors.delete(c.name);
        flavors.create(c.name, f.vcpus, f.ram_mib, f.disk_gib);
        return;
      }
      case 'monitoring':
        await new MonitoringService(this.ctx).startCollector({ intervalS: dc.monitoring!.interval, retention: dc.monitoring!.retention });
        return;
      case 'edge':
        await new FirewallService(this.ctx).applyEdge(dc);
        return;
      case 'loadbalancer': {
        const l = dc.loadbalancers[c.name]!;
        const lbs = new LoadBalancerService(this.ctx);
        const members = groupMembers(l.instances, dc.instances[l.instances]!.count);
        if (c.action === 'recreate') await lbs.delete(c.name);
        if (!this.ctx.loadBalancers.get(c.name)) {
          const waf = wafOf(l);
          await lbs.create({
            name: c.name, host: l.host, frontend: `${l.frontend.address}:${l.frontend.port}`, network: l.network, instances: members,
            backendPort: l.backend_port, ...(waf ? { waf } : {}),
          });
        } else {
          await lbs.update(c.name, { instances: members, waf: wafOf(l) });
        }
        return;
      }
    }
  }

  /** cloud-config for a group: mount its share, then its runcmd, then its user_data. */
  private async userData(dc: Datacenter, g: InstanceGroup, group: string): Promise<string> {
    let mount = {};
    if (g.mount) {
      const share = await new ShareService(this.ctx).get(g.mount.share);
      const networks = g.networks ?? fileInstanceSegments(dc);
      const m = share.mounts.find((x) => !networks || networks.includes(x.network));
      if (!m) throw new KumoError('INVALID_INPUT', `instances of "${group}" are on no network share "${g.mount.share}" is served to`, 'add one of the share\'s networks to the group');
      mount = nfsMountConfig(m.source.split(':')[0]!, m.source, g.mount.path);
    }
    return cloudConfigText(mount, { runcmd: g.runcmd }, g.user_data);
  }

  /** A group's flavor: the file's own, or one kumo has. */
  private flavorOf(dc: Datacenter, group: string, g: InstanceGroup): { vcpus: number; ramMiB: number } {
    const own = dc.flavors[g.flavor];
    if (own) return { vcpus: own.vcpus, ramMiB: own.ram_mib };
    const have = this.ctx.flavors.get(g.flavor);
    if (!have) throw new KumoError('NOT_FOUND', `instances.${group}.flavor: flavor "${g.flavor}" is neither in the file nor known to kumo`, 'declare it under flavors:, or pick one of `kumo flavor list`');
    return have;
  }

  /**
   * Placement run dry, instance by instance, on one reading of the hosts (each placed instance
   * counts against its host for the next): an impossible placement is an error before apply
   * makes anything. Undefined when the hosts are not there yet (a lab still to create).
   */
  private async dryPlacer(dc: Datacenter, labPending: boolean) {
    const hosts = labPending ? [] : await new HostService(this.ctx).list();
    return (name: string, flavor: { vcpus: number; ramMiB: number }, g: InstanceGroup): string | undefined => {
      if (!hosts.some((h) => h.roles.includes('hypervisor'))) return undefined;
      const old = this.ctx.instances.get(name);
      const was = old && hosts.find((h) => h.name === old.host);
      if (was) { was.allocatedMiB -= old.ramMiB; was.instances -= 1; }
      let host: string;
      const only = g.hosts ?? fileHypervisors(dc);
      try {
        host = chooseHost(hosts, flavor.vcpus, flavor.ramMiB, { pack: g.placement === 'pack', ...(only ? { only } : {}) });
      } catch (e) {
        if (e instanceof KumoError) throw new KumoError(e.code, `cannot place instance ${name} of ${dc.name}: ${e.message}`, e.fix);
        throw e;
      }
      const h = hosts.find((x) => x.name === host)!;
      h.allocatedMiB += flavor.ramMiB;
      h.instances += 1;
      return host;
    };
  }

  /**
   * The tiny image is rebuilt when its recipe changed; a Debian image is built once (its cache
   * key follows the mirror's state, and a rebuild takes minutes: `kumo image build` refreshes it).
   */
  private async imageState(name: string, spec: Datacenter['images'][string]): Promise<'missing' | 'current' | 'stale'> {
    if (spec.build === 'tiny') return new ImageService(this.ctx).tinyState();
    const image = this.ctx.images.get(name);
    if (!image || !existsSync(image.disk)) return 'missing';
    if (!image.source.startsWith(`${spec.build}:`)) {
      throw new KumoError('ALREADY_EXISTS', `image "${name}" exists and was not built by \`kumo image build ${spec.build}\``, `rename the image in the file, or delete it first: kumo image delete ${name}`);
    }
    return 'current';
  }

  /** What is wrong with a lab that is up: what `lab up` would repair. */
  private async labProblems(lab: LabService): Promise<string[]> {
    const s = await lab.status();
    return [
      ...s.nodes.filter((n) => !n.namespace).map((n) => `node ${n.name}'s namespace is gone`),
      ...s.nodes.filter((n) => n.libvirtd && !n.libvirtd.pid).map((n) => `${n.name}'s libvirtd is down`),
      ...s.segments.filter((g) => g.dhcp && !g.dhcp.running).map((g) => `DHCP on ${g.name} is down`),
    ];
  }

  /** A resource of the file's name may not belong to another datacenter file. */
  private checkOwnership(dc: Datacenter): void {
    const check = (kind: ResourceKind, names: string[]) => {
      for (const n of names) {
        const owner = this.ctx.datacenterResources.owner(kind, n);
        if (owner && owner !== dc.name) {
          throw new KumoError('IN_USE', `${kind} "${n}" belongs to datacenter "${owner}"`, `rename it in this file, or destroy ${owner} first`);
        }
      }
    };
    check('instance', Object.entries(dc.instances).flatMap(([g, x]) => groupMembers(g, x.count)));
    check('share', Object.keys(dc.shares));
    check('loadbalancer', Object.keys(dc.loadbalancers));
    check('edge', dc.edge ? [dc.edge.host] : []);
    if (dc.hosts) {
      check('host', Object.keys(dc.hosts.nodes));
      check('dhcp', Object.keys(dc.hosts.segments).filter((s) => dc.hosts!.segments[s]!.instances));
      check('network', hostNetworks(dc.hosts).map(([node, seg]) => networkResource(node, seg)));
    }
  }

  /**
   * The file's hosts: each registered (as it says), a libvirt network per hypervisor and
   * instance segment, a DHCP server per instance segment on its dhcp node.
   */
  private async planHosts(hosts: NonNullable<Datacenter['hosts']>, add: (action: Action, kind: ResourceKind, name: string, why: string) => void): Promise<void> {
    const site = new SiteService(this.ctx);
    for (const [name, n] of Object.entries(hosts.nodes)) {
      if (site.hostState(name, n) === 'missing') add('create', 'host', name, `${n.roles.join(',')} via ${n.ssh !== undefined ? `ssh ${n.ssh}` : `netns ${n.netns}`}${site.uriOf(n) ? `, ${site.uriOf(n)}` : ''}`);
    }
    for (const [node, seg] of hostNetworks(hosts)) {
      const state = await site.networkState(hosts, node, seg);
      if (state === 'missing') add('create', 'network', networkResource(node, seg), `libvirt bridge network ${seg} on ${node}`);
      else if (state === 'inactive') add('update', 'network', networkResource(node, seg), 'it is not active');
    }
    for (const [seg, s] of Object.entries(hosts.segments).filter(([, x]) => x.instances)) {
      const state = await site.dhcpState(hosts, seg);
      const pool = dhcpPlan(s.cidr);
      if (state === 'missing') add('create', 'dhcp', seg, `dnsmasq on ${hosts.dhcp}, pool ${pool.start}-${pool.end}`);
      else if (state === 'down') add('update', 'dhcp', seg, `dnsmasq on ${hosts.dhcp} does not run`);
    }
  }
}
