import { KumoError } from '../../model/errors.js';
import type { RevertTo } from '../../model/types.js';
import type { Virsh } from './virsh.js';
import { attr, buildXml, child, children, parseXml, text, type XmlNode } from './xml.js';

/**
 * libvirt's internal (qcow2) snapshots of a domain, as `virsh snapshot-*` handles them:
 * disks, and for a running domain its memory too, stored inside the qcow2 files.
 */

/** The domain's state when the snapshot was taken, in libvirt's words (running, shutoff, paused, ...). */
export type SnapshotState = 'running' | 'shutoff' | 'paused' | 'disk-snapshot' | 'crashed' | 'pmsuspended' | 'blocked' | 'nostate';

export interface SnapshotInfo {
  name: string;
  /** Seconds since the epoch, as libvirt records it (and names unnamed snapshots after). */
  creationTime: number;
  state: SnapshotState;
  parent?: string;
  /** Whether the guest's memory is in it (a snapshot of a running or paused domain). */
  memory: boolean;
  /** The writable disk files the domain had when the snapshot was taken (a revert brings back that set). */
  disks: string[];
}

/** What each disk of the domain does in a snapshot: taken inside its qcow2 file, or left out. */
export interface SnapshotDisk {
  target: string;
  snapshot: 'internal' | 'no';
}

export type { RevertTo } from '../../model/types.js';

interface DiskEntry {
  target: string;
  file?: string;
  format?: string;
  /** Read-only media (a CD-ROM such as the NoCloud seed) never change and hold no snapshots. */
  readonly: boolean;
}

function diskEntries(domain: XmlNode | undefined): DiskEntry[] {
  return children(child(domain, 'devices'), 'disk').map((d) => {
    const device = attr(d, 'device') ?? 'disk';
    const file = attr(child(d, 'source'), 'file') ?? attr(child(d, 'source'), 'dev');
    const format = attr(child(d, 'driver'), 'type');
    return {
      target: attr(child(d, 'target'), 'dev') ?? '', ...(file ? { file } : {}), ...(format ? { format } : {}),
      readonly: device === 'cdrom' || device === 'floppy' || child(d, 'readonly') !== undefined,
    };
  });
}

const writableFiles = (domain: XmlNode | undefined) =>
  diskEntries(domain).filter((d) => !d.readonly && d.file).map((d) => d.file!).sort();

/** The files of a domain's writable disks: what an internal snapshot holds state for. */
export function writableDisks(domainXml: string): string[] {
  return writableFiles(child(parseXml(domainXml), 'domain'));
}

/**
 * The disks of a domain for an internal snapshot. Read-only media (the NoCloud seed CD-ROM,
 * a raw ISO) cannot hold internal snapshots and never change, so they are left out explicitly;
 * libvirt 9 does that by itself, older ones refuse the whole snapshot. A writable disk that is
 * not qcow2 cannot be snapshotted internally at all.
 */
export function snapshotDisks(domainXml: string): SnapshotDisk[] {
  return diskEntries(child(parseXml(domainXml), 'domain')).map((d) => {
    if (d.readonly) return { target: d.target, snapshot: 'no' as const };
    if (d.format !== 'qcow2') {
      throw new KumoError('INVALID_INPUT', `disk ${d.target} is ${d.format ?? 'of an unknown format'}, and internal snapshots need qcow2 disks`,
        'convert the disk to qcow2 (qemu-img convert -O qcow2) or detach it before taking a snapshot');
    }
    return { target: d.target, snapshot: 'internal' as const };
  });
}

/** `<domainsnapshot>` for `virsh snapshot-create --xmlfile`; without a name libvirt uses the creation time in epoch seconds. */
export function buildSnapshotXml(spec: { name?: string; disks: SnapshotDisk[] }): string {
  return buildXml({
    domainsnapshot: {
      ...(spec.name !== undefined ? { name: spec.name } : {}),
      disks: { disk: spec.disks.map((d) => ({ '@_name': d.target, '@_snapshot': d.snapshot })) },
    },
  });
}

/** The parts of `virsh snapshot-dumpxml` a listing needs. */
export function parseSnapshotXml(xml: string): SnapshotInfo {
  const snap = child(parseXml(xml), 'domainsnapshot');
  const name = text(snap?.name);
  const creationTime = Number(text(snap?.creationTime));
  if (!name || !Number.isFinite(creationTime)) throw new KumoError('LIBVIRT_ERROR', 'libvirt returned a snapshot without a name or creation time');
  const parent = text(child(snap, 'parent')?.name);
  const memory = attr(child(snap, 'memory'), 'snapshot');
  const state = (text(snap?.state) ?? 'nostate') as SnapshotState;
  return {
    name, creationTime, state, ...(parent ? { parent } : {}),
    memory: memory !== undefined ? memory !== 'no' : state === 'running' || state === 'paused',
    disks: writableFiles(child(snap, 'domain')),
  };
}

/**
 * Typed `virsh snapshot-*` calls. Names travel as `--opt=value` arguments, so a name that
 * starts with "-" is never read as an option; snapshot XML goes through a temporary file.
 */
export class SnapshotDriver {
  constructor(private readonly virsh: Virsh) {}

  async names(domain: string): Promise<string[]> {
    // Most domains have none (every delete asks): a count over the protocol spares the process.
    if ((await this.virsh.snapshotCount(domain)) === 0) return [];
    const out = await this.virsh.run(['snapshot-list', `--domain=${domain}`, '--name']);
    return out.split('\n').map((l) => l.trim()).filter(Boolean);
  }

  async info(domain: string, name: string): Promise<SnapshotInfo> {
    return parseSnapshotXml(await this.virsh.run(['snapshot-dumpxml', `--domain=${domain}`, `--snapshotname=${name}`]));
  }

  /** Every snapshot of the domain, oldest first (like `virsh snapshot-list`, with full creation times). */
  async list(domain: string): Promise<SnapshotInfo[]> {
    const all = await Promise.all((await this.names(domain)).map((n) => this.info(domain, n)));
    return all.sort((a, b) => a.creationTime - b.creationTime || a.name.localeCompare(b.name));
  }

  /**
   * Takes an internal snapshot of every qcow2 disk (and the memory, when the domain runs),
   * atomically: either all of it is made or nothing. Returns the snapshot's name.
   */
  async create(domain: string, domainXml: string, name?: string): Promise<string> {
    const xml = buildSnapshotXml({ ...(name !== undefined ? { name } : {}), disks: snapshotDisks(domainXml) });
    await this.virsh.runWithXml(xml, (file) => ['snapshot-create', `--domain=${domain}`, `--xmlfile=${file}`, '--atomic']);
    // `virsh -q` prints nothing on success; a new snapshot becomes the domain's current one.
    return name ?? (await this.virsh.run(['snapshot-current', `--domain=${domain}`, '--name'])).trim();
  }

  /**
   * `virsh snapshot-revert`: disks (and memory, for a snapshot of a running domain) go back.
   * The domain ends in the snapshot's state unless `to` asks for running or paused;
   * `force` is libvirt's --force for reverts it considers risky.
   */
  async revert(domain: string, name: string, to: RevertTo = 'snapshot', force = false): Promise<void> {
    await this.virsh.run(['snapshot-revert', `--domain=${domain}`, `--snapshotname=${name}`,
      ...(to === 'running' ? ['--running'] : to === 'paused' ? ['--paused'] : []), ...(force ? ['--force'] : [])]);
  }

  /** Removes one snapshot (its data inside the qcow2 files and libvirt's metadata); children stay. */
  async delete(domain: string, name: string): Promise<void> {
    await this.virsh.run(['snapshot-delete', `--domain=${domain}`, `--snapshotname=${name}`]);
  }
}
