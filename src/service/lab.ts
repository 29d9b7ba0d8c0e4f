import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Context } from './context.js';
import { LOCAL_HOST } from './context.js';
import { InstanceService } from './instances.js';
import { ShareService } from './shares.js';
import { LoadBalancerService } from './loadbalancers.js';
import { ensureBridgeNetwork } from './bridge-networks.js';
import { HostService } from './host.js';
import { Namespaces } from '../drivers/net/netns.js';
import { DhcpServer } from '../drivers/daemons/dnsmasq.js';
import { needsKvmMask } from '../drivers/host/accel-probe.js';
import { daemonPids, libvirtdUri, restartLibvirtd, startLibvirtd, stopLibvirtd } from '../drivers/daemons/libvirtd/namespace.js';
import { MIGRATION_TLS_FILES } from '../drivers/daemons/libvirtd/state.js';
import { missingTools } from '../drivers/host/which.js';
import { livePid, signal } from '../exec/process.js';
import { KumoError } from '../model/errors.js';
import { ROOT_ONLY, type Reach } from '../model/reach.js';
import { COURSE_LAB, dhcpPlan, LabSpecSchema, type LabSpec } from '../model/lab.js';
import { parseYamlFile } from '../model/yaml-file.js';
import { hypervisorsOf, sharedInstanceSegments } from '../model/topology.js';
import { HOST_ROLES, type HostRole } from '../model/roles.js';
import { admitNetworkToDhcp } from './leases.js';
import { machineActor } from '../model/actor.js';

/** What kumo remembers of the lab that is up (settings key `lab`). */
interface LabState {
  spec: LabSpec;
  /** Whether `up` unregistered this machine's own libvirt as a hypervisor (down registers it again). */
  removedLocal: boolean;
  /** Settings `up` filled in (they were unset): down unsets those still unchanged. */
  setSettings?: Record<string, string>;
  /** `lab up --bare`: namespaces, cabling and libvirtds only (no hosts, DHCP, libvirt networks or settings). */
  bare?: boolean;
}

export interface LabNodeStatus {
  name: string;
  netns: string;
  roles: string[];
  links: Record<string, string>;
  namespace: boolean;
  libvirtd?: { pid?: number; uri: string };
  host?: string;
}

export interface LabStatus {
  up: boolean;
  name?: string;
  bare?: boolean;
  nodes: LabNodeStatus[];
  segments: { name: string; cidr: string; instances: boolean; dhcp?: { server: string; range: string; running: boolean; leases: number } }[];
  instances: { name: string; host: string }[];
}

const STATE_KEY = 'lab';
/** What the lab runs, and the Debian package of each. */
const LAB_TOOLS = { unshare: 'util-linux', nsenter: 'util-linux', dnsmasq: 'dnsmasq-base', libvirtd: 'libvirt-daemon-system', ip: 'iproute2' };
const HOST_ROLES_OF_LAB: readonly HostRole[] = HOST_ROLES;

/**
 * `kumo lab up|status|down`: the course's datacenter on this one machine (model/lab.ts). The
 * nodes are network namespaces; segments are bridges in a switch namespace; every hypervisor
 * is a libvirtd of its own (drivers/lab); instance segments get a DHCP server; the nodes are
 * registered as kumo hosts, so everything else in kumo works on the lab as on real hosts.
 */
export class LabService {
  private readonly ns: Namespaces;

  constructor(private readonly ctx: Context) {
    this.ns = new Namespaces(ctx.exec);
  }

  /** The lab file, or the course's topology. */
  async load(file?: string): Promise<LabSpec> {
    if (!file) return COURSE_LAB;
    const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new KumoError('NOT_FOUND', `cannot read lab file ${file}: ${e.code ?? e.message}`, 'give the path of a YAML lab file, or none for the course topology');
    });
    return parseYamlFile(text, LabSpecSchema, file, 'lab');
  }

  state(): LabState | undefined {
    const raw = this.ctx.settings.get(STATE_KEY);
    return raw ? (JSON.parse(raw) as LabState) : undefined;
  }

  /** Builds what is missing of the lab; running it again on a complete lab changes nothing. */
  async up(spec: LabSpec, onStep: (step: string) => void = () => undefined, opts: { bare?: boolean; reach?: Reach } = {}): Promise<LabStatus> {
    const before = this.state();
    if (before && JSON.stringify(before.spec) !== JSON.stringify(spec)) {
      throw new KumoError('ALREADY_EXISTS', `lab "${before.spec.name}" is up with another topology`, 'take it down first: kumo lab down');
    }
    if (before && Boolean(before.bare) !== Boolean(opts.bare)) {
      throw new KumoError('ALREADY_EXISTS', `lab "${before.spec.name}" is up ${before.bare ? 'bare' : 'complete (not bare)'}`, 'take it down first (kumo lab down), or run lab up as it was');
    }
    this.checkMigrationTls(spec, opts.reach ?? 'cloud');
    this.checkTools();
    this.checkHostNames(spec);
    const existingNamespaces = before ? [] : (await this.ns.list()).filter((n) => n.startsWith(`${spec.name}-`));
    if (existingNamespaces.length) {
      throw new KumoError('ALREADY_EXISTS', `network namespaces named like the lab's already exist: ${existingNamespaces.join(', ')}`,
        `another lab (another KUMO_HOME?) uses the name "${spec.name}": give a lab file with another name, or remove them (ip netns del NAME)`);
    }
    const state: LabState = before ?? { spec, removedLocal: false, ...(opts.bare ? { bare: true } : {}) };
    this.ctx.settings.set(STATE_KEY, JSON.stringify(state));
    try {
      await this.build(spec, state, onStep);
    } catch (e) {
      // A first `up` that fails leaves nothing behind; a later one keeps what ran before.
      if (!before) await this.down().catch(() => undefined);
      throw e;
    }
    this.ctx.settings.set(STATE_KEY, JSON.stringify(state));
    return this.status();
  }

  private async build(spec: LabSpec, state: LabState, onStep: (step: string) => void): Promise<void> {
    await this.cable(spec, state, onStep);
    await this.startHypervisors(spec, state, onStep);
    // A bare lab is only machines and cables: a datacenter file's `hosts:` does the rest.
    if (state.bare) return;
    onStep('hosts');
    await this.registerHosts(spec, state);
  }

  /** The machines and cables: namespaces, segment bridges (with DHCP), links, addresses, gateways. */
  private async cable(spec: LabSpec, state: LabState, onStep: (step: string) => void): Promise<void> {
    const sw = this.switchNs(spec);
    const dir = this.dir();
    await mkdir(join(dir, 'dhcp'), { recursive: true });
    onStep('namespaces');
    await this.ns.ensure(sw);
    for (const node of Object.keys(spec.nodes)) await this.ns.ensure(this.nodeNs(spec, node));

    onStep('segments');
    const segments = Object.entries(spec.segments);
    for (const [seg, s] of segments) {
      await this.ns.bridge(sw, seg);
      if (s.instances && !state.bare) {
        const plan = dhcpPlan(s.cidr);
        await this.ns.address(sw, seg, `${plan.server}/${plan.prefix}`);
        await this.dhcp(spec, seg).ensure();
        this.ctx.networkSubnets.upsert({ network: seg, cidr: s.cidr, leaseFile: this.dhcp(spec, seg).leaseFile });
        await admitNetworkToDhcp(this.ctx, seg);
      }
    }
    for (const [node, n] of Object.entries(spec.nodes)) {
      const netns = this.nodeNs(spec, node);
      for (const [seg, ip] of Object.entries(n.links)) {
        const index = segments.findIndex(([name]) => name === seg);
        const swEnd = `${node}-s${index}`;
        await this.ns.veth({ netns: sw, name: swEnd }, { netns, name: seg });
        await this.ns.enslave(sw, swEnd, seg);
        const prefix = dhcpPlan(spec.segments[seg]!.cidr).prefix;
        if (n.roles.includes('hypervisor') && spec.segments[seg]!.instances) {
          // Instances are bridged onto the segment: the node's address sits on that bridge.
          await this.ns.bridge(netns, `br-${seg}`);
          await this.ns.enslave(netns, seg, `br-${seg}`);
          await this.ns.address(netns, `br-${seg}`, `${ip}/${prefix}`);
        } else {
          await this.ns.address(netns, seg, `${ip}/${prefix}`);
        }
      }
      // After the addresses: the gateway must be on a connected subnet. `replace` makes it idempotent.
      if (n.gateway) await this.ctx.exec.run('ip', ['-n', netns, 'route', 'replace', 'default', 'via', n.gateway]);
    }
  }

  /** A libvirtd per hypervisor (restarted in place when it died), with a bridge network per instance segment. */
  private async startHypervisors(spec: LabSpec, state: LabState, onStep: (step: string) => void): Promise<void> {
    const dir = this.dir();
    const hypervisors = hypervisorsOf(spec);
    const maskKvm = hypervisors.length > 0 && needsKvmMask(await this.ctx.accel());
    for (const [i, [node, n]] of hypervisors.entries()) {
      onStep(`hypervisor ${node}`);
      const stateDir = join(dir, 'libvirt', node);
      const pids = await daemonPids(stateDir);
      if (pids.libvirtd === undefined && pids.virtlogd !== undefined) {
        // libvirtd died but its namespace (virtlogd, guests) lives: restart it there, and it
        // takes its running guests back, as a real hypervisor's libvirtd does.
        onStep(`restarting libvirtd of ${node}`);
        await restartLibvirtd(stateDir);
      } else if (pids.libvirtd === undefined) {
        await startLibvirtd({ name: node, stateDir, netns: this.nodeNs(spec, node), portSlot: i + 1, maskKvm,
          ...(spec.migration_tls ? { migrationTls: join(spec.migration_tls, node) } : {}) });
      }
      if (state.bare) continue;
      const v = this.ctx.virshAt(libvirtdUri(stateDir));
      for (const seg of Object.keys(n.links).filter((s) => spec.segments[s]!.instances)) await ensureBridgeNetwork(v, seg, `br-${seg}`);
    }
  }

  /**
   * The nodes as kumo hosts (this machine's own libvirt steps aside while the lab is up), and
   * the lab's segments as the default networks unless the user set those.
   */
  private async registerHosts(spec: LabSpec, state: LabState): Promise<void> {
    const dir = this.dir();
    const hosts = new HostService(this.ctx);
    for (const [node, n] of Object.entries(spec.nodes)) {
      const roles = n.roles.filter((r): r is HostRole => (HOST_ROLES_OF_LAB as string[]).includes(r));
      if (!roles.length || this.ctx.hosts.get(node)) continue;
      // As `kumo host add` registers a host (a datacenter file's hosts: too): its shell and libvirt must answer.
      await hosts.add({
        name: node, roles, shell: { kind: 'netns', netns: this.nodeNs(spec, node) },
        ...(roles.includes('hypervisor') ? { uri: libvirtdUri(join(dir, 'libvirt', node)), migrationAddress: Object.values(n.links)[0]! } : {}),
      });
    }
    // The lab's hypervisors replace this machine's libvirt for placement while the lab is up.
    const local = this.ctx.hosts.get(LOCAL_HOST);
    if (local && !this.ctx.instances.list().some((i) => i.host === LOCAL_HOST)) {
      this.ctx.hosts.delete(LOCAL_HOST);
      state.removedLocal = true;
    }
    // Instances attach to every instance segment all hypervisors share, and the wizard's
    // "Bridge" choice is the first of them, unless the user set those already.
    const shared = sharedInstanceSegments(spec);
    if (shared.length) {
      for (const [key, value] of [['instance.networks', shared.join(',')], ['wizard.bridge', shared[0]!]] as const) {
        if (this.ctx.settings.get(key)) continue;
        this.ctx.settings.set(key, value);
        state.setSettings = { ...state.setSettings, [key]: value };
      }
    }
  }

  async status(): Promise<LabStatus> {
    const state = this.state();
    if (!state) return { up: false, nodes: [], segments: [], instances: [] };
    const { spec } = state;
    const namespaces = await this.ns.list();
    const nodes: LabNodeStatus[] = [];
    for (const [node, n] of Object.entries(spec.nodes)) {
      const netns = this.nodeNs(spec, node);
      const status: LabNodeStatus = { name: node, netns, roles: n.roles, links: n.links, namespace: namespaces.includes(netns),
        ...(this.ctx.hosts.get(node) ? { host: node } : {}) };
      if (n.roles.includes('hypervisor')) {
        const stateDir = join(this.dir(), 'libvirt', node);
        const pid = (await daemonPids(stateDir)).libvirtd;
        status.libvirtd = { uri: libvirtdUri(stateDir), ...(pid ? { pid } : {}) };
      }
      nodes.push(status);
    }
    const segments = [];
    for (const [seg, s] of Object.entries(spec.segments)) {
      if (!s.instances || state.bare) {
        segments.push({ name: seg, cidr: s.cidr, instances: s.instances });
        continue;
      }
      const plan = dhcpPlan(s.cidr);
      const server = this.dhcp(spec, seg);
      segments.push({ name: seg, cidr: s.cidr, instances: true, dhcp: {
        server: plan.server, range: `${plan.start}-${plan.end}`,
        running: (await server.pid()) !== undefined, leases: (await server.leases()).length,
      } });
    }
    const labHosts = new Set(Object.keys(spec.nodes));
    const instances = this.ctx.instances.list().filter((i) => labHosts.has(i.host)).map((i) => ({ name: i.name, host: i.host }));
    return { up: true, name: spec.name, ...(state.bare ? { bare: true } : {}), nodes, segments, instances };
  }

  /**
   * Removes everything the lab made: its instances (domains and disks), the shares its storage
   * node served, daemons, namespaces (and with them every link), hosts, and files. Idempotent,
   * and it works on a half-built or half-broken lab.
   */
  async down(onStep: (step: string) => void = () => undefined): Promise<{ removed: boolean; instances: string[] }> {
    const state = this.state();
    if (!state) return { removed: false, instances: [] };
    const { spec } = state;
    const nodes = Object.keys(spec.nodes);
    onStep('instances');
    const instances = this.ctx.instances.list().filter((i) => nodes.includes(i.host));
    for (const i of instances) {
      // Every project's: the lab's hosts go away with all they hold.
      await new InstanceService(this.ctx, machineActor(i.project)).delete(i.name).catch(async () => {
        // Its hypervisor is gone: the daemons' namespace teardown below ends the guest; the rest is files and records.
        await rm(join(this.ctx.paths.instances, i.name), { recursive: true, force: true });
        this.ctx.volumes.releaseAll(i.name);
        this.ctx.instances.delete(i.name);
      });
    }
    onStep('load balancers');
    for (const lb of this.ctx.loadBalancers.list().filter((l) => nodes.includes(l.host))) {
      await new LoadBalancerService(this.ctx, machineActor(lb.project)).delete(lb.name).catch(() => this.ctx.loadBalancers.delete(lb.name));
    }
    onStep('shares');
    if (nodes.some((n) => spec.nodes[n]!.roles.includes('storage'))) await new ShareService(this.ctx).removeAll();

    onStep('daemons');
    for (const node of nodes.filter((n) => spec.nodes[n]!.roles.includes('hypervisor'))) {
      const stateDir = join(this.dir(), 'libvirt', node);
      await stopLibvirtd(stateDir);
      await this.killGuestsOf(stateDir);
    }
    for (const seg of Object.keys(spec.segments)) await this.dhcp(spec, seg).stop();

    onStep('namespaces');
    for (const netns of [this.switchNs(spec), ...nodes.map((n) => this.nodeNs(spec, n))]) {
      // Whatever still runs in a namespace would keep it (and its links) alive.
      for (const pid of await this.ns.pids(netns)) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
      await this.ns.remove(netns);
    }

    onStep('hosts');
    for (const node of nodes) this.ctx.hosts.delete(node);
    for (const seg of Object.keys(spec.segments)) this.ctx.networkSubnets.delete(seg);
    for (const [key, value] of Object.entries(state.setSettings ?? {})) {
      if (this.ctx.settings.get(key) === value) this.ctx.settings.unset(key);
    }
    if (state.removedLocal && !this.ctx.hosts.get(LOCAL_HOST) && !this.ctx.hosts.byUri(this.ctx.virsh.uri)) {
      this.ctx.hosts.insert({ name: LOCAL_HOST, uri: this.ctx.virsh.uri, roles: ['hypervisor'], shell: { kind: 'local' }, createdAt: new Date().toISOString() });
    }
    await rm(this.dir(), { recursive: true, force: true });
    this.ctx.settings.unset(STATE_KEY);
    return { removed: true, instances: instances.map((i) => i.name) };
  }

  private checkTools(): void {
    const missing = missingTools(LAB_TOOLS);
    if (missing.length) {
      throw new KumoError('MISSING_DEPENDENCY', `the lab needs ${missing.map((m) => m.tool).join(', ')}`,
        `apt-get install ${[...new Set(missing.map((m) => m.package))].join(' ')} (or run scripts/up.sh)`);
    }
  }

  /** A lab node may not take the name of a host that is registered otherwise. */
  private checkHostNames(spec: LabSpec): void {
    for (const node of Object.keys(spec.nodes)) {
      const h = this.ctx.hosts.get(node);
      if (h && !(h.shell.kind === 'netns' && h.shell.netns === this.nodeNs(spec, node))) {
        throw new KumoError('ALREADY_EXISTS', `host "${node}" is already registered (${h.uri ?? h.roles.join(', ')}), and the lab has a node of that name`,
          `remove it (kumo host remove ${node}) or rename the lab's node in a lab file`);
      }
    }
  }

  /** Every hypervisor's migration certificates are there before anything is built. */
  private checkMigrationTls(spec: LabSpec, reach: Reach): void {
    if (!spec.migration_tls) return;
    if (reach !== 'machine') {
      // Private keys copied from a server folder: the server's files are root's (model/reach.ts).
      throw new KumoError('INVALID_INPUT', `the lab's migration_tls names a folder on the server (${spec.migration_tls}): ${ROOT_ONLY}`,
        'run `kumo lab up FILE` as root with it, or leave migration_tls out');
    }
    for (const [node] of hypervisorsOf(spec)) {
      const missing = MIGRATION_TLS_FILES.filter((f) => !existsSync(join(spec.migration_tls!, node, f)));
      if (missing.length) {
        throw new KumoError('INVALID_INPUT', `the lab's migration certificates lack ${missing.map((f) => `${node}/${f}`).join(', ')} in ${spec.migration_tls}`,
          'give each hypervisor a folder of its name with the CA certificate, a server certificate naming its address, a client certificate and their keys (docs/architecture.md, "Encrypted migration")');
      }
    }
  }

  /**
   * HA's fence of a lab hypervisor, as a power cut: its libvirtd and guests are killed (virtlogd stays: `kumo lab up`
   * restarts libvirtd in place, a host that comes back). False: `node` is not a hypervisor of the lab that is up.
   */
  async fence(node: string): Promise<boolean> {
    if (!this.state()?.spec.nodes[node]?.roles.includes('hypervisor')) return false;
    const stateDir = join(this.dir(), 'libvirt', node);
    const { libvirtd } = await daemonPids(stateDir);
    if (libvirtd !== undefined) await signal(this.ctx.exec, libvirtd, 'KILL');
    await this.killGuestsOf(stateDir);
    return true;
  }

  /** Guests whose libvirtd died without ending them: their pid files are in its private /run. */
  private async killGuestsOf(stateDir: string): Promise<void> {
    const dir = join(stateDir, 'run', 'qemu');
    if (!existsSync(dir)) return;
    for (const f of (await readdir(dir)).filter((x) => x.endsWith('.pid'))) {
      const pid = await livePid(this.ctx.exec, join(dir, f), 'qemu-system');
      if (pid !== undefined) await signal(this.ctx.exec, pid, 'KILL');
    }
  }

  private dhcp(spec: LabSpec, seg: string): DhcpServer {
    const plan = dhcpPlan(spec.segments[seg]!.cidr);
    return new DhcpServer({ link: seg, rangeStart: plan.start, rangeEnd: plan.end, dir: join(this.dir(), 'dhcp'), name: seg, knownOnly: true },
      this.ns.shell(this.switchNs(spec)));
  }

  private dir(): string {
    return join(this.ctx.paths.home, 'lab');
  }

  private switchNs(spec: LabSpec): string {
    return `${spec.name}-sw`;
  }

  private nodeNs(spec: LabSpec, node: string): string {
    return `${spec.name}-${node}`;
  }
}
