import { type Executor, local } from '../../exec/exec.js';
import { waitingFor } from '../../exec/waits.js';
import { KumoError } from '../../model/errors.js';

export interface ImageInfo {
  format: string;
  virtualSize: number;
  actualSize: number;
  backingFile?: string;
}

const GiB = 1024 ** 3;

/** qemu-img, the one tool that knows every disk format. */
export class QemuImg {
  constructor(private readonly exec: Executor = local) {}

  async info(file: string): Promise<ImageInfo> {
    const r = await this.exec.run('qemu-img', ['info', '--output=json', '-U', file], { allowFailure: true });
    if (r.code !== 0) {
      throw new KumoError('INVALID_INPUT', `${file} is not a disk image qemu-img can read: ${r.stderr.trim()}`,
        'pass a qcow2 or raw disk image (a cloud image such as CentOS-7-x86_64-GenericCloud.qcow2)');
    }
    const j = JSON.parse(r.stdout) as { format: string; 'virtual-size': number; 'actual-size': number; 'backing-filename'?: string };
    return {
      format: j.format, virtualSize: j['virtual-size'], actualSize: j['actual-size'],
      ...(j['backing-filename'] ? { backingFile: j['backing-filename'] } : {}),
    };
  }

  /** A copy-on-write overlay: the base stays shared and untouched, the instance writes only its own blocks. */
  async createOverlay(file: string, backing: string, backingFormat: string, sizeGiB: number): Promise<void> {
    await this.exec.run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', backingFormat, '-b', backing, file, `${sizeGiB * GiB}`]);
  }

  async createEmpty(file: string, sizeGiB: number): Promise<void> {
    await this.exec.run('qemu-img', ['create', '-q', '-f', 'qcow2', file, `${sizeGiB * GiB}`]);
  }

  /**
   * Grows a disk to sizeGiB. qemu-img itself refuses to shrink (it would need --shrink) and to
   * touch an image a running QEMU holds (its write lock): a live disk is grown with
   * `virsh blockresize` instead.
   */
  async resize(file: string, sizeGiB: number, format: 'qcow2' | 'raw' = 'qcow2'): Promise<void> {
    const r = await this.exec.run('qemu-img', ['resize', '-q', '-f', format, file, `${sizeGiB * GiB}`], { allowFailure: true });
    if (r.code === 0) return;
    if (/lock/i.test(r.stderr)) {
      throw new KumoError('IN_USE', `${file} is in use by a running virtual machine: qemu-img cannot resize it`,
        'stop the instance using it, or resize it through libvirt while it runs');
    }
    throw new KumoError('COMMAND_FAILED', `qemu-img resize ${file} failed: ${r.stderr.trim()}`);
  }

  async convert(src: string, dest: string, outFormat: 'qcow2' | 'raw'): Promise<void> {
    await waitingFor(`qemu-img to convert ${src} to ${outFormat}`, () => this.exec.run('qemu-img', ['convert', '-O', outFormat, src, dest], { timeoutMs: 3_600_000 }));
  }
}
