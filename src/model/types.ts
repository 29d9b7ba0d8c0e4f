/** The resources kumo manages, as the services hand them to the faces. */

export interface Flavor {
  name: string;
  vcpus: number;
  ramMiB: number;
  diskGiB: number;
  builtin: boolean;
}

export interface Image {
  name: string;
  /** What the wizard shows, e.g. "CentOS 7.8". */
  os: string;
  /** The base disk every instance's overlay points at. */
  disk: string;
  format: 'qcow2' | 'raw';
  virtualSizeBytes: number;
  /** Direct-boot metadata (like Glance's kernel_id/ramdisk_id); absent for images with their own boot loader. */
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  /** How kumo knows an instance of it is ready (model/readiness.ts); absent: the default for its kind. */
  ready?: string;
  source: string;
  createdAt: string;
}

export type ConsoleMode = 'none' | 'serial' | 'vnc';

export interface InstanceSpec {
  name: string;
  image: string;
  flavor?: string;
  vcpus: number;
  ramMiB: number;
  diskGiB: number;
  networks: string[];
  /** Extra empty data disks, in GiB. */
  dataDisks: number[];
  passwordHash?: string;
  sshKeys: string[];
  /** The host it lives on. */
  host: string;
  /** Highly available: restarted on another hypervisor when its host dies (service/ha). */
  ha?: boolean;
}

/** What libvirt reports a domain to be doing (virsh domstate words), or 'missing'. */
export type RuntimeState =
  | 'running' | 'shut off' | 'paused' | 'in shutdown' | 'crashed' | 'pmsuspended' | 'blocked' | 'idle'
  | 'missing' | 'unknown';

/** How a domain ends up after a snapshot revert: libvirt's default is the state the snapshot was taken in. */
export type RevertTo = 'snapshot' | 'running' | 'paused';

/**
 * How a network's guests reach the world. nat: libvirt's NAT with DHCP; isolated: no forwarding,
 * guests and the host only; bridge: guests join an existing host Linux bridge; ovs: an Open vSwitch bridge.
 */
export type NetworkMode = 'nat' | 'isolated' | 'bridge' | 'ovs';

export interface NicInfo {
  mac: string;
  network: string;
  ipv4?: string;
}

/**
 * Where an instance's state came from: libvirt's lifecycle events followed by the API server,
 * its listing of the host's domains (at start and after a reconnect), or a question asked for
 * this read (the CLI; a host the server does not follow or has lost).
 */
export type StateSource = 'events' | 'listing' | 'asked';

/** A state with how fresh it is. */
export interface ObservedState {
  state: RuntimeState;
  /** When what set it happened (ISO time): the event, the listing, or the question. */
  observedAt: string;
  source: StateSource;
}

export interface Instance extends InstanceSpec {
  uuid: string;
  host: string;
  state: RuntimeState;
  /** When the state was learnt (ISO time): see ObservedState. */
  observedAt: string;
  stateSource: StateSource;
  nics: NicInfo[];
  /** While it runs: the path of QEMU's VNC unix socket (root only), or 127.0.0.1:PORT for an instance defined before. */
  vnc?: string;
  /** The network namespace a 127.0.0.1:PORT VNC address is in (a lab hypervisor's), if not this machine's own. */
  vncNetns?: string;
  createdAt: string;
  /** kumo volumes attached to it, with the guest device each appears as. */
  volumes: { name: string; device: string; sizeGiB: number }[];
  /** Differences between what kumo recorded and what libvirt has, in words. */
  drift: string[];
}
