import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Context } from './context.js';
import { sleep } from '../exec/process.js';
import { waitingFor } from '../exec/waits.js';
import { ImageService } from './images.js';
import { makeInstanceFiles } from './instance-files.js';
import { FlavorService } from './flavors.js';
import { NetworkService } from './networks.js';
import { onRecover, withUndo } from './undo.js';
import { assertRoom } from './disk-full.js';
import { defineOrRemove } from './domain-define.js';
import { HostService, type PlaceOptions } from './host.js';
import { SnapshotService } from './snapshots.js';
import { domainOf } from './domains.js';
import { growRootDisk } from './root-disk.js';
import { imageReadyCheck, READY_TIMEOUT_MS, readinessOf, waitReady, type ReadyCheck, type ReadyInfo, type Readiness, type WaitOptions } from './ready.js';
import { admitToDhcp, dhcpAddresses, dismissFromDhcp } from './leases.js';
import { stateOf } from './instance-states.js';
import { buildList, preparedList, type BuiltList } from './instance-list.js';
import { buildDomainXml, parseDomainXml } from '../drivers/libvirt/domain-xml.js';
import { nicFiltersAvailable } from '../drivers/libvirt/nic-filter.js';
import { parseUserData } from '../drivers/image/seed.js';
import { makeFolder } from '../drivers/host/private-files.js';
import { KumoError, invalid, notFound } from '../model/errors.js';
import { checkName } from '../model/names.js';
import { isSshPublicKey } from '../model/checks.js';
import { checkSize } from '../model/sizes.js';
import { CRYPT_HASH, hashPassword } from '../model/password.js';
import type { Instance, InstanceSpec, NicInfo, ObservedState, RuntimeState } from '../model/types.js';
import type { InstanceRecord } from '../store/instances.js';
import { machineActor, type Actor } from '../model/actor.js';
import { actingProject, checkRoom, reserve, sees } from './scope.js';
import { attachableNetwork } from './network-owners.js';
import { keepDomainCopy } from './ha/restart.js';
import { SettingsService } from './settings.js';

export interface CreateRequest {
  name: string;
  image: string;
  /** A flavor, or the three sizes given one by one (a custom flavor, as in the course's first quiz). */
  flavor?: string;
  vcpus?: number;
  ramMiB?: number;
  diskGiB?: number;
  /** Plain text; hashed here and never stored. */
  password?: string;
  passwordHash?: string;
  sshKeys?: string[];
  networks?: string[];
  dataDisks?: number[];
  userData?: string;
  start?: boolean;
  /** Pin to a registered host; without it kumo places the instance (most free memory that fits). */
  host?: string;
  /** Without `host`: where kumo may place it, and how. */
  placement?: PlaceOptions;
  /** The libvirt UUID to give it (default: a new one): a face that must name the instance before it exists (Nova's server id). */
  uuid?: string;
  /** Highly available: restarted on another hypervisor when its host dies (service/ha). */
  ha?: boolean;
}

/** The folder of an instance where QEMU makes its VNC socket. */
export const VNC_FOLDER = 'vnc';

export class InstanceService {
  private readonly imagesSvc: ImageService;
  private readonly flavorsSvc: FlavorService;
  private readonly hostsSvc: HostService;

  /** `actor`: who asks; it sees and makes instances of its project only (root in `default` by default). */
  constructor(private readonly ctx: Context, private readonly actor: Actor = machineActor()) {
    this.imagesSvc = new ImageService(ctx, actor);
    this.flavorsSvc = new FlavorService(ctx, actor);
    this.hostsSvc = new HostService(ctx);
  }

  /** Checks a request completely before anything is made, and resolves it to a spec. */
  async validate(req: CreateRequest): Promise<InstanceSpec> {
    checkName('instance', req.name);
    const image = this.imagesSvc.get(req.image);
    // A flavor plus single sizes is allowed: the sizes win, like `--flavor small --disk-size 20`.
    const base = req.flavor ? this.flavorsSvc.get(req.flavor) : undefined;
    if (!base && !(req.vcpus !== undefined && req.ramMiB !== undefined && req.diskGiB !== undefined)) {
      throw invalid('no size given: pass --flavor NAME, or all of --vcpus, --ram and --disk-size',
        'e.g. --flavor small (1 vCPU, 1 GiB RAM, 10 GiB disk); see `kumo flavor list`');
    }
    const vcpus = checkSize('vcpus', req.vcpus ?? base!.vcpus);
    const ramMiB = checkSize('ram', req.ramMiB ?? base!.ramMiB);
    const diskGiB = checkSize('disk-size', req.diskGiB ?? base!.diskGiB);
    const imageGiB = Math.ceil(image.virtualSizeBytes / 1024 ** 3);
    if (diskGiB * 1024 ** 3 < image.virtualSizeBytes) {
      throw invalid(`a ${diskGiB} GiB disk is smaller than image "${image.name}" (${imageGiB} GiB)`,
        `choose a flavor or --disk-size of at least ${imageGiB}`);
    }
    const dataDisks = (req.dataDisks ?? []).map((d) => checkSize('disk', d));
    if (dataDisks.length > 8) throw invalid(`at most 8 extra disks, got ${dataDisks.length}`);
    const sshKeys = (req.sshKeys ?? []).map((k) => k.trim());
    for (const k of sshKeys) {
      if (!isSshPublicKey(k)) {
        throw invalid(`"${k.slice(0, 40)}${k.length > 40 ? '…' : ''}" is not an ssh public key`,
          'pass the contents of a .pub file (e.g. --ssh-key ~/.ssh/id_ed25519.pub)');
      }
    }
    if (req.userData !== undefined) parseUserData(req.userData);
    let passwordHash = req.passwordHash;
    if (req.password !== undefined) passwordHash = hashPassword(req.password);
    if (passwordHash !== undefined && !CRYPT_HASH.test(passwordHash)) {
      throw invalid('the password hash is not a crypt(3) hash such as "$6$salt$..."', 'pass --password or --password-file instead');
    }
    if (!passwordHash && !sshKeys.length) {
      throw invalid('no way to log in: give a root password or an ssh key',
        'pass --password-file FILE, --password TEXT or --ssh-key ~/.ssh/id_ed25519.pub');
    }
    // The site's default (the lab sets its instance segments), else the course's NAT network.
    const siteDefault = new SettingsService(this.ctx).get('instance.networks').split(',').filter(Boolean);
    const networks = req.networks?.length ? req.networks : siteDefault.length ? siteDefault : ['default'];
    const project = actingProject(this.ctx, this.actor);
    for (const n of networks) attachableNetwork(this.ctx, project, checkName('network', n));
    checkRoom(this.ctx, project, quotaNeed({ vcpus, ramMiB, diskGiB, dataDisks }));
    // Names are global (libvirt's and the guests' hostnames): a taken name is refused in every project.
    if (this.ctx.instances.get(req.name)) throw exists(req.name);
    const host = req.host ?? (await this.hostsSvc.place(vcpus, ramMiB, req.placement));
    if ((await this.ctx.virshFor(host).domainState(req.name)) !== 'missing') {
      throw new KumoError('ALREADY_EXISTS', `libvirt on host ${host} already has a domain named "${req.name}" that kumo did not make`,
        'pick another name; kumo never touches domains it did not create');
    }
    return {
      host,
      // The flavor is recorded when the sizes are the flavor's; overridden sizes make it custom.
      name: req.name, image: image.name,
      ...(base && base.vcpus === vcpus && base.ramMiB === ramMiB && base.diskGiB === diskGiB ? { flavor: base.name } : {}),
      vcpus, ramMiB, diskGiB, networks, dataDisks, ...(passwordHash ? { passwordHash } : {}), sshKeys,
      ...(req.ha ? { ha: true } : {}),
    };
  }

  /**
   * Makes an instance: a qcow2 overlay on the image grown to the flavor's size, extra data
   * disks, a NoCloud seed, and a libvirt domain; then starts it. Any failure undoes it all.
   */
  async create(req: CreateRequest, onStep: (step: string) => void = () => undefined): Promise<Instance> {
    const spec = await this.validate(req);
    const image = this.imagesSvc.get(spec.image);
    const v = this.ctx.virshFor(spec.host);
    const networks = new NetworkService(this.ctx, v);
    const modes = new Map<string, string>();
    for (const n of spec.networks) modes.set(n, await networks.ensureUsable(n));
    const accel = await this.ctx.accel();
    const dir = join(this.ctx.paths.instances, spec.name);
    if (existsSync(dir)) {
      throw new KumoError('ALREADY_EXISTS', `${dir} already exists but kumo has no instance "${spec.name}"`,
        `remove the folder if it is a leftover (rm -r ${dir}), or pick another name`);
    }
    const record: InstanceRecord = {
      ...spec, uuid: req.uuid ?? randomUUID(),
      nics: spec.networks.map((network) => ({ mac: randomMac(), network })),
      createdAt: new Date().toISOString(), project: this.actor.project,
    };
    assertRoom(this.ctx.paths.home, `instance "${spec.name}"`);
    await withUndo(this.ctx, `create instance ${spec.name}`, async (undo) => {
      // The record first, with the quota check in the same transaction: it holds the room while
      // the slow steps run, so two creates cannot both take the last of it; the undo frees it.
      reserve(this.ctx, record.project, quotaNeed(spec), () => {
        if (this.ctx.instances.get(spec.name)) throw exists(spec.name);
        this.ctx.instances.insert(record);
      });
      undo({ kind: 'forget-instance', name: spec.name });
      onStep('disk');
      // Root and QEMU's group only (QEMU walks through to its disks); every file in it 0600.
      await makeFolder(dir, 'qemu-traverse');
      undo({ kind: 'remove-path', path: dir });
      const vncSocket = join(dir, VNC_FOLDER, 'vnc.sock');
      const { root, dataFiles, seedIso } = await makeInstanceFiles(this.ctx, dir, record, image, { vncSocket, userData: req.userData }, onStep);
      onStep('define');
      const filters = await nicFiltersAvailable(v); // a host without libvirt's nwfilter: no anti-spoofing there
      const xml = buildDomainXml({
        name: spec.name, uuid: record.uuid, type: accel.accel === 'kvm' ? 'kvm' : 'qemu',
        vcpus: spec.vcpus, ramMiB: spec.ramMiB,
        disks: [{ file: root, format: 'qcow2' }, ...dataFiles.map((file) => ({ file, format: 'qcow2' as const }))],
        seedIso, nics: record.nics.map((n) => ({ ...n, antiSpoofing: filters && modes.get(n.network) !== 'ovs' })), vncSocket,
        ...(image.kernel ? { kernel: { kernel: image.kernel, ...(image.initrd ? { initrd: image.initrd } : {}), ...(image.cmdline ? { cmdline: image.cmdline } : {}) } } : {}),
        consoleLog: join(dir, 'console.log'),
        metadata: { image: image.name, ...(spec.flavor ? { flavor: spec.flavor } : {}), createdBy: 'kumo' },
      });
      await admitToDhcp(this.ctx, record.nics); // kumo's own DHCP answers only listed MACs
      // By UUID: if define fails because a domain of that name appeared meanwhile, the undo leaves it alone.
      const undefine = { kind: 'undefine-domain' as const, uri: v.uri, name: spec.name, uuid: record.uuid };
      const rejournal = undo(undefine);
      // The call is journaled in flight: a define libvirt finishes late (or after kumo died) is removed too.
      await defineOrRemove(v, xml, record.uuid, (until) => rejournal({ ...undefine, ...(until ? { pendingUntil: until } : {}) }));
      if (req.start !== false) {
        onStep('start');
        await v.start(record.uuid);
      }
    });
    // What HA defines elsewhere if the host dies before the watcher's first beat takes its own copy.
    if (spec.ha) await keepDomainCopy(this.ctx, spec.host, record).catch(() => undefined);
    return this.get(spec.name, { ask: true });
  }

  /** Every instance kumo made, with libvirt's view of it and how fresh that is. */
  async list(): Promise<Instance[]> {
    return (await this.buildList()).views;
  }

  /** The list as `render` (one constant function) makes it an answer, kept ready between calls (instance-list.ts). */
  listRendered<T>(render: (views: Instance[]) => T): Promise<T> {
    return preparedList(this.ctx, this.actor.project, render, () => this.buildList());
  }

  private buildList(): Promise<BuiltList> {
    return buildList(this.ctx, this.ctx.instances.list(this.actor.project), (...args) => this.view(...args));
  }

  /** One instance. `ask`: ask libvirt, not the followed events (right after kumo's own change, its event may trail). */
  async get(name: string, { ask = false } = {}): Promise<Instance> {
    const r = this.record(name);
    const { virsh, id } = domainOf(this.ctx, name);
    const observed = await stateOf(this.ctx, r, virsh, id, ask);
    const { state } = observed;
    const inst = this.view(r, observed, await dhcpAddresses(this.ctx, [r]));
    if (state === 'unknown') return inst;
    if (state === 'missing') {
      // Found by UUID only: a domain that took the name over is someone else's, and said so.
      const namesake = (await virsh.listDomains().catch(() => [])).find((d) => d.name === name);
      if (namesake) inst.drift.push(`libvirt's domain "${name}" has uuid ${namesake.uuid}, kumo made ${r.uuid}: it was replaced behind kumo's back, and kumo leaves it alone`);
    } else {
      const xml = await virsh.dumpXml(id);
      const facts = xml ? parseDomainXml(xml) : undefined;
      // A unix socket (root only); an instance defined before that listens on loopback TCP until recreated.
      if (state === 'running' && facts?.vncSocket) inst.vnc = facts.vncSocket;
      else if (facts?.vncPort) inst.vnc = `127.0.0.1:${facts.vncPort}`;
    }
    // A socket is reached through the shared filesystem; a lab hypervisor's TCP port only inside its namespace.
    const shell = this.ctx.hosts.get(r.host)?.shell;
    if (inst.vnc && !inst.vnc.startsWith('/') && shell?.kind === 'netns') inst.vncNetns = shell.netns;
    return inst;
  }

  async xml(name: string): Promise<string> {
    this.record(name);
    const { virsh, id } = domainOf(this.ctx, name);
    const xml = await virsh.dumpXml(id);
    if (!xml) throw notFound(`libvirt has no domain "${name}" any more`, `remove kumo's record with: kumo instance delete ${name}`);
    return xml;
  }

  /** Starts a stopped instance; false when it was running already. */
  async start(name: string): Promise<boolean> {
    this.record(name);
    const state = await this.liveState(name);
    if (state === 'running') return false;
    const { virsh, id } = domainOf(this.ctx, name);
    await virsh.start(id);
    return true;
  }

  /** Asks the guest to shut down (ACPI) and waits; pulls the plug after the grace period. */
  async stop(name: string, graceMs = 60_000): Promise<{ forced: boolean }> {
    this.record(name);
    const state = await this.liveState(name);
    if (state === 'shut off') return { forced: false };
    const { virsh, id } = domainOf(this.ctx, name);
    await virsh.shutdown(id);
    const shutDown = await waitingFor(`instance "${name}" to shut down (forced off after ${Math.round(graceMs / 1000)} s)`, async () => {
      for (const deadline = Date.now() + graceMs; Date.now() < deadline; await sleep(500)) if ((await virsh.domainState(id)) === 'shut off') return true;
      return false;
    });
    if (shutDown) return { forced: false };
    await virsh.destroy(id);
    return { forced: true };
  }

  async reboot(name: string): Promise<void> {
    this.record(name);
    const state = await this.liveState(name);
    if (state !== 'running') throw invalid(`instance "${name}" is ${state}, not running`, `start it: kumo instance start ${name}`);
    const { virsh, id } = domainOf(this.ctx, name);
    await virsh.reboot(id);
  }

  /** Pulls the plug, like `virsh destroy`: the instance stays defined. */
  async destroy(name: string): Promise<void> {
    this.record(name);
    const state = await this.liveState(name);
    if (state === 'shut off') return;
    const { virsh, id } = domainOf(this.ctx, name);
    await virsh.destroy(id);
  }

  /**
   * Removes the domain, its disks, its seed and kumo's record. Works on a half-gone instance too.
   * Volumes attached to it survive, detached (as in OpenStack); returns their names. Once begun
   * it is finished: a kumo killed half-way finishes it on its next start (the journal's step).
   */
  async delete(name: string): Promise<{ detachedVolumes: string[] }> {
    const { nics, project } = this.record(name);
    return withUndo(this.ctx, `delete instance ${name}`, async (undo, step) => {
      undo({ kind: 'service', handler: FINISH_DELETE, args: { name, project }, when: 'after-crash' });
      const { virsh, id } = domainOf(this.ctx, name);
      // Internal snapshots live inside the disk files, and attached volumes outlive the instance.
      if ((await virsh.domainState(id)) !== 'missing') await new SnapshotService(this.ctx, this.actor).deleteAll(name);
      step();
      await virsh.removeDomain(id);
      step();
      await rm(join(this.ctx.paths.instances, name), { recursive: true, force: true });
      step();
      await dismissFromDhcp(this.ctx, nics).catch(() => undefined); // its DHCP host may be gone (lab down)
      step();
      const detachedVolumes = this.ctx.volumes.releaseAll(name);
      this.ctx.instances.delete(name);
      return { detachedVolumes };
    });
  }

  /** Grows the root disk of a stopped instance (service/root-disk.ts). */
  async resize(name: string, diskGiB: number): Promise<{ fromGiB: number; toGiB: number }> {
    return growRootDisk(this.ctx, this.record(name), () => this.liveState(name), diskGiB);
  }

  /** Waits until the guest passes its image's readiness check, or `opts.check` (ready.ts). */
  async waitReady(name: string, timeoutMs = READY_TIMEOUT_MS, opts: Partial<Pick<WaitOptions, 'check'>> = {}): Promise<ReadyInfo> {
    return waitReady(this.ctx, this, name, { ...opts, timeoutMs, check: opts.check ?? this.readyCheck(name) });
  }

  /** The instance with its readiness (booting, ready, failed) by its image's check: what show gives. */
  async show(name: string): Promise<Instance & { readiness: Readiness }> {
    const inst = await this.get(name);
    return { ...inst, readiness: await readinessOf(this.ctx, inst, this.readyCheck(name), this.consoleLog(name)) };
  }
  readyCheck = (name: string): ReadyCheck => imageReadyCheck(this.ctx, this.record(name).image);

  consoleLog(name: string): string {
    return join(this.ctx.paths.instances, name, 'console.log');
  }

  async readConsoleLog(name: string): Promise<string> {
    this.record(name);
    return readFile(this.consoleLog(name), 'utf8').catch(() => '');
  }

  record(name: string): InstanceRecord {
    // Another project's instance is answered exactly like a missing one (the console tickets ask too).
    const r = this.ctx.instances.get(name);
    if (!r || !sees(this.actor, r.project)) throw notFound(`instance "${name}" does not exist`, 'see `kumo instance list`');
    return r;
  }

  private async liveState(name: string): Promise<RuntimeState> {
    const { virsh, id } = domainOf(this.ctx, name);
    const state = await virsh.domainState(id);
    if (state === 'missing') {
      throw notFound(`libvirt has no domain "${name}" any more (removed behind kumo's back)`,
        `remove kumo's record with: kumo instance delete ${name}`);
    }
    return state;
  }

  private view(r: InstanceRecord, { state, observedAt, source }: ObservedState, leases: Map<string, string>, why = '',
    attached = this.ctx.volumes.attachedTo(r.name)): Instance {
    const nics: NicInfo[] = r.nics.map((n) => {
      const ipv4 = leases.get(n.mac.toLowerCase());
      return ipv4 ? { ...n, ipv4 } : { ...n };
    });
    const drift = state === 'missing' ? ['the libvirt domain is gone (deleted outside kumo)']
      : state === 'unknown' ? [`host ${r.host} does not answer${why}: its state is unknown, not gone`] : [];
    const ha = this.ctx.hostHa.get(r.host)?.state; // a host HA holds down: its instances are unreachable, not gone
    if (ha && ha !== 'up') drift.push(`its host ${r.host} is DOWN (${ha === 'fenced' ? 'fenced' : ha === 'unfenced' ? 'NOT fenced' : 'missed heartbeats'}): unreachable until it comes back`);
    const volumes = attached.map((v) => ({ name: v.name, device: `/dev/${v.target ?? '?'}`, sizeGiB: v.sizeGiB }));
    return { ...r, ha: r.ha === true, state, observedAt, stateSource: source, nics, volumes, drift };
  }
}

/** The delete a kumo killed half-way began, finished by the next start (unless the record went meanwhile). */
const FINISH_DELETE = 'finish-instance-delete';
onRecover(FINISH_DELETE, async (ctx, { name, project }) => {
  if (ctx.instances.get(name!)) await new InstanceService(ctx, machineActor(project)).delete(name!);
});

/** What an instance counts against its project's quotas: its disk is the root disk and its extra disks. */
const quotaNeed = (s: Pick<InstanceSpec, 'vcpus' | 'ramMiB' | 'diskGiB' | 'dataDisks'>) =>
  ({ instances: 1, vcpus: s.vcpus, ramMiB: s.ramMiB, diskGiB: s.diskGiB + s.dataDisks.reduce((a, b) => a + b, 0) });

const exists = (name: string) => new KumoError('ALREADY_EXISTS', `instance "${name}" already exists`, `pick another name, or delete it: kumo instance delete ${name}`);

/** A locally administered MAC in QEMU's 52:54:00 range, as libvirt itself picks. */
function randomMac(): string {
  return ['52', '54', '00', ...[...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

