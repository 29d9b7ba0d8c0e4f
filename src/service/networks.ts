import { SubnetNameRepo } from '../store/subnet-names.js';
import { existsSync } from 'node:fs';
import type { Context } from './context.js';
import { withUndo } from './undo.js';
import { buildNetworkXml, parseNetworkXml, type NetworkFacts, type NetworkMode, type NetworkSpec } from '../drivers/libvirt/network-xml.js';
import type { NetworkListing } from '../drivers/libvirt/virsh.js';
import { HostLinks, OvsBridges } from '../drivers/net/links.js';
import { which } from '../drivers/host/which.js';
import { virtXmlValidate } from '../drivers/libvirt/validate.js';
import { networkXmlPassthrough } from '../model/network-xml-guard.js';
import { ROOT_ONLY, type Reach } from '../model/reach.js';
import { KumoError, invalid, notFound } from '../model/errors.js';
import { checkName } from '../model/names.js';
import { machineActor, type Actor } from '../model/actor.js';
import { actingProject, checkRoom, reserve } from './scope.js';
import { networkOwner, networkVisible } from './network-owners.js';
import { formatCidr, overlaps, subnetOf, type Subnet } from '../model/checks.js';
import { planRange, RESTORE_NETWORK, type NetworkRange } from './network-range.js';

/** The networks every kumo host has out of the box: the course's default NAT and testnet. */
export const BUILTIN_NETWORKS: Record<string, NetworkSpec> = {
  default: {
    name: 'default', mode: 'nat', bridge: 'virbr0',
    ipv4: { address: '192.168.122.1', prefix: 24, dhcp: { start: '192.168.122.2', end: '192.168.122.254' } },
  },
  testnet: {
    name: 'testnet', mode: 'isolated', bridge: 'virbr-testnet',
    ipv4: { address: '192.168.123.1', prefix: 24, dhcp: { start: '192.168.123.2', end: '192.168.123.254' } },
  },
};

export const NETWORK_MODES: NetworkMode[] = ['nat', 'isolated', 'bridge', 'ovs'];

export interface CreateNetworkRequest {
  name: string;
  mode: NetworkMode;
  /** nat/isolated: the subnet, e.g. 192.168.222.0/24. */
  cidr?: string;
  /** The host's address on it: full, or a suffix like ".1" (default: the first address). */
  gateway?: string;
  /** "START-END" (full addresses or suffixes); default: the rest of the subnet. */
  dhcp?: string;
  noDhcp?: boolean;
  /** nat/isolated: a name for the bridge libvirt makes (default: the next free virbrN). bridge/ovs: the host bridge. */
  bridge?: string;
  createBridge?: boolean;
  autostart?: boolean;
  /** isolated without cidr: a segment with no address and no DHCP, given a range later (readdress). */
  bare?: boolean;
}

export interface NetworkView {
  name: string;
  mode: NetworkMode;
  cidr?: string;
  gateway?: string;
  dhcp?: { start: string; end: string };
  bridge?: string;
  active: boolean;
  autostart: boolean;
  persistent: boolean;
  /** A built-in that is made the first time something uses it. */
  builtinPending?: boolean;
  /** What OpenStack's clients call its range (Neutron's subnet name), if they named it. */
  subnetName?: string;
  instances: string[];
}

/** A network libvirt has, with what its XML says. */
type KnownNetwork = NetworkListing & { facts: NetworkFacts };

const BRIDGE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

export class NetworkService {
  private readonly links: HostLinks;
  private readonly ovs: OvsBridges;

  /**
   * Networks of one host's libvirt: this machine's unless another host's client is given.
   * `actor`: who asks; it sees its project's networks and the shared ones (network-owners.ts).
   */
  constructor(private readonly ctx: Context, private readonly virsh = ctx.virsh, private readonly actor: Actor = machineActor()) {
    this.links = new HostLinks(ctx.exec);
    this.ovs = new OvsBridges(ctx.exec);
  }

  /** Every network libvirt has here, with what its XML says: read once per operation. */
  private async readAll(): Promise<KnownNetwork[]> {
    const out = [];
    for (const n of await this.virsh.listNetworks()) {
      const xml = await this.virsh.networkXml(n.name);
      out.push({ ...n, facts: xml ? parseNetworkXml(xml) : { mode: 'isolated' as const } });
    }
    return out;
  }

  async list(): Promise<NetworkView[]> {
    const listed = await this.readAll();
    const views = listed.map((n) => this.view(n.name, n.facts, n));
    for (const b of Object.values(BUILTIN_NETWORKS)) {
      if (!listed.some((n) => n.name === b.name)) {
        views.push({ ...this.view(b.name, specFacts(b), { active: false, autostart: false, persistent: false }), builtinPending: true });
      }
    }
    return views.filter((n) => networkVisible(this.ctx, this.actor.project, n.name)).sort((a, b) => a.name.localeCompare(b.name));
  }

  async get(name: string): Promise<NetworkView> {
    const found = (await this.list()).find((n) => n.name === name);
    if (!found) throw notFound(`network "${name}" does not exist`, 'see `kumo network list`; create one with `kumo network create NAME --mode nat --cidr 192.168.222.0/24`');
    return found;
  }

  async xml(name: string): Promise<string> {
    if (!networkVisible(this.ctx, this.actor.project, name)) throw notFound(`network "${name}" does not exist`, 'see `kumo network list`');
    const xml = await this.virsh.networkXml(name);
    if (xml) return xml;
    const builtin = BUILTIN_NETWORKS[name];
    if (builtin) return buildNetworkXml(builtin);
    throw notFound(`network "${name}" does not exist`, 'see `kumo network list`');
  }

  /** Validates everything, then defines and starts the network; a failure leaves nothing behind. */
  async create(req: CreateNetworkRequest): Promise<NetworkView> {
    const project = actingProject(this.ctx, this.actor);
    checkRoom(this.ctx, project, { networks: 1 });
    const spec = await this.plan(req);
    const ownBridge = req.createBridge && (spec.mode === 'bridge' || spec.mode === 'ovs');
    await withUndo(this.ctx, `create network ${spec.name}`, async (undo) => {
      this.claim(spec.name, project);
      undo({ kind: 'forget-network-project', name: spec.name, project });
      if (ownBridge) {
        undo({ kind: 'remove-host-bridge', bridge: spec.bridge, ovs: spec.mode === 'ovs' });
        if (spec.mode === 'ovs') await this.ovs.create(spec.bridge, !existsSync('/sys/module/openvswitch'));
        else await this.links.createBridge(spec.bridge);
      }
      undo({ kind: 'remove-network', uri: this.virsh.uri, name: spec.name });
      await this.virsh.defineNetwork(buildNetworkXml(spec));
      await this.virsh.startNetwork(spec.name);
      if (req.autostart) await this.virsh.autostartNetwork(spec.name);
      if (ownBridge) this.ctx.networkBridges.insert({ network: spec.name, bridge: spec.bridge, kind: spec.mode === 'ovs' ? 'ovs' : 'linux' });
    });
    return this.get(spec.name);
  }

  /**
   * Defines a network from libvirt XML (like `virsh net-define`), checked before use; not started.
   * From the cloud the XML may not reach past the network (network-xml-guard.ts); root on the
   * machine may, as with virsh.
   */
  async define(xml: string, reach: Reach = 'cloud'): Promise<NetworkView> {
    const passthrough = networkXmlPassthrough(xml, reach);
    if (passthrough) {
      throw invalid(`the network XML reaches past the network into the server: ${passthrough}`,
        `leave it out: kumo defines plain libvirt networks over the API (${ROOT_ONLY}: kumo network define FILE)`);
    }
    await this.validateXml(xml);
    const facts = parseNetworkXml(xml);
    if (!facts.name) throw invalid('the network XML has no <name>', 'add <name>NAME</name> inside <network>');
    checkName('network', facts.name);
    const project = actingProject(this.ctx, this.actor);
    checkRoom(this.ctx, project, { networks: 1 });
    await this.checkFree(facts.name, facts.mode, facts.bridge,
      facts.address && facts.prefix ? subnetOf(facts.address, facts.prefix) : undefined);
    const name = facts.name;
    await withUndo(this.ctx, `define network ${name}`, async (undo) => {
      this.claim(name, project);
      undo({ kind: 'forget-network-project', name, project });
      await this.virsh.defineNetwork(xml);
    });
    return this.get(facts.name);
  }

  async start(name: string): Promise<void> {
    const n = await this.defined(name);
    if (!n.active) await this.virsh.startNetwork(name);
  }

  async stop(name: string): Promise<void> {
    const n = await this.changeable(name);
    this.refuseIfUsed(n, 'stop');
    if (n.active) await this.virsh.run(['net-destroy', name]);
  }

  async autostart(name: string, on: boolean): Promise<void> {
    await this.changeable(name);
    await this.virsh.autostartNetwork(name, on);
  }

  async delete(name: string): Promise<void> {
    const n = await this.changeable(name);
    this.refuseIfUsed(n, 'delete');
    await this.virsh.removeNetwork(name);
    this.ctx.projects.forgetNetwork(name);
    new SubnetNameRepo(this.ctx.db).delete(name);
    const owned = this.ctx.networkBridges.get(name);
    if (owned) {
      await (owned.kind === 'ovs' ? this.ovs : this.links).remove(owned.bridge);
      this.ctx.networkBridges.delete(name);
    }
  }

  /**
   * Gives a nat or isolated network no instance uses another range, or none (a bare segment):
   * it is defined again with it; a failure, or a crash half-way, puts the old one back.
   */
  async readdress(name: string, range: NetworkRange | undefined, subnetName?: string): Promise<NetworkView> {
    const n = await this.changeable(name);
    if ((n.mode !== 'nat' && n.mode !== 'isolated') || !n.bridge) {
      throw invalid(`network "${name}" is a ${n.mode} network: its addresses come from the network its bridge is on`, 'give ranges to nat and isolated networks only');
    }
    if (!range && n.mode !== 'isolated') throw invalid(`network "${name}" is a nat network: it needs its range`, `delete the network instead: kumo network delete ${name}`);
    this.refuseIfUsed(n, 'change the range of');
    const planned = range ? planRange(range) : undefined;
    if (planned) await this.checkSubnetFree(planned.subnet, n.bridge, (await this.readAll()).filter((x) => x.name !== name), true);
    const old = await this.xml(name);
    const spec: NetworkSpec = { name, mode: n.mode, bridge: n.bridge, ...(planned ? { ipv4: planned.ipv4 } : {}) };
    await withUndo(this.ctx, `readdress network ${name}`, async (undo) => {
      undo({ kind: 'service', handler: RESTORE_NETWORK, args: { uri: this.virsh.uri, name, xml: old, autostart: String(n.autostart) } });
      await this.virsh.removeNetwork(name);
      await this.virsh.defineNetwork(buildNetworkXml(spec));
      await this.virsh.startNetwork(name);
      if (n.autostart) await this.virsh.autostartNetwork(name);
    });
    const names = new SubnetNameRepo(this.ctx.db);
    if (range && subnetName) names.set(name, subnetName);
    else names.delete(name);
    return this.get(name);
  }

  /**
   * Makes sure a network an instance asks for is defined and running. Built-in networks
   * are created on first use; any other must exist already. Returns its mode (an instance's
   * NIC on Open vSwitch cannot carry libvirt's anti-spoofing filter).
   */
  async ensureUsable(name: string): Promise<NetworkMode> {
    const v = this.virsh;
    let net = (await v.listNetworks()).find((n) => n.name === name);
    if (!net) {
      const builtin = BUILTIN_NETWORKS[name];
      if (!builtin) {
        throw new KumoError('NOT_FOUND', `network "${name}" is not defined yet`,
          `create it first (e.g. \`kumo network create ${name} --mode nat --cidr 192.168.222.0/24\`), or use --network default`);
      }
      await this.checkFree(builtin.name, builtin.mode, builtin.bridge, subnetOf(builtin.ipv4!.address, builtin.ipv4!.prefix));
      await v.defineNetwork(buildNetworkXml(builtin));
      await v.autostartNetwork(name);
      net = { name, active: false, autostart: true, persistent: true };
    }
    if (!net.active) await v.startNetwork(name);
    const xml = await v.networkXml(name);
    return xml ? parseNetworkXml(xml).mode : 'isolated';
  }

  /** Records the network as the project's, with the quota check in the same transaction. */
  private claim(name: string, project: string): void {
    reserve(this.ctx, project, { networks: 1 }, () => this.ctx.projects.setNetworkProject(name, project));
  }

  /** A network this actor may stop or delete: its project's own; a shared one (built-ins, the lab's) an admin's only. */
  private async changeable(name: string): Promise<NetworkView> {
    const n = await this.defined(name);
    if (networkOwner(this.ctx, name) === 'shared' && this.actor.role !== 'admin') {
      throw new KumoError('FORBIDDEN', `network "${name}" is shared by every project: only an admin may stop or delete it`, 'make a network of your project\'s own: kumo network create NAME --mode nat --cidr CIDR');
    }
    return n;
  }

  private async defined(name: string): Promise<NetworkView> {
    const n = await this.get(name);
    if (n.builtinPending) throw notFound(`built-in network "${name}" is not made yet (it is made when an instance first uses it)`);
    return n;
  }

  private refuseIfUsed(n: NetworkView, verb: string): void {
    if (n.instances.length) {
      throw new KumoError('IN_USE', `network "${n.name}" is used by ${n.instances.join(', ')}`,
        `delete or move ${n.instances.length === 1 ? 'that instance' : 'those instances'} first, then ${verb} the network`);
    }
  }

  /** Turns a request into a complete spec, refusing anything inconsistent or in use. */
  private async plan(req: CreateNetworkRequest): Promise<NetworkSpec> {
    checkName('network', req.name);
    if (!NETWORK_MODES.includes(req.mode)) throw invalid(`--mode must be one of ${NETWORK_MODES.join(', ')}, got "${req.mode}"`);
    if (req.bridge !== undefined && !BRIDGE_NAME.test(req.bridge)) {
      throw invalid(`bridge name "${req.bridge}" is not a valid interface name`, 'use 1-15 letters, digits, ".", "_" or "-", e.g. br0');
    }
    if (req.mode === 'bridge' || req.mode === 'ovs') return this.planBridged(req);
    if (req.createBridge) throw invalid('--create-bridge is for --mode bridge or ovs', 'drop it: libvirt makes the bridge of a nat or isolated network itself');
    // A bare network (isolated, no range) is OpenStack's network before its subnet: given a range by readdress.
    if (!req.cidr && !(req.bare && req.mode === 'isolated')) throw invalid(`a ${req.mode} network needs --cidr`, 'e.g. --cidr 192.168.222.0/24');
    const planned = req.cidr ? planRange({ ...req, cidr: req.cidr }) : undefined;
    const listed = await this.readAll();
    const bridge = req.bridge ?? (await this.freeBridgeName(listed));
    await this.checkFree(req.name, req.mode, bridge, planned?.subnet, listed);
    return { name: req.name, mode: req.mode, bridge, ...(planned ? { ipv4: planned.ipv4 } : {}) };
  }

  private async planBridged(req: CreateNetworkRequest): Promise<NetworkSpec> {
    for (const [flag, v] of [['--cidr', req.cidr], ['--gateway', req.gateway], ['--dhcp', req.dhcp]] as const) {
      if (v !== undefined) throw invalid(`${flag} does not apply to a ${req.mode} network: addresses come from the network the bridge is on`, `drop ${flag}`);
    }
    if (!req.bridge) throw invalid(`a ${req.mode} network needs --bridge NAME (the host bridge guests join)`, `e.g. --bridge ${req.mode === 'ovs' ? 'ovsbr0' : 'br0'}${req.mode === 'bridge' ? ' (add --create-bridge to make it)' : ''}`);
    if (req.mode === 'ovs') {
      if (!which('ovs-vsctl') || !(await this.ovs.available())) {
        throw new KumoError('MISSING_DEPENDENCY', 'Open vSwitch is not installed or its daemons are not running on this host',
          'apt-get install openvswitch-switch, then start it (systemctl start openvswitch-switch, or /usr/share/openvswitch/scripts/ovs-ctl start)');
      }
      const exists = await this.ovs.exists(req.bridge);
      if (!exists && !req.createBridge) throw invalid(`Open vSwitch bridge "${req.bridge}" does not exist`, 'create it with --create-bridge, or `ovs-vsctl add-br NAME`');
      if (exists && req.createBridge) throw invalid(`Open vSwitch bridge "${req.bridge}" exists already`, 'drop --create-bridge to use it');
    } else {
      const link = (await this.links.list()).find((l) => l.name === req.bridge);
      if (link && link.kind !== 'bridge') throw invalid(`host interface "${req.bridge}" is not a bridge (it is ${link.kind ?? 'a plain device'})`, 'give the name of a Linux bridge such as br0');
      if (!link && !req.createBridge) throw invalid(`host bridge "${req.bridge}" does not exist`, `create it with --create-bridge, or set it up in the host's network configuration`);
      if (link && req.createBridge) throw invalid(`host bridge "${req.bridge}" exists already`, 'drop --create-bridge to attach guests to it');
    }
    await this.checkFree(req.name, req.mode, req.bridge, undefined);
    return { name: req.name, mode: req.mode, bridge: req.bridge };
  }

  /** Refuses a name, bridge or subnet that another network (or the host) already has. */
  private async checkFree(name: string, mode: NetworkMode, bridge: string | undefined, subnet: Subnet | undefined,
    listed?: KnownNetwork[]): Promise<void> {
    listed ??= await this.readAll();
    if (listed.some((n) => n.name === name)) {
      throw new KumoError('ALREADY_EXISTS', `network "${name}" already exists`, `pick another name, or delete it: kumo network delete ${name}`);
    }
    for (const { name: other, facts: f } of listed) {
      if (bridge && f.bridge === bridge) {
        throw new KumoError('IN_USE', `bridge "${bridge}" is already used by network "${other}"`, 'pick another --bridge, or leave it out to get a free one');
      }
    }
    if ((mode === 'nat' || mode === 'isolated') && bridge && (await this.links.list()).some((l) => l.name === bridge)) {
      throw new KumoError('IN_USE', `an interface named "${bridge}" already exists on this host`, 'pick another --bridge, or leave it out to get a free one');
    }
    if (subnet) await this.checkSubnetFree(subnet, bridge, listed, mode === 'nat' || mode === 'isolated');
  }

  /** Refuses a subnet that overlaps another network's or (for nat/isolated) an address of the host off `bridge`. */
  private async checkSubnetFree(subnet: Subnet, bridge: string | undefined, listed: KnownNetwork[], onHost: boolean): Promise<void> {
    for (const { name: other, facts: f } of listed) {
      if (f.address && f.prefix && overlaps(subnet, subnetOf(f.address, f.prefix))) {
        throw new KumoError('IN_USE', `${formatCidr(subnet)} overlaps network "${other}" (${formatCidr(subnetOf(f.address, f.prefix))})`, 'choose a subnet no other network uses');
      }
    }
    for (const a of onHost ? await this.links.addresses() : []) {
      if (a.link !== bridge && overlaps(subnet, subnetOf(a.address, a.prefix))) {
        throw new KumoError('IN_USE', `${formatCidr(subnet)} overlaps the host's address ${a.address}/${a.prefix} on ${a.link}`, 'choose a subnet this host does not use');
      }
    }
  }

  private async freeBridgeName(listed: KnownNetwork[]): Promise<string> {
    const used = new Set((await this.links.list()).map((l) => l.name));
    for (const n of listed) if (n.facts.bridge) used.add(n.facts.bridge);
    for (let i = 1; ; i++) if (!used.has(`virbr${i}`)) return `virbr${i}`;
  }

  private async validateXml(xml: string): Promise<void> {
    if (!which('virt-xml-validate')) return;
    const r = await virtXmlValidate(xml, 'network', this.ctx.exec);
    if (!r.ok) {
      throw invalid(`the network XML does not follow libvirt's schema: ${r.output.split('\n').slice(0, 3).join('; ')}`,
        'compare it with `kumo network show default --xml`');
    }
  }

  private view(name: string, f: NetworkFacts, state: { active: boolean; autostart: boolean; persistent: boolean }): NetworkView {
    const instances = this.ctx.instances.list().filter((i) => i.nics.some((n) => n.network === name)).map((i) => i.name);
    const view: NetworkView = {
      name, mode: f.mode,
      ...(f.address && f.prefix ? { cidr: formatCidr(subnetOf(f.address, f.prefix)), gateway: f.address } : {}),
      ...(f.dhcp ? { dhcp: f.dhcp } : {}),
      ...(f.bridge ? { bridge: f.bridge } : {}),
      active: state.active, autostart: state.autostart, persistent: state.persistent, instances,
    };
    const subnetName = f.address ? new SubnetNameRepo(this.ctx.db).get(name) : undefined;
    return subnetName ? { ...view, subnetName } : view;
  }
}

function specFacts(s: NetworkSpec): NetworkFacts {
  return {
    name: s.name, mode: s.mode, bridge: s.bridge,
    ...(s.ipv4 ? { address: s.ipv4.address, prefix: s.ipv4.prefix, ...(s.ipv4.dhcp ? { dhcp: s.ipv4.dhcp } : {}) } : {}),
  };
}

