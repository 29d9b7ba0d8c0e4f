import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Context } from './context.js';
import { domainOf } from './domains.js';
import { withUndo } from './undo.js';
import { DomainDevices, nextFreeTarget, type DiskDevice } from '../drivers/libvirt/devices.js';
import { createPrivateFile } from '../drivers/host/private-files.js';
import { parseDomainXml } from '../drivers/libvirt/domain-xml.js';
import { KumoError, invalid, notFound } from '../model/errors.js';
import { checkName } from '../model/names.js';
import { checkSize, LIMITS } from '../model/sizes.js';
import type { VolumeRecord } from '../store/volumes.js';
import { machineActor, type Actor } from '../model/actor.js';
import { actingProject, checkRoom, reserve, sees } from './scope.js';

/** A data volume as the faces show it: kumo's record joined with libvirt's view. */
export interface Volume extends Omit<VolumeRecord, 'target'> {
  /** The libvirt target (vdb, vdc, ...): the guest's /dev/vdX when targets have no gaps. */
  device?: string;
  /** Differences between what kumo recorded and what libvirt and the disk have, in words. */
  drift: string[];
}

export interface AttachResult {
  volume: Volume;
  /** true: hot-plugged into the running guest; false: the guest sees it on its next start. */
  live: boolean;
}

export interface ResizeResult {
  volume: Volume;
  fromGiB: number;
  /** 'live' through libvirt (attached to a running guest), 'offline' with qemu-img, or 'unchanged'. */
  how: 'live' | 'offline' | 'unchanged';
}

/** How long `detach` waits by default for a running guest to release the disk. */
export const DETACH_TIMEOUT_MS = 60_000;
const GiB = 1024 ** 3;

/**
 * Data volumes, like OpenStack Cinder's on one host: qcow2 files under KUMO_HOME/volumes,
 * attached to at most one instance at a time, hot-plugged on virtio while it runs. They
 * outlive the instances they were attached to.
 */
export class VolumeService {
  /** `actor`: who asks; it sees and makes volumes of its project only (root in `default` by default). */
  constructor(private readonly ctx: Context, private readonly actor: Actor = machineActor()) {}

  /** Devices are changed on the host the instance runs on, on the domain with the instance's UUID. */
  private devices(instance: string): { devices: DomainDevices; id: string; uri: string } {
    const { virsh, id } = domainOf(this.ctx, instance);
    return { devices: new DomainDevices(virsh), id, uri: virsh.uri };
  }

  async create(name: string, sizeGiB: number): Promise<Volume> {
    checkName('volume', name);
    const size = volumeSize(sizeGiB);
    const project = actingProject(this.ctx, this.actor);
    checkRoom(this.ctx, project, { volumes: 1, diskGiB: size });
    if (this.ctx.volumes.get(name)) throw exists(name);
    const file = join(this.ctx.paths.volumes, `${name}.qcow2`);
    if (existsSync(file)) {
      throw new KumoError('ALREADY_EXISTS', `${file} already exists but kumo has no volume "${name}"`,
        `remove the file if it is a leftover (rm ${file}), or pick another name`);
    }
    await withUndo(this.ctx, `create volume ${name}`, async (undo) => {
      // The record first: its primary key settles a race between two kumo processes, and the
      // quota check in the same transaction a race for the project's last room.
      const record = { name, sizeGiB: size, file, createdAt: new Date().toISOString(), project };
      if (!reserve(this.ctx, project, { volumes: 1, diskGiB: size }, () => this.ctx.volumes.insert(record))) throw exists(name);
      undo({ kind: 'forget-volume', name });
      await createPrivateFile(file); // 0600 from the start (a guest's data); O_EXCL refuses a planted link
      undo({ kind: 'remove-path', path: file });
      await this.ctx.qemuImg.createEmpty(file, size);
    });
    return this.get(name);
  }

  async list(): Promise<Volume[]> {
    const records = this.ctx.volumes.list(this.actor.project);
    const disks = new Map<string, DomainDisks>();
    for (const r of records) {
      if (r.instance && !disks.has(r.instance)) disks.set(r.instance, await this.domainDisks(r.instance));
    }
    return records.map((r) => this.view(r, r.instance ? disks.get(r.instance) : undefined));
  }

  async get(name: string): Promise<Volume> {
    const r = this.record(name);
    const vol = this.view(r, r.instance ? await this.domainDisks(r.instance) : undefined);
    if (existsSync(r.file)) {
      const actual = (await this.ctx.qemuImg.info(r.file)).virtualSize;
      if (actual !== r.sizeGiB * GiB) vol.drift.push(`the disk is ${actual / GiB} GiB, kumo recorded ${r.sizeGiB} GiB`);
    }
    return vol;
  }

  /** Attaches to a running instance (hot-plug) or a stopped one (seen on its next start). */
  async attach(name: string, instance: string): Promise<AttachResult> {
    const v = this.record(name);
    if (v.instance) {
      throw new KumoError('IN_USE', `volume "${name}" is already attached to instance "${v.instance}" (${v.target ?? '?'})`,
        `detach it first: kumo volume detach ${name}`);
    }
    const owner = this.ctx.instances.get(instance);
    if (!owner || !sees(this.actor, owner.project)) throw notFound(`instance "${instance}" does not exist`, 'see `kumo instance list`');
    const live = await this.attachMode(instance);
    if (!existsSync(v.file)) {
      throw notFound(`the disk of volume "${name}" (${v.file}) is gone`, `remove kumo's record with: kumo volume delete ${name}`);
    }
    const { devices, id, uri } = this.devices(instance);
    const target = nextFreeTarget(await devices.usedTargets(id));
    if (!target) throw new KumoError('IN_USE', `instance "${instance}" has no free disk target left (vdb to vdz are taken)`, 'detach a volume from it first');
    const disk: DiskDevice = { file: v.file, target };
    await withUndo(this.ctx, `attach volume ${name} to ${instance}`, async (undo) => {
      if (!this.ctx.volumes.claim(name, instance, target)) {
        throw new KumoError('IN_USE', `volume "${name}" or disk ${target} of instance "${instance}" was just taken by another kumo command`,
          'see `kumo volume list` and try again');
      }
      undo({ kind: 'release-volume', name });
      undo({ kind: 'detach-disk', uri, domain: id, ...disk });
      await devices.attachDisk(id, disk, live).catch((e: unknown) => {
        throw /No more available PCI slots/i.test((e as Error).message)
          ? new KumoError('IN_USE', `instance "${instance}" has no free PCI slot left to hot-plug another disk`,
            `stop it and attach while it is stopped (libvirt adds a slot then): kumo instance stop ${instance} && kumo volume attach ${name} ${instance}`)
          : e;
      });
    });
    return { volume: await this.get(name), live };
  }

  /**
   * Detaches from the instance's definition and, while it runs, from the guest. A running
   * guest releases a virtio disk when it gets to it: this waits until libvirt's live domain no
   * longer has it. Returns the instance it was attached to.
   */
  async detach(name: string, timeoutMs = DETACH_TIMEOUT_MS): Promise<string> {
    const v = this.record(name);
    if (!v.instance || !v.target) throw invalid(`volume "${name}" is not attached to any instance`, `attach it with: kumo volume attach ${name} INSTANCE`);
    const disk: DiskDevice = { file: v.file, target: v.target };
    const { devices, id } = this.devices(v.instance);
    const where = await devices.detachDisk(id, disk);
    if (where.live && !(await devices.waitDiskGone(id, disk, timeoutMs))) {
      throw new KumoError('TIMEOUT',
        `the guest of instance "${v.instance}" did not release volume "${name}" (${v.target}) within ${Math.round(timeoutMs / 1000)} s; ` +
        'it stays attached to the running guest until it does (it is gone from the definition already)',
        `unmount it in the guest and run \`kumo volume detach ${name}\` again, or stop the instance (kumo instance stop ${v.instance}) and run it again`);
    }
    this.ctx.volumes.release(name);
    return v.instance;
  }

  /** Grows a volume: live through libvirt when attached to a running guest, else with qemu-img. */
  async resize(name: string, sizeGiB: number): Promise<ResizeResult> {
    const v = this.record(name);
    const size = volumeSize(sizeGiB);
    // The file's own size counts too: the record may lag behind an interrupted resize.
    const current = Math.max(v.sizeGiB * GiB, existsSync(v.file) ? (await this.ctx.qemuImg.info(v.file)).virtualSize : 0);
    const fromGiB = current / GiB;
    if (size * GiB < current) {
      throw invalid(`volume "${name}" is ${fromGiB} GiB: shrinking it to ${size} GiB would cut off its data`,
        `give --size ${Math.ceil(fromGiB)} or more; for a smaller volume, create a new one and copy the data over`);
    }
    if (size * GiB === current) return { volume: await this.get(name), fromGiB, how: 'unchanged' };
    const attached = v.instance && v.target ? this.devices(v.instance) : undefined;
    const live = attached ? (await attached.devices.diskPresence(attached.id, { file: v.file, target: v.target! })).live : false;
    // The new size is recorded first, with the quota check in the same transaction; put back if the resize fails.
    reserve(this.ctx, v.project, { diskGiB: size - v.sizeGiB }, () => this.ctx.volumes.updateSize(name, size));
    try {
      if (attached && live) await attached.devices.blockResize(attached.id, v.target!, size);
      else await this.ctx.qemuImg.resize(v.file, size);
    } catch (e) {
      this.ctx.volumes.updateSize(name, v.sizeGiB);
      throw e;
    }
    return { volume: await this.get(name), fromGiB, how: live ? 'live' : 'offline' };
  }

  async delete(name: string): Promise<void> {
    const v = this.record(name);
    if (v.instance) {
      throw new KumoError('IN_USE', `volume "${name}" is attached to instance "${v.instance}" (${v.target ?? '?'})`,
        `detach it first: kumo volume detach ${name}`);
    }
    await rm(v.file, { force: true });
    this.ctx.volumes.delete(name);
  }

  private record(name: string): VolumeRecord {
    const r = this.ctx.volumes.get(name);
    // Another project's volume is answered exactly like a missing one.
    if (!r || !sees(this.actor, r.project)) throw notFound(`volume "${name}" does not exist`, 'see `kumo volume list`');
    return r;
  }

  /** true: the instance runs (hot-plug); false: it is stopped. Other states are refused. */
  private async attachMode(instance: string): Promise<boolean> {
    const { virsh, id } = domainOf(this.ctx, instance);
    const state = await virsh.domainState(id);
    if (state === 'running' || state === 'paused') return true;
    if (state === 'shut off') return false;
    if (state === 'missing') {
      throw notFound(`libvirt has no domain "${instance}" any more (removed behind kumo's back)`,
        `remove kumo's record with: kumo instance delete ${instance}`);
    }
    throw invalid(`instance "${instance}" is ${state}: volumes attach to running or stopped instances`, 'wait until it runs or is shut off, then try again');
  }

  /** The disks of the instance's domain as it is now (running or defined); undefined when it is gone. */
  private async domainDisks(instance: string): Promise<DomainDisks> {
    // A volume record may name an instance deleted meanwhile: no domain, no disks.
    if (!this.ctx.instances.get(instance)) return undefined;
    const { virsh, id } = domainOf(this.ctx, instance);
    const xml = await virsh.dumpXml(id);
    return xml ? parseDomainXml(xml).disks : undefined;
  }

  private view(r: VolumeRecord, disks: DomainDisks): Volume {
    const drift: string[] = [];
    if (!existsSync(r.file)) drift.push(`its disk ${r.file} is gone`);
    if (r.instance) {
      if (!disks) drift.push(`the libvirt domain of instance "${r.instance}" is gone (\`kumo volume detach ${r.name}\` fixes the record)`);
      else if (!disks.some((d) => d.target === r.target && d.file === r.file)) {
        drift.push(`libvirt's domain "${r.instance}" has no disk ${r.target ?? '?'} with this volume (\`kumo volume detach ${r.name}\` fixes the record)`);
      }
    }
    return {
      name: r.name, sizeGiB: r.sizeGiB, file: r.file,
      ...(r.instance ? { instance: r.instance, ...(r.target ? { device: r.target } : {}) } : {}),
      createdAt: r.createdAt, project: r.project, drift,
    };
  }
}

type DomainDisks = { file: string; target: string }[] | undefined;

const exists = (name: string) =>
  new KumoError('ALREADY_EXISTS', `volume "${name}" already exists`, `pick another name, or delete it: kumo volume delete ${name}`);

/** checkSize's bounds for disks, worded for the volume commands' --size. */
function volumeSize(gib: number): number {
  try {
    return checkSize('disk', gib);
  } catch {
    const l = LIMITS.disk;
    throw invalid(`--size must be a whole number of GiB from ${l.min} to ${l.max}, got ${Number.isNaN(gib) ? 'not a number' : gib}`,
      'pass e.g. --size 5');
  }
}
