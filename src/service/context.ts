import { mkdirSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { defaultLibvirtUri, paths, type Paths } from '../config.js';
import { type Executor, local } from '../exec/exec.js';
import { Virsh } from '../drivers/libvirt/virsh.js';
import { QemuImg } from '../drivers/image/qemu-img.js';
import { probeAccel, type AccelResult } from '../drivers/host/accel-probe.js';
import { openDb, type Db } from '../store/db.js';
import { FlavorRepo, ImageRepo, InstanceRepo } from '../store/repos.js';
import { JournalRepo } from '../store/journal.js';
import { SettingsRepo } from '../store/settings.js';
import { VolumeRepo } from '../store/volumes.js';
import { NetworkBridgeRepo } from '../store/network-bridges.js';

/**
 * Everything a use case needs, made once per process: where state lives, the store,
 * and the drivers for this host. Faces build one and hand it to the services.
 */
export interface Context {
  paths: Paths;
  db: Db;
  exec: Executor;
  virsh: Virsh;
  qemuImg: QemuImg;
  flavors: FlavorRepo;
  images: ImageRepo;
  instances: InstanceRepo;
  journal: JournalRepo;
  settings: SettingsRepo;
  volumes: VolumeRepo;
  networkBridges: NetworkBridgeRepo;
  /** The name kumo records for this machine until more hosts are registered. */
  hostName: string;
  accel(): Promise<AccelResult>;
  close(): void;
}

export interface ContextOptions {
  home?: string;
  libvirtUri?: string;
  exec?: Executor;
}

export function openContext(opts: ContextOptions = {}): Context {
  const p = paths(opts.home);
  for (const dir of [p.home, p.images, p.instances, p.volumes, p.cache]) {
    mkdirSync(dir, { recursive: true });
    // QEMU runs as libvirt-qemu and must be able to walk to the disks it is given.
    chmodSync(dir, 0o755);
  }
  const db = openDb(p.db);
  const exec = opts.exec ?? local;
  const virsh = new Virsh(opts.libvirtUri ?? defaultLibvirtUri, exec);
  let accel: Promise<AccelResult> | undefined;
  return {
    paths: p,
    db,
    exec,
    virsh,
    qemuImg: new QemuImg(exec),
    flavors: new FlavorRepo(db),
    images: new ImageRepo(db),
    instances: new InstanceRepo(db),
    journal: new JournalRepo(db),
    settings: new SettingsRepo(db),
    volumes: new VolumeRepo(db),
    networkBridges: new NetworkBridgeRepo(db),
    hostName: 'local',
    accel() {
      accel ??= virsh.version()
        .then((v) => probeAccel(join(p.home, 'accel-probe.json'), v.hypervisor, exec));
      return accel;
    },
    close() {
      db.close();
    },
  };
}
