import { cpus, totalmem, freemem, hostname } from 'node:os';
import type { Context } from './context.js';
import { which } from '../drivers/host/which.js';

/** The tools kumo drives, and the Debian package that brings each. */
export const REQUIRED_TOOLS: Record<string, string> = {
  virsh: 'libvirt-clients',
  libvirtd: 'libvirt-daemon-system',
  'qemu-system-x86_64': 'qemu-system-x86',
  'qemu-img': 'qemu-utils',
  genisoimage: 'genisoimage',
  dnsmasq: 'dnsmasq-base',
  'virt-xml-validate': 'libxml2-utils',
};

export interface HostInfo {
  name: string;
  libvirtUri: string;
  libvirtAnswers: boolean;
  libvirt?: string;
  hypervisor?: string;
  accel?: string;
  accelReason?: string;
  cpus: number;
  memoryMiB: number;
  freeMemoryMiB: number;
  missing: { tool: string; package: string }[];
}

export class HostService {
  constructor(private readonly ctx: Context) {}

  async info(): Promise<HostInfo> {
    const missing: HostInfo['missing'] = [];
    for (const [tool, pkg] of Object.entries(REQUIRED_TOOLS)) {
      if (!which(tool)) missing.push({ tool, package: pkg });
    }
    const info: HostInfo = {
      name: hostname(), libvirtUri: this.ctx.virsh.uri, libvirtAnswers: await this.ctx.virsh.ping(),
      cpus: cpus().length, memoryMiB: Math.round(totalmem() / 2 ** 20), freeMemoryMiB: Math.round(freemem() / 2 ** 20),
      missing,
    };
    if (info.libvirtAnswers) {
      const v = await this.ctx.virsh.version();
      info.libvirt = v.libvirt;
      info.hypervisor = v.hypervisor;
      const a = await this.ctx.accel();
      info.accel = a.accel;
      info.accelReason = a.reason;
    }
    return info;
  }
}
