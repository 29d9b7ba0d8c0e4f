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
import { KumoError } from '../model/errors.js';
import { DatacenterSchema, groupMembers, type Datacenter, type InstanceGroup } from '../model/datacenter.js';
import { parseYamlFile } from '../model/yaml-file.js';
import type { ResourceKind } from '../store/datacenter-resources.js';

export type Action = 'create' | 'update' | 'start' | 'recreate' | 'delete';

export interface Change {
  action: Action;
  kind: ResourceKind;
  name: string;
  /** Why, in words (what differs between the file and what runs). */
  why: string;
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
    return parseYamlFile(text, DatacenterSchema, file);
  }

  /** What apply would do, in order. */
  async plan(dc: Datacenter): Promise<Change[]> {
    this.checkOwnership(dc);
    const changes: Change[] = [];
    const add = (action: Action, kind: ResourceKind, name: string, why: string) => changes.push({ action, kind, name, why });

    if (dc.lab) {
      const lab = new LabService(this.ctx);
      const state = lab.state();
      if (!state) add('create', 'lab', dc.lab.name, 'no lab is up');
      else if (JSON.stringify(state.spec) !== JSON.stringify(dc.lab)) {
        throw new KumoError('IN_USE', `lab "${state.spec.name}" is up with another topology than the file's`, 'take it down first (kumo lab down), or make the file\'s lab the same');
      } else {
        const problems = await this.labProblems(lab);
        if (problems.length) add('update', 'lab', dc.lab.name, problems.join('; '));
      }
    }
    for (const [name, image] of Object.entries(dc.images)) {
      const state = await new ImageService(this.ctx).tinyState();
      if (state === 'missing') add('create', 'image', name, `build ${image.build}`);
      if (state === 'stale') add('update', 'image', name, `registered from an older ${image.build} recipe`);
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
    for (const [group, g] of Object.entries(dc.instances)) {
      for (const name of groupMembers(group, g.count)) {
        wanted.add(name);
        const record = this.ctx.instances.get(name);
        if (!record) { add('create', 'instance', name, `${g.image}, ${g.flavor}`); continue; }
        const flavor = this.ctx.flavors.get(g.flavor);
        if (record.image !== g.image || (flavor && (record.vcpus !== flavor.vcpus || record.ramMiB !== flavor.ramMiB))) {
          add('recreate', 'instance', name, `is ${record.image}/${record.vcpus} vCPU/${record.ramMiB} MiB, should be ${g.image}/${g.flavor}`);
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
        && have.network === l.network && have.backendPort === l.backend_port
        && JSON.stringify(have.waf) === JSON.stringify(l.waf ? { enabled: l.waf.enabled, paranoia: l.waf.paranoia } : null);
      if (!spec) { add('recreate', 'loadbalancer', name, 'its frontend, network, port or WAF settings changed'); continue; }
      if (have.instances.join() !== members.join()) { add('update', 'loadbalancer', name, `backends ${have.instances.join(', ')} -> ${members.join(', ')}`); continue; }
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
    for (const { kind, name } of this.ctx.datacenterResources.owned(dc.name)) {
      if (kind === 'edge' && dc.edge?.host !== name) add('delete', kind, name, 'no longer in the file');
      if (kind === 'loadbalancer' && !dc.loadbalancers[name]) add('delete', kind, name, 'no longer in the file');
      if (kind === 'share' && !dc.shares[name]) add('delete', kind, name, 'no longer in the file');
    }
    return changes;
  }

  /** Makes it so; returns what it did (empty: nothing to do). */
  async apply(dc: Datacenter, onChange: (c: Change) => void = () => undefined): Promise<Change[]> {
    const changes = await this.plan(dc);
    const instances = new InstanceService(this.ctx);
    const lbs = new LoadBalancerService(this.ctx);
    const started: string[] = [];
    const order: ResourceKind[] = ['lab', 'edge', 'image', 'share', 'loadbalancer', 'instance'];
    // Deletions first (load balancers before the instances behind them), then the rest in dependency order.
    const deletions = changes.filter((c) => c.action === 'delete').sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind));
    for (const c of deletions) {
      onChange(c);
      if (c.kind === 'edge') await new FirewallService(this.ctx).removeEdge(c.name);
      if (c.kind === 'loadbalancer') await lbs.delete(c.name);
      if (c.kind === 'instance') await instances.delete(c.name);
      if (c.kind === 'share') await new ShareService(this.ctx).delete(c.name);
      this.ctx.datacenterResources.release(c.kind, c.name);
    }
    const rest = changes.filter((c) => c.action !== 'delete');
    for (const kind of ['lab', 'image', 'share', 'instance'] as const) {
      for (const c of rest.filter((x) => x.kind === kind)) {
        onChange(c);
        await this.act(dc, c, started);
        this.ctx.datacenterResources.claim(dc.name, c.kind, c.name);
      }
    }
    // Load balancers need their instances' addresses: wait for every new or restarted one.
    for (const name of started) await instances.waitReady(name, 300_000);
    // Access rules last: everything they let through exists by now.
    // The edge after both: it forwards to load balancers that run and are let in by then.
    for (const c of [...rest.filter((x) => x.kind === 'loadbalancer' || x.kind === 'firewall'), ...rest.filter((x) => x.kind === 'edge')]) {
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
    await step('edge', (n) => new FirewallService(this.ctx).removeEdge(n));
    await step('firewall', () => new FirewallService(this.ctx).remove(dc));
    await step('loadbalancer', (n) => (this.ctx.loadBalancers.get(n) ? new LoadBalancerService(this.ctx).delete(n) : Promise.resolve()));
    await step('instance', (n) => (this.ctx.instances.get(n) ? new InstanceService(this.ctx).delete(n) : Promise.resolve()));
    await step('share', (n) => (this.ctx.shares.get(n) ? new ShareService(this.ctx).delete(n) : Promise.resolve()));
    await step('image', async (n) => {
      if (this.ctx.images.get(n) && !this.ctx.instances.list().some((i) => i.image === n)) await new ImageService(this.ctx).delete(n);
    });
    await step('lab', () => new LabService(this.ctx).down());
    return done;
  }

  private async act(dc: Datacenter, c: Change, started: string[]): Promise<void> {
    switch (c.kind) {
      case 'lab':
        await new LabService(this.ctx).up(dc.lab!);
        return;
      case 'image':
        await new ImageService(this.ctx).buildTiny();
        return;
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
          await svc.create({
            name: c.name, image: g.image, flavor: g.flavor, sshKeys: g.ssh_keys,
            ...(g.networks ? { networks: g.networks } : {}), ...(g.root_password_hash ? { passwordHash: g.root_password_hash } : {}),
            userData: await this.userData(g, group),
          });
        }
        started.push(c.name);
        return;
      }
      case 'firewall':
        await new FirewallService(this.ctx).apply(dc);
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
          await lbs.create({
            name: c.name, host: l.host, frontend: `${l.frontend.address}:${l.frontend.port}`, network: l.network, instances: members,
            backendPort: l.backend_port, ...(l.waf ? { waf: { enabled: l.waf.enabled, paranoia: l.waf.paranoia } } : {}),
          });
        } else {
          await lbs.setInstances(c.name, members);
        }
        return;
      }
    }
  }

  /** cloud-config for a group: mount its share (retrying while DHCP settles), then its runcmd. */
  private async userData(g: InstanceGroup, group: string): Promise<string> {
    const lines: string[] = [];
    if (g.mount) {
      const share = await new ShareService(this.ctx).get(g.mount.share);
      const mount = share.mounts.find((m) => !g.networks || g.networks.includes(m.network));
      if (!mount) throw new KumoError('INVALID_INPUT', `instances of "${group}" are on no network share "${g.mount.share}" is served to`, 'add one of the share\'s networks to the group');
      const server = mount.source.split(':')[0]!;
      lines.push(`mkdir -p ${g.mount.path}`,
        `i=0; until mount -t nfs4 -o vers=4.1,actimeo=1,addr=${server} ${mount.source} ${g.mount.path}; do i=$((i+1)); [ $i -ge 30 ] && break; sleep 1; done`);
    }
    lines.push(...g.runcmd);
    if (!lines.length) return '#cloud-config\n{}\n';
    return `#cloud-config\nruncmd:\n${lines.map((l) => `  - ${JSON.stringify(l)}`).join('\n')}\n`;
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
  }
}
