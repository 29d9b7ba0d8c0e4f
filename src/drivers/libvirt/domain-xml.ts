import { attr, buildXml, child, children, parseXml, text } from './xml.js';

/** kumo's own facts travel inside the domain, so virsh users see whose it is. */
export const KUMO_NS = 'https://kumo.dev/xmlns/instance/1';

export interface DiskSpec {
  file: string;
  format: 'qcow2' | 'raw';
}

export interface NicSpec {
  mac: string;
  network: string;
  /**
   * Whether the NIC carries the anti-spoofing filter (default yes). libvirt refuses a filter on an
   * Open vSwitch port ("filterref is not supported ... virtualport type openvswitch").
   */
  antiSpoofing?: boolean;
}

export interface DomainSpec {
  name: string;
  uuid: string;
  /** 'kvm' when acceleration works, 'qemu' (TCG software emulation) otherwise. */
  type: 'kvm' | 'qemu';
  vcpus: number;
  ramMiB: number;
  /** The root disk first, then data disks: vda, vdb, ... */
  disks: DiskSpec[];
  /** The NoCloud seed, attached as a SATA CD-ROM like virt-install --cloud-init does. */
  seedIso?: string;
  nics: NicSpec[];
  /** Direct kernel boot, for images that carry kernel metadata. */
  kernel?: { kernel: string; initrd?: string; cmdline?: string };
  consoleLog: string;
  /** Where QEMU listens for VNC: a unix socket in a folder only root and QEMU can enter. */
  vncSocket: string;
  metadata: { image: string; flavor?: string; createdBy: string };
}

/**
 * Anti-spoofing on every NIC (libvirt's nwfilter): a guest sends only from its own MAC and the
 * address DHCP gave it, answers ARP only for that address, and sends no other layer-2 protocol.
 * The address is learned from the DHCP server's answer to this NIC's MAC (not from whatever
 * the guest sends first, which it would choose), so it is bound before the guest can claim one.
 */
const ANTI_SPOOFING = {
  '@_filter': 'clean-traffic',
  parameter: [{ '@_name': 'CTRL_IP_LEARNING', '@_value': 'dhcp' }],
};

const diskTarget = (i: number) => `vd${String.fromCharCode(97 + i)}`;

/**
 * On q35 every hot-plugged device needs a free PCIe root port, and libvirt adds only one spare
 * at definition. Like virt-install, kumo leaves room for volumes and NICs added later.
 */
const SPARE_ROOT_PORTS = 9; // 8, and one for the guest agent's virtio-serial controller

/** The channel name the QEMU guest agent listens on in the guest. */
export const GUEST_AGENT_CHANNEL = 'org.qemu.guest_agent.0';

export function buildDomainXml(s: DomainSpec): string {
  const os: Record<string, unknown> = {
    type: { '@_arch': 'x86_64', '@_machine': 'q35', '#text': 'hvm' },
  };
  if (s.kernel) {
    os.kernel = s.kernel.kernel;
    if (s.kernel.initrd) os.initrd = s.kernel.initrd;
    if (s.kernel.cmdline) os.cmdline = s.kernel.cmdline;
  } else {
    os.boot = { '@_dev': 'hd' };
  }
  const disks: object[] = s.disks.map((d, i) => ({
    '@_type': 'file', '@_device': 'disk',
    driver: { '@_name': 'qemu', '@_type': d.format, '@_discard': 'unmap' },
    source: { '@_file': d.file },
    target: { '@_dev': diskTarget(i), '@_bus': 'virtio' },
  }));
  if (s.seedIso) {
    disks.push({
      '@_type': 'file', '@_device': 'cdrom',
      driver: { '@_name': 'qemu', '@_type': 'raw' },
      source: { '@_file': s.seedIso },
      target: { '@_dev': 'sda', '@_bus': 'sata' },
      readonly: '',
    });
  }
  return buildXml({
    domain: {
      '@_type': s.type,
      name: s.name,
      uuid: s.uuid,
      metadata: {
        'kumo:instance': {
          '@_xmlns:kumo': KUMO_NS,
          'kumo:image': s.metadata.image,
          ...(s.metadata.flavor ? { 'kumo:flavor': s.metadata.flavor } : {}),
          'kumo:created-by': s.metadata.createdBy,
        },
      },
      memory: { '@_unit': 'MiB', '#text': String(s.ramMiB) },
      vcpu: { '@_placement': 'static', '#text': String(s.vcpus) },
      os,
      // Without <acpi/> libvirt passes -no-acpi and a guest's poweroff never ends the domain.
      features: { acpi: '', apic: '' },
      ...(s.type === 'kvm' ? { cpu: { '@_mode': 'host-passthrough' } } : {}),
      clock: { '@_offset': 'utc' },
      on_poweroff: 'destroy',
      on_reboot: 'restart',
      on_crash: 'destroy',
      devices: {
        controller: [
          { '@_type': 'pci', '@_model': 'pcie-root' },
          ...Array.from({ length: SPARE_ROOT_PORTS }, () => ({ '@_type': 'pci', '@_model': 'pcie-root-port' })),
        ],
        disk: disks,
        interface: s.nics.map((n) => ({
          '@_type': 'network',
          mac: { '@_address': n.mac },
          source: { '@_network': n.network },
          model: { '@_type': 'virtio' },
          ...(n.antiSpoofing === false ? {} : { filterref: ANTI_SPOOFING }),
        })),
        serial: { '@_type': 'pty', log: { '@_file': s.consoleLog, '@_append': 'on' }, target: { '@_port': '0' } },
        console: { '@_type': 'pty', target: { '@_type': 'serial', '@_port': '0' } },
        // The QEMU guest agent's port (libvirt picks the socket): `--wait-for agent` pings it.
        channel: { '@_type': 'unix', target: { '@_type': 'virtio', '@_name': GUEST_AGENT_CHANNEL } },
        // A unix socket, not a loopback port any local user could open: the way in is kumo's
        // authenticated proxy (or root on the machine).
        graphics: { '@_type': 'vnc', listen: { '@_type': 'socket', '@_socket': s.vncSocket } },
        video: { model: { '@_type': 'vga' } },
        memballoon: { '@_model': 'virtio' },
        rng: { '@_model': 'virtio', backend: { '@_model': 'random', '#text': '/dev/urandom' } },
      },
    },
  });
}

/** The parts of a live domain kumo reads back. */
export interface DomainFacts {
  uuid?: string;
  type?: string;
  vcpus?: number;
  ramMiB?: number;
  nics: NicSpec[];
  disks: { file: string; target: string; device: string }[];
  /** TCP port of a domain defined before VNC moved to a unix socket (running only). */
  vncPort?: number;
  vncSocket?: string;
  kumoImage?: string;
  /** `kumo:created-by`: 'kumo' on every domain kumo defined (orphans are found by it). */
  kumoCreatedBy?: string;
}

export function parseDomainXml(xml: string): DomainFacts {
  const dom = child(parseXml(xml), 'domain');
  const devices = child(dom, 'devices');
  const memory = child(dom, 'memory');
  const unit = attr(memory, 'unit') ?? 'KiB';
  const mem = Number(text(dom?.memory));
  const ramMiB = Number.isFinite(mem) ? Math.round(unit === 'KiB' ? mem / 1024 : unit === 'GiB' ? mem * 1024 : mem) : undefined;
  const vnc = children(devices, 'graphics').find((g) => attr(g, 'type') === 'vnc');
  const vncPort = Number(attr(vnc, 'port'));
  const vncSocket = attr(vnc, 'socket') ?? children(vnc, 'listen').map((l) => attr(l, 'socket')).find((x) => x);
  const metadata = child(child(dom, 'metadata'), 'kumo:instance');
  const facts: DomainFacts = {
    nics: children(devices, 'interface').map((i) => ({
      mac: attr(child(i, 'mac'), 'address') ?? '',
      network: attr(child(i, 'source'), 'network') ?? attr(child(i, 'source'), 'bridge') ?? '',
    })),
    disks: children(devices, 'disk').map((d) => ({
      file: attr(child(d, 'source'), 'file') ?? '',
      target: attr(child(d, 'target'), 'dev') ?? '',
      device: attr(d, 'device') ?? 'disk',
    })),
  };
  const uuid = text(dom?.uuid);
  if (uuid) facts.uuid = uuid;
  const type = attr(dom, 'type');
  if (type) facts.type = type;
  const vcpus = Number(text(dom?.vcpu));
  if (Number.isFinite(vcpus)) facts.vcpus = vcpus;
  if (ramMiB !== undefined) facts.ramMiB = ramMiB;
  if (vncPort > 0) facts.vncPort = vncPort;
  if (vncSocket) facts.vncSocket = vncSocket;
  const image = text(metadata?.['kumo:image']);
  if (image) facts.kumoImage = image;
  const createdBy = text(metadata?.['kumo:created-by']);
  if (createdBy) facts.kumoCreatedBy = createdBy;
  return facts;
}
