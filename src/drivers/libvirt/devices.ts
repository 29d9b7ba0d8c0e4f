import { KumoError } from '../../model/errors.js';
import { sleep } from '../../exec/process.js';
import { waitingFor } from '../../exec/waits.js';
import { parseDomainXml } from './domain-xml.js';
import type { Virsh } from './virsh.js';
import { buildXml } from './xml.js';

/** A file-backed virtio disk of a domain, as attach-device/detach-device take it. */
export interface DiskDevice {
  file: string;
  /** The libvirt target, vdb..vdz. The guest names disks in the order it finds them, so its
   * /dev/vdX can differ when targets have gaps (as with any cloud's "device" hint). */
  target: string;
  format?: 'qcow2' | 'raw';
}

/** Where a disk is: in the running domain, in its persistent definition, or both. */
export interface DiskPresence {
  live: boolean;
  config: boolean;
}

export function buildDiskXml(d: DiskDevice): string {
  return buildXml({
    disk: {
      '@_type': 'file', '@_device': 'disk',
      driver: { '@_name': 'qemu', '@_type': d.format ?? 'qcow2', '@_discard': 'unmap' },
      source: { '@_file': d.file },
      target: { '@_dev': d.target, '@_bus': 'virtio' },
    },
  });
}

/** The first of vdb..vdz no disk uses (vda is the root disk); undefined when all are taken. */
export function nextFreeTarget(used: Iterable<string>): string | undefined {
  const taken = new Set(used);
  for (let c = 'b'.charCodeAt(0); c <= 'z'.charCodeAt(0); c++) {
    const t = `vd${String.fromCharCode(c)}`;
    if (!taken.has(t)) return t;
  }
  return undefined;
}

const ACTIVE = new Set(['running', 'paused', 'in shutdown', 'pmsuspended', 'blocked', 'idle']);
const POLL_MS = 250;

/**
 * Disks added to and removed from existing domains, live (hot-plug on virtio) and in their
 * persistent definition. Disk XML is built from typed data and reaches libvirt as a file.
 */
export class DomainDevices {
  constructor(private readonly virsh: Virsh) {}

  /** Every disk target the domain uses, running or defined (a disk may be in only one). */
  async usedTargets(domain: string): Promise<string[]> {
    const xmls = [await this.virsh.dumpXml(domain), await this.virsh.dumpXml(domain, true)];
    return [...new Set(xmls.flatMap((x) => (x ? parseDomainXml(x).disks.map((d) => d.target) : [])))];
  }

  /** Adds the disk to the definition (--persistent) and, with live, to the running guest. */
  async attachDisk(domain: string, disk: DiskDevice, live: boolean): Promise<void> {
    await this.virsh.runWithXml(buildDiskXml(disk),
      (file) => ['attach-device', domain, file, '--persistent', ...(live ? ['--live'] : [])]);
  }

  /** Whether this file is at this target; a different disk at the same target does not count. */
  async diskPresence(domain: string, disk: DiskDevice): Promise<DiskPresence> {
    const has = (xml: string | undefined) =>
      !!xml && parseDomainXml(xml).disks.some((d) => d.target === disk.target && d.file === disk.file);
    const active = ACTIVE.has(await this.virsh.domainState(domain));
    return {
      live: active && has(await this.virsh.dumpXml(domain)),
      config: has(await this.virsh.dumpXml(domain, true)),
    };
  }

  /**
   * Asks libvirt to remove the disk from wherever it is and returns where it was. A live
   * removal only starts here: the guest releases the disk when it gets to it (waitDiskGone).
   */
  async detachDisk(domain: string, disk: DiskDevice): Promise<DiskPresence> {
    const where = await this.diskPresence(domain, disk);
    if (!where.live && !where.config) return where;
    try {
      await this.virsh.runWithXml(buildDiskXml(disk), (file) =>
        ['detach-device', domain, file, ...(where.live ? ['--live'] : []), ...(where.config ? ['--config'] : [])]);
    } catch (e) {
      // An earlier request is still waiting for the guest: waiting again is all there is to do.
      if (!(e instanceof KumoError && /already in the process of unplug/i.test(e.message))) throw e;
    }
    return where;
  }

  /** Polls the running domain until the guest has released the disk; false on timeout. */
  async waitDiskGone(domain: string, disk: DiskDevice, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    return waitingFor(`the guest of ${domain} to release its disk ${disk.target ?? ''}`.trimEnd(), async () => {
      for (;;) {
        if (!(await this.diskPresence(domain, disk)).live) return true;
        if (Date.now() >= deadline) return false;
        await sleep(POLL_MS);
      }
    });
  }

  /** Grows a disk of a running domain; the guest sees the new size at once (virtio). */
  async blockResize(domain: string, target: string, sizeGiB: number): Promise<void> {
    await this.virsh.run(['blockresize', domain, target, '--size', `${sizeGiB * 1024 ** 3}B`]);
  }
}
