import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { defaultLibvirtUri, kumoVersion, libvirtProtocolEnabled, paths, type Paths } from '../config.js';
import { type Executor, local } from '../exec/exec.js';
import { executorFor } from '../exec/shells.js';
import { tellWait } from '../exec/waits.js';
import { Virsh, type SlowCallListener } from '../drivers/libvirt/virsh.js';
import type { LibvirtConnection } from '../drivers/libvirt/rpc/connection.js';
import { LibvirtConnections } from '../drivers/libvirt/rpc/registry.js';
import { QemuImg } from '../drivers/image/qemu-img.js';
import { probeAccel, type AccelResult } from '../drivers/host/accel-probe.js';
import { secureHome, type HomeLayout } from '../drivers/host/private-files.js';
import { openDb, type Db } from '../store/db.js';
import { FlavorRepo } from '../store/flavors.js';
import { ImageRepo } from '../store/images.js';
import { InstanceRepo } from '../store/instances.js';
import { JournalRepo } from '../store/journal.js';
import { SettingsRepo } from '../store/settings.js';
import { VolumeRepo } from '../store/volumes.js';
import { NetworkBridgeRepo } from '../store/network-bridges.js';
import { HostRepo } from '../store/hosts.js';
import { HostHaRepo } from '../store/host-ha.js';
import { ShareRepo } from '../store/shares.js';
import { NetworkSubnetRepo } from '../store/network-subnets.js';
import { LoadBalancerRepo } from '../store/load-balancers.js';
import { DatacenterResourceRepo } from '../store/datacenter-resources.js';
import { ProjectRepo } from '../store/projects.js';
import { KumoError } from '../model/errors.js';
import type { ObservedState } from '../model/types.js';

/** Domain states kept fresh by a long-running process (domain-watch.ts), read instead of asking libvirt. */
export interface ObservedStates {
  /** The host's states by domain UUID, or undefined when they are not known fresh: then ask libvirt. */
  of(host: string): ((uuid: string) => ObservedState) | undefined;
  /** Changes whenever anything of() answers may have changed (an event, a listing, a loss): what a prepared list is checked against. */
  readonly version?: number;
}

/**
 * Everything a use case needs, made once per process: where state lives, the store,
 * and the drivers for this host. Faces build one and hand it to the services.
 */
export interface Context {
  paths: Paths;
  db: Db;
  exec: Executor;
  virsh: Virsh;
  /** One protocol connection per libvirt URI (opened on first use, closed with the context). */
  libvirt: LibvirtConnections;
  /** Set by a long-running process that follows libvirt's events (the API server); the CLI asks libvirt. */
  observed?: ObservedStates;
  qemuImg: QemuImg;
  flavors: FlavorRepo;
  images: ImageRepo;
  instances: InstanceRepo;
  journal: JournalRepo;
  settings: SettingsRepo;
  volumes: VolumeRepo;
  networkBridges: NetworkBridgeRepo;
  networkSubnets: NetworkSubnetRepo;
  loadBalancers: LoadBalancerRepo;
  datacenterResources: DatacenterResourceRepo;
  hosts: HostRepo;
  /** Each host's HA story (service/ha). */
  hostHa: HostHaRepo;
  shares: ShareRepo;
  projects: ProjectRepo;
  /** The name of this machine's own libvirt among the hosts. */
  hostName: string;
  /** The libvirt client for a registered host. */
  virshFor(host: string): Virsh;
  /** The libvirt client for a URI (one per URI, all reporting slow calls alike). */
  virshAt(uri: string): Virsh;
  /** Where commands on a registered host's own shell run (local, its namespace, ssh). */
  shellOf(host: string): Executor;
  /** The libvirt client of the host an instance lives on (this machine's for unknown names). */
  virshOf(instance: string): Virsh;
  accel(): Promise<AccelResult>;
  close(): void;
}

export interface ContextOptions {
  home?: string;
  libvirtUri?: string;
  exec?: Executor;
  /** Told when a libvirt call waits long (the CLI prints it, the server logs it). */
  onSlowLibvirtCall?: SlowCallListener;
  /** false: every read stays on virsh, as before the protocol driver (default: KUMO_LIBVIRT_PROTOCOL, config.ts). */
  libvirtProtocol?: boolean;
}

export const LOCAL_HOST = 'local';

/** Which of KUMO_HOME's folders hold what, for their modes (see private-files.ts). */
export function homeLayout(p: Paths): HomeLayout {
  const cacheInHome = p.cache.startsWith(`${p.home}/`);
  return {
    home: p.home, qemuFolders: [p.images, p.instances, p.volumes], perInstance: [p.instances], privateFiles: [p.volumes],
    // A cache elsewhere (KUMO_CACHE) may be shared: it holds public downloads only, and is left as it is.
    privateFolders: cacheInHome ? [p.cache] : [],
  };
}

/** Errors name the host a libvirt belongs to, looked up when one is thrown (hosts come and go). */
const hostNamer = (hosts: HostRepo) => (uri: string) => (): string | undefined => {
  try {
    return hosts.byUri(uri)?.name;
  } catch {
    return undefined; // the store is closed: the error names the URI only
  }
};

/**
 * The protocol connection for a URI, or undefined where the driver does not speak it (qemu+tls,
 * anything its allow-list refuses): those hosts stay on virsh (docs/decisions.md).
 */
function protocolFor(libvirt: LibvirtConnections, uri: string): LibvirtConnection | undefined {
  try {
    return libvirt.get(uri);
  } catch {
    return undefined;
  }
}

/** One libvirt client per URI: messages name the host; reads go over the protocol where it speaks the URI. */
function libvirtClients(opts: ContextOptions, exec: Executor, hosts: HostRepo, libvirt: LibvirtConnections | undefined): (uri: string) => Virsh {
  const byUri = new Map<string, Virsh>();
  return (uri) => {
    let v = byUri.get(uri);
    if (!v) {
      byUri.set(uri, v = new Virsh(uri, exec, opts.onSlowLibvirtCall, hostNamer(hosts)(uri),
        libvirt && protocolFor(libvirt, uri)));
    }
    return v;
  };
}

/** A libvirt call still waiting, told where every other wait is told. */
const slowCallAsWait: SlowCallListener = (n) => tellWait({ what: `libvirt (${n.uri}) to finish "${n.call}"`, elapsedMs: n.elapsedMs, ...(n.hint ? { hint: n.hint } : {}) });

export function openContext(opts: ContextOptions = {}): Context {
  const p = paths(opts.home);
  const protocol = opts.libvirtProtocol ?? libvirtProtocolEnabled(); // refused before anything is opened
  // Closed on every start: an install made before keeps working, with its secrets closed.
  // What cannot be fixed here is reported by `kumo host info`.
  secureHome(homeLayout(p), { fix: true });
  mkdirSync(p.cache, { recursive: true }); // a shared cache elsewhere (KUMO_CACHE) keeps its own modes
  const db = openDb(p.db, { kumo: kumoVersion() });
  const exec = opts.exec ?? local;
  const hosts = new HostRepo(db);
  // Slow libvirt calls, over virsh or the protocol, are waits like any other (exec/waits.ts) unless the caller listens itself.
  const onSlow = opts.onSlowLibvirtCall ?? slowCallAsWait;
  const libvirt = new LibvirtConnections({ onSlow });
  const virshAt = libvirtClients({ ...opts, onSlowLibvirtCall: onSlow }, exec, hosts, protocol ? libvirt : undefined);
  const virsh = virshAt(opts.libvirtUri ?? defaultLibvirtUri);
  let accel: Promise<AccelResult> | undefined;
  const instanceRepo = new InstanceRepo(db);
  const clients = new Map<string, Virsh>();
  // This machine's libvirt is a host like any other; it is registered once, and may be removed.
  const settings = new SettingsRepo(db);
  if (!settings.get('hosts.initialized')) {
    if (!hosts.get(LOCAL_HOST) && !hosts.byUri(virsh.uri)) {
      hosts.insert({ name: LOCAL_HOST, uri: virsh.uri, roles: ['hypervisor'], shell: { kind: 'local' }, createdAt: new Date().toISOString() });
    }
    settings.set('hosts.initialized', '1');
  }
  const hostRecord = (host: string) => {
    const record = hosts.get(host);
    if (!record) throw new KumoError('NOT_FOUND', `host "${host}" is not registered`, 'see `kumo host list`; add it with `kumo host add NAME --uri URI`');
    return record;
  };
  return {
    paths: p,
    db,
    exec,
    virsh,
    libvirt,
    qemuImg: new QemuImg(exec),
    flavors: new FlavorRepo(db),
    images: new ImageRepo(db),
    instances: instanceRepo,
    journal: new JournalRepo(db),
    settings,
    volumes: new VolumeRepo(db),
    networkBridges: new NetworkBridgeRepo(db),
    networkSubnets: new NetworkSubnetRepo(db),
    loadBalancers: new LoadBalancerRepo(db),
    datacenterResources: new DatacenterResourceRepo(db),
    hosts, hostHa: new HostHaRepo(db),
    shares: new ShareRepo(db),
    projects: new ProjectRepo(db),
    hostName: LOCAL_HOST,
    virshFor(host: string): Virsh {
      let v = clients.get(host);
      if (!v) {
        const record = hostRecord(host);
        if (!record.uri) throw new KumoError('INVALID_INPUT', `host "${host}" has no libvirt (roles: ${record.roles.join(', ')})`, 'pick a hypervisor host: see `kumo host list`');
        v = virshAt(record.uri);
        clients.set(host, v);
      }
      return v;
    },
    virshAt,
    shellOf(host: string): Executor {
      return host === LOCAL_HOST && !hosts.get(host) ? exec : executorFor(hostRecord(host).shell);
    },
    virshOf(instance: string): Virsh {
      const record = instanceRepo.get(instance);
      return record ? this.virshFor(record.host) : virsh;
    },
    accel() {
      accel ??= probeAccel(join(p.home, 'accel-probe.json'), exec);
      return accel;
    },
    close() {
      void libvirt.close(); // says goodbye to each daemon in the background; nothing waits on it
      db.close();
    },
  };
}
