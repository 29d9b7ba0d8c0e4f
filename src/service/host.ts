import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, totalmem, freemem, hostname } from 'node:os';
import { join } from 'node:path';
import { readHostFile } from '../exec/files.js';
import { homeLayout, type Context } from './context.js';
import { qemuAccessProblems, secureHome } from '../drivers/host/private-files.js';
import { missingTools } from '../drivers/host/which.js';
import { needsKvmMask, probeAccel, type AccelResult } from '../drivers/host/accel-probe.js';
import { paths } from '../config.js';
import { kvmSeenBy, systemLibvirtdPid, type KvmView } from '../drivers/host/libvirtd-kvm.js';
import { nicFiltersAvailable } from '../drivers/libvirt/nic-filter.js';
import { KumoError, invalid, notFound } from '../model/errors.js';
import { checkName } from '../model/names.js';
import { checkLibvirtUri } from '../model/libvirt-uri.js';
import { ROOT_ONLY, type Reach } from '../model/reach.js';
import type { HostRecord } from '../store/hosts.js';
import { HOST_ROLES, type HostRole } from '../model/roles.js';
import { describeShell, executorFor, shellForUri, type ShellSpec } from '../exec/shells.js';

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
  /** Whether this machine's libvirt filters instance NICs against spoofing (nwfilter driver). */
  antiSpoofing?: boolean;
  /** What this machine's libvirtd finds at /dev/kvm (undefined: no local libvirtd runs). */
  libvirtdKvm?: KvmView;
  /** What stands in kumo's way here, each with its fix. */
  problems: { problem: string; fix: string }[];
}

/** The fix for a libvirtd that sees a /dev/kvm that does not work, with and without systemd. */
export const KVM_MASK_FIX = 'run scripts/bootstrap.sh, which restarts libvirtd with /dev/kvm masked (with systemd through a drop-in: '
  + '[Service] InaccessiblePaths=/dev/kvm in /etc/systemd/system/libvirtd.service.d/, then systemctl daemon-reload && systemctl restart libvirtd)';

/** A registered host with what libvirt says of it now. */
export interface HostView extends Omit<HostRecord, 'fence'> {
  up: boolean;
  /** When it is not up: what kumo saw (a libvirtd that did not answer in time is stalled, not gone). */
  why?: string;
  cpus?: number;
  memoryMiB?: number;
  /**
   * Whether its libvirt puts anti-spoofing filters on instance NICs (its nwfilter driver
   * answers); false: instances there get none (undefined: the host does not answer).
   */
  antiSpoofing?: boolean;
  /** What kumo's instances on it were given. */
  allocatedVcpus: number;
  allocatedMiB: number;
  instances: number;
}

export interface PlaceOptions {
  /** Hosts it must not go to (the one being evacuated). */
  exclude?: string[];
  /** Only these hosts. */
  only?: string[];
  pack?: boolean;
}

/**
 * The placement rule on a snapshot of the hosts (also run dry by `kumo plan`, which adds each
 * chosen instance to its host's allocation before placing the next).
 */
export function chooseHost(hosts: HostView[], vcpus: number, ramMiB: number, opts: PlaceOptions = {}): string {
  const candidates = hosts.filter((h) => h.roles.includes('hypervisor') && !opts.exclude?.includes(h.name) && (!opts.only || opts.only.includes(h.name)));
  if (!candidates.length) {
    throw opts.only
      ? new KumoError('NOT_FOUND', `none of the hosts ${opts.only.join(', ')} is a registered hypervisor`, 'see `kumo host list`')
      : new KumoError('NOT_FOUND', 'no hypervisor host is registered', 'add one: kumo host add NAME --uri qemu:///system');
  }
  const free = (h: HostView) => (h.memoryMiB ?? 0) - h.allocatedMiB;
  const fits = candidates.filter((h) => h.up && h.memoryMiB !== undefined && free(h) >= ramMiB && (h.cpus ?? 0) >= vcpus);
  if (!fits.length) {
    const seen = candidates.map((h) => (h.up ? `${h.name}: ${free(h)} MiB free, ${h.cpus} CPUs` : `${h.name}: down`));
    throw new KumoError('IN_USE', `no hypervisor has room for ${vcpus} vCPU / ${ramMiB} MiB (${seen.join('; ')})`,
      'choose a smaller flavor, free some memory, or add a host');
  }
  const order = opts.pack ? 1 : -1;
  fits.sort((a, b) => order * (free(a) - free(b)) || -order * (a.instances - b.instances) || a.name.localeCompare(b.name));
  return fits[0]!.name;
}

/**
 * The stall a libvirt daemon suffers when it sees a /dev/kvm that does not work, with its fix;
 * undefined when it does not apply (KVM works, no /dev/kvm, or the daemon has it masked).
 */
export async function libvirtdKvmProblem(accel: AccelResult, pid: number, daemon: string): Promise<{ problem: string; fix: string } | undefined> {
  if (!needsKvmMask(accel) || (await kvmSeenBy(pid)) !== 'device') return undefined;
  return {
    problem: `${daemon} (pid ${pid}) sees /dev/kvm, which does not work here: it probes QEMU again on every define, so each define takes 30-110 s`,
    fix: KVM_MASK_FIX,
  };
}

/**
 * This machine's acceleration without opening the store or asking libvirt (the set-up asks it
 * before libvirtd runs): kvmMask says libvirtd must be started without /dev/kvm.
 */
export async function probeThisMachine(): Promise<{ accel: 'kvm' | 'tcg'; reason: string; kvmMask: boolean }> {
  const { home } = paths();
  await mkdir(home, { recursive: true });
  const a = await probeAccel(join(home, 'accel-probe.json'));
  return { accel: a.accel, reason: a.reason, kvmMask: needsKvmMask(a) };
}

export interface AddHostRequest {
  name: string;
  /** Required for hypervisors; nodes without libvirt (storage, lb, edge) have none. */
  uri?: string;
  migrationAddress?: string;
  roles?: HostRole[];
  /** Default: what the URI implies (ssh for qemu+ssh://, else this machine). */
  shell?: ShellSpec;
}

export class HostService {
  constructor(private readonly ctx: Context) {}

  /** This machine: tools, libvirt, and whether guests get KVM or run in software emulation. */
  async info(): Promise<HostInfo> {
    const missing: HostInfo['missing'] = missingTools(REQUIRED_TOOLS);
    const info: HostInfo = {
      name: hostname(), libvirtUri: this.ctx.virsh.uri, libvirtAnswers: await this.ctx.virsh.ping(),
      cpus: cpus().length, memoryMiB: Math.round(totalmem() / 2 ** 20), freeMemoryMiB: Math.round(freemem() / 2 ** 20),
      missing, problems: [],
    };
    // Modes kumo could not close on start (it fixes its own), and what would keep QEMU out.
    for (const p of [...secureHome(homeLayout(this.ctx.paths), { fix: false }), ...qemuAccessProblems()]) info.problems.push({ problem: p.problem, fix: p.fix });
    if (info.libvirtAnswers) {
      const v = await this.ctx.virsh.version();
      info.libvirt = v.libvirt;
      info.hypervisor = v.hypervisor;
      info.antiSpoofing = await nicFiltersAvailable(this.ctx.virsh);
      if (!info.antiSpoofing) {
        info.problems.push({ problem: 'no NIC anti-spoofing here: this libvirt has no nwfilter driver, so instances on it may send from any MAC or IP address',
          fix: 'run libvirt\'s nwfilter driver (the monolithic libvirtd includes it; with modular daemons start virtnwfilterd), then re-create the instances' });
      }
    }
    if (missing.some((m) => m.tool === 'qemu-system-x86_64')) return info;
    const a = await this.ctx.accel();
    info.accel = a.accel;
    info.accelReason = a.reason;
    const pid = await systemLibvirtdPid();
    if (pid !== undefined) {
      info.libvirtdKvm = await kvmSeenBy(pid);
      const problem = await libvirtdKvmProblem(a, pid, 'libvirtd');
      if (problem) info.problems.push(problem);
    }
    return info;
  }

  async list(): Promise<HostView[]> {
    return Promise.all(this.ctx.hosts.list().map((h) => this.view(h)));
  }

  async get(name: string): Promise<HostView> {
    return this.view(this.record(name));
  }

  /**
   * Registers a hypervisor (or another node); its libvirt and its shell must answer now. From
   * the cloud (the API, a datacenter file) the URI passes the allow-list of libvirt-uri.ts and the
   * shell names no key file on the server; root on the machine may name any socket or key.
   */
  async add(req: AddHostRequest, reach: Reach = 'cloud'): Promise<HostView> {
    checkName('host', req.name);
    if (this.ctx.hosts.get(req.name)) throw new KumoError('ALREADY_EXISTS', `host "${req.name}" is already registered`, 'pick another name, or remove it first');
    const roles = req.roles?.length ? req.roles : ['hypervisor' as const];
    for (const r of roles) if (!HOST_ROLES.includes(r)) throw invalid(`unknown role "${r}"`, `roles: ${HOST_ROLES.join(', ')}`);
    if (req.uri === undefined && roles.includes('hypervisor')) {
      throw invalid(`hypervisor "${req.name}" needs its libvirt URI`, 'give --uri qemu+ssh://root@HOST/system (or --role storage|lb|edge for a node without libvirt)');
    }
    if (req.uri !== undefined) checkLibvirtUri(req.uri, { reach, home: this.ctx.paths.home });
    if (reach === 'cloud' && req.shell?.kind === 'ssh' && req.shell.identity !== undefined) {
      throw invalid(`the ssh key file ${req.shell.identity} is a file on the server: ${ROOT_ONLY}`, 'leave shell.identity out (kumo uses root\'s ssh key), or run `kumo host add` on the machine');
    }
    if (req.migrationAddress !== undefined && !/^[A-Za-z0-9.:-]+$/.test(req.migrationAddress)) {
      throw invalid(`migration address "${req.migrationAddress}" is not a host name or IP address`);
    }
    const same = req.uri === undefined ? undefined : this.ctx.hosts.byUri(req.uri);
    if (same) throw new KumoError('ALREADY_EXISTS', `${req.uri} is already registered as host "${same.name}"`);
    const shell = req.shell ?? (req.uri ? shellForUri(req.uri) : { kind: 'local' as const });
    const answer = await executorFor(shell).run('true', [], { timeoutMs: 20_000 }).then(() => undefined, (e: unknown) => e);
    if (answer !== undefined) {
      throw new KumoError('HOST_UNREACHABLE', `host "${req.name}" does not answer on its shell (${describeShell(shell)}): ${answer instanceof Error ? answer.message : String(answer)}`,
        shell.kind === 'ssh' ? 'check that key login works: ssh -o BatchMode=yes DEST true' : 'check that the network namespace exists (ip netns list)');
    }
    if (roles.includes('hypervisor') && shell.kind === 'ssh') await this.checkSharedStorage(req.name, shell);
    const record: HostRecord = { name: req.name, roles, shell, createdAt: new Date().toISOString(),
      ...(req.uri ? { uri: req.uri } : {}), ...(req.migrationAddress ? { migrationAddress: req.migrationAddress } : {}) };
    this.ctx.hosts.insert(record);
    if (req.uri && !(await this.ctx.virshFor(req.name).ping())) {
      this.ctx.hosts.delete(req.name);
      throw new KumoError('LIBVIRT_ERROR', `libvirt at ${req.uri} does not answer`, 'check the URI, that libvirtd runs there, and (for ssh) that key login works');
    }
    return this.view(record);
  }

  /**
   * Instance disks and images live under KUMO_HOME, which every hypervisor must see at the same
   * path (an NFS mount from the storage node): a file written here must be readable there.
   */
  private async checkSharedStorage(name: string, shell: ShellSpec): Promise<void> {
    const marker = join(this.ctx.paths.home, `.shared-check-${randomBytes(6).toString('hex')}`);
    const token = randomBytes(16).toString('hex');
    await writeFile(marker, token);
    try {
      const seen = await readHostFile(executorFor(shell), marker);
      if (seen?.trim() !== token) {
        throw new KumoError('INVALID_INPUT', `host "${name}" does not see kumo's storage: ${marker} is ${seen === undefined ? 'missing' : 'a different file'} there`,
          `mount KUMO_HOME (${this.ctx.paths.home}) from the storage node at the same path on ${name}, e.g. mount -t nfs4 STG:/kumo ${this.ctx.paths.home}`);
      }
    } finally {
      await rm(marker, { force: true });
    }
  }

  remove(name: string): void {
    this.record(name);
    const here = this.ctx.instances.list().filter((i) => i.host === name).map((i) => i.name);
    if (here.length) {
      throw new KumoError('IN_USE', `host "${name}" still has instances: ${here.join(', ')}`,
        `move them (kumo host evacuate ${name}) or delete them first`);
    }
    this.ctx.hosts.delete(name);
  }

  /**
   * Where a new instance goes: by default the hypervisor that answers and has the most memory
   * left after what kumo already gave out there (spread); `pack` fills one before the next.
   */
  async place(vcpus: number, ramMiB: number, opts: PlaceOptions = {}): Promise<string> {
    return chooseHost(await this.list(), vcpus, ramMiB, opts);
  }

  private record(name: string): HostRecord {
    const h = this.ctx.hosts.get(name);
    if (!h) throw notFound(`host "${name}" is not registered`, 'see `kumo host list`');
    return h;
  }

  private async view(h: HostRecord): Promise<HostView> {
    const mine = this.ctx.instances.list().filter((i) => i.host === h.name);
    let why: string | undefined;
    const node = h.uri ? await this.ctx.virshFor(h.name).nodeInfo().catch((e: unknown) => void (why = (e as Error).message)) : undefined;
    const up = h.uri ? node !== undefined
      : await executorFor(h.shell).run('true', [], { timeoutMs: 10_000 }).then(() => true, () => false);
    const antiSpoofing = h.uri && up ? await nicFiltersAvailable(this.ctx.virshFor(h.name)).catch(() => undefined) : undefined;
    const { fence: _, ...record } = h; // a fence command may hold a BMC's password: never shown
    return {
      ...record, up, ...(!up && why ? { why } : {}), ...(antiSpoofing !== undefined ? { antiSpoofing } : {}),
      ...(node ? { cpus: node.cpus, memoryMiB: node.memoryMiB } : {}),
      allocatedVcpus: mine.reduce((n, i) => n + i.vcpus, 0),
      allocatedMiB: mine.reduce((n, i) => n + i.ramMiB, 0),
      instances: mine.length,
    };
  }
}
