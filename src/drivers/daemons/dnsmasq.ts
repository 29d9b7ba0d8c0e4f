import { type Executor, local } from '../../exec/exec.js';
import { readHostFile } from '../../exec/files.js';
import { livePid } from '../../exec/process.js';
import { KumoError } from '../../model/errors.js';
import { ManagedDaemon } from './daemon.js';

export interface DhcpServerSpec {
  /** The link it serves (a bridge, in the executor's namespace). */
  link: string;
  rangeStart: string;
  rangeEnd: string;
  /** Files of this server: DIR/NAME.pid, DIR/NAME.leases */
  dir: string;
  name: string;
  /**
   * Serve only the MACs listed in DIR/NAME.hosts (one file per client: knownClientFile), so a
   * guest asking with another instance's MAC gets nothing. Off for a site-style server that
   * answers whoever asks.
   */
  knownOnly?: boolean;
}

export interface DhcpLeaseEntry {
  mac: string;
  ipv4: string;
  hostname?: string;
}

/**
 * A DHCP-only dnsmasq for a LAN libvirt does not serve (the lab's backend and storage
 * segments): no DNS (port 0), no router option (the segment has no gateway of its own), no
 * ping before offering (it costs guests seconds), leases in a file kumo reads. It runs as
 * nobody: dnsmasq opens its pid and lease files and binds as root, then drops to that user.
 */
export class DhcpServer {
  private readonly daemon: ManagedDaemon;

  constructor(private readonly spec: DhcpServerSpec, private readonly exec: Executor = local) {
    this.daemon = new ManagedDaemon(exec, {
      what: `dnsmasq for ${spec.link}`, binary: 'dnsmasq', pidFile: this.pidFile, marker: `--pid-file=${this.pidFile}`,
      // Running as nobody, dnsmasq cannot remove its pid file from kumo's folder itself.
      leftovers: [dhcpFiles(spec).pidFile],
    });
  }

  get pidFile(): string { return dhcpFiles(this.spec).pidFile; }
  get leaseFile(): string { return dhcpFiles(this.spec).leaseFile; }

  pid(): Promise<number | undefined> {
    return this.daemon.pid();
  }

  /** Starts it unless it runs already. */
  async ensure(): Promise<void> {
    if ((await this.pid()) !== undefined) return;
    const s = this.spec;
    if (s.knownOnly) await this.exec.run('mkdir', ['-p', '--', dhcpFiles(s).hostsDir]);
    await this.daemon.start({
      args: dhcpServerArgs(s),
      timeoutMs: 15_000,
      // dnsmasq returns once it runs in the background (or has failed): one look at its pid file.
      ready: {
        what: `dnsmasq for ${s.link} starting`,
        probe: async () => {
          if ((await this.pid()) === undefined) throw new KumoError('COMMAND_FAILED', `dnsmasq for ${s.link} did not stay up`);
          return true;
        },
        timeoutMs: 0,
      },
    });
  }

  stop(): Promise<void> {
    return this.daemon.stop();
  }

  async leases(): Promise<DhcpLeaseEntry[]> {
    return parseDnsmasqLeases((await readHostFile(this.exec, this.leaseFile)) ?? '');
  }
}

/** A server's files: DIR/NAME.pid, DIR/NAME.leases, and the folder of known clients DIR/NAME.hosts. */
const dhcpFiles = (s: DhcpServerSpec) => ({
  pidFile: `${s.dir}/${s.name}.pid`, leaseFile: `${s.dir}/${s.name}.leases`, hostsDir: `${s.dir}/${s.name}.hosts`,
});

/**
 * Where a known client of the server with this lease file is listed (DIR/NAME.hosts/MAC):
 * dnsmasq reads new files there by itself (inotify), so admitting an instance needs no restart.
 */
export function knownClientFile(leaseFile: string, mac: string): string {
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) throw new KumoError('INVALID_INPUT', `"${mac}" is not a MAC address`);
  return `${leaseFile.replace(/\.leases$/, '')}.hosts/${mac.toLowerCase().replace(/:/g, '-')}`;
}

/**
 * Whether the dnsmasq of kumo's DHCP server with this lease file runs (false: its pid file names
 * no live dnsmasq; a zombie counts as dead).
 */
export async function ownDhcpRuns(exec: Executor, leaseFile: string): Promise<boolean> {
  const pidFile = `${leaseFile.replace(/\.leases$/, '')}.pid`;
  return (await livePid(exec, pidFile, `--pid-file=${pidFile}`)) !== undefined;
}

/**
 * Whether libvirt's dnsmasq for an active network with DHCP runs on this machine: undefined when
 * libvirt runs none for it (no DHCP, or not a libvirt of this machine's /run/libvirt).
 */
export async function libvirtDhcpRuns(exec: Executor, network: string): Promise<boolean | undefined> {
  const pidFile = `/run/libvirt/network/${network}.pid`;
  if ((await readHostFile(exec, pidFile)) === undefined) return undefined;
  return (await livePid(exec, pidFile, `/${network}.conf`)) !== undefined;
}

/** dnsmasq's command line for a DHCP-only server (what DhcpServer says above), checked by `dnsmasq --test` in the tests. */
export function dhcpServerArgs(s: DhcpServerSpec): string[] {
  return [
    '--conf-file=/dev/null', `--pid-file=${dhcpFiles(s).pidFile}`, `--dhcp-leasefile=${dhcpFiles(s).leaseFile}`,
    `--interface=${s.link}`, '--bind-interfaces', '--except-interface=lo', '--port=0',
    `--dhcp-range=${s.rangeStart},${s.rangeEnd},12h`, '--dhcp-option=3', '--dhcp-option=6',
    '--dhcp-authoritative', '--no-ping', '--user=nobody', '--group=nogroup',
    ...(s.knownOnly ? [`--dhcp-hostsdir=${dhcpFiles(s).hostsDir}`, '--dhcp-ignore=tag:!known'] : []),
  ];
}

/** dnsmasq's lease file: "EXPIRY MAC IP HOSTNAME CLIENT-ID" per line. */
export function parseDnsmasqLeases(text: string): DhcpLeaseEntry[] {
  return text.split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 3 && /:/.test(f[1]!))
    .map((f) => ({ mac: f[1]!.toLowerCase(), ipv4: f[2]!, ...(f[3] && f[3] !== '*' ? { hostname: f[3] } : {}) }));
}
