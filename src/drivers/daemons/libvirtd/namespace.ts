import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { type Executor, local } from '../../../exec/exec.js';
import { processAlive, sleep } from '../../../exec/process.js';
import { KumoError, invalid } from '../../../model/errors.js';
import { ManagedDaemon, type Readiness } from '../daemon.js';
import { qemuGroup } from '../../host/private-files.js';
import { BINDS, driversWithoutNwfilter, prepareDriversWithoutNwfilter, prepareState, writeHostUuid, writeMigrationTls, writePortRanges } from './state.js';

/**
 * A second (third, …) libvirtd on this machine, as HOST-NOTES "Two hypervisors on one machine"
 * describes: its own mount + UTS namespace (and optionally an existing network namespace),
 * private copies of libvirt's folders bind-mounted over the host's, its own virtlogd, its own
 * host_uuid and host name. The lab's hypervisors kvm1/kvm2 are made of these.
 * Without a network namespace of its own it runs without libvirt's nwfilter driver (no NIC
 * anti-spoofing for its guests): one network namespace holds one nwfilter driver safely.
 *
 * Everything lives in one state folder the caller chooses:
 *
 *   STATE/etc    → /etc/libvirt        (the host's config, without its domains, networks, pools, secrets)
 *   STATE/lib    → /var/lib/libvirt    (folders only: no domain state, leases, images)
 *   STATE/cache  → /var/cache/libvirt  (a copy: QEMU capabilities, so the first start is quick)
 *   STATE/log    → /var/log/libvirt    (folders only; the daemon and its guests log here)
 *   STATE/run    → /run/libvirt        (sockets: STATE/run/libvirt-sock is the daemon's)
 *   STATE/host-run ← /run/libvirt  (the host's own, visible inside the namespace only, so this
 *                                  daemon reaches the host's libvirtd: migrating back peer-to-peer)
 *   STATE/no-kvm  → /dev/kvm           (with maskKvm: an inaccessible device, as systemd's
 *                                      InaccessiblePaths makes, so libvirt sees no usable KVM)
 *   STATE/drivers      (without a network namespace: libvirt's driver modules but nwfilter)
 *   STATE/libvirtd.pid, STATE/virtlogd.pid, STATE/mntns
 *
 * The daemons are started with `libvirtd -d` / `virtlogd -d`, so they outlive the Node
 * process that started them; stopLibvirtd() finds them again through the pid files (after a
 * crash too). The bind mounts exist only inside the namespace and vanish with its last process.
 */

export interface LibvirtdOptions {
  /** Host name inside the namespace (libvirt refuses to migrate between equal host names). */
  name: string;
  /** Absolute folder for the private state; made if missing. */
  stateDir: string;
  /** An existing network namespace (a name under /run/netns, or a path): the daemon and its guests live there. */
  netns?: string;
  /** Default: a fresh random UUID on the first start, kept in STATE/etc/libvirtd.conf afterwards. */
  hostUuid?: string;
  /**
   * Which block of VNC and migration ports this daemon hands out (1-9). Every libvirtd on one
   * network namespace allocates from 5900 and 49152 on its own, so two of them would race for
   * the same port; each lab daemon gets a block of its own. Default: a random block.
   */
  portSlot?: number;
  /** How long to wait for the daemon to answer (default 30 s). */
  readyTimeoutMs?: number;
  /**
   * Hide /dev/kvm from the daemon (and its guests): required where /dev/kvm exists but does not
   * work, or libvirtd probes QEMU again on every define (accel-probe.ts needsKvmMask).
   */
  maskKvm: boolean;
  /**
   * A folder with QEMU's migration certificates for this daemon (state.ts MIGRATION_TLS_FILES):
   * copied into its private /etc/libvirt, so `virsh migrate --tls` works to and from it.
   * Without it, the daemon has none (as a fresh host).
   */
  migrationTls?: string;
}

export interface NamespacedLibvirtd {
  name: string;
  stateDir: string;
  /** `qemu+unix:///system?socket=STATE/run/libvirt-sock` */
  uri: string;
  socket: string;
  /**
   * The host's own libvirtd (qemu:///system) as THIS daemon reaches it: its /run/libvirt is
   * hidden in here. Use it as the destination of a peer-to-peer migration from this daemon.
   */
  hostUriFromInside: string;
  hostUuid: string;
  pid: number;
  virtlogdPid: number;
  /** Same as stopLibvirtd(stateDir). */
  stop(): Promise<void>;
}

/**
 * Runs inside `unshare -m -u --propagation private`: a FIXED script; the state folder, the
 * host name, whether to mask /dev/kvm (1 or 0) and the driver folder without nwfilter (or
 * empty: all of libvirt's drivers) arrive only as positional parameters ($1-$4),
 * never as shell text. The targets are the BINDS above, in the same order.
 */
const NAMESPACE_SCRIPT = [
  'set -eu',
  's=$1',
  'if [ "$3" = 1 ]; then rm -f "$s/no-kvm"; mknod -m 000 "$s/no-kvm" c 0 0; mount --bind "$s/no-kvm" /dev/kvm; fi',
  'mount --bind "$s/etc" /etc/libvirt',
  'mount --bind "$s/lib" /var/lib/libvirt',
  'mount --bind "$s/cache" /var/cache/libvirt',
  'mount --bind "$s/log" /var/log/libvirt',
  'mount --bind /run/libvirt "$s/host-run"',
  'mount --bind "$s/run" /run/libvirt',
  'hostname "$2"',
  'virtlogd -d -p "$s/virtlogd.pid"',
  'if [ -n "$4" ]; then export LIBVIRT_DRIVER_DIR="$4"; fi',
  'exec libvirtd -d -p "$s/libvirtd.pid"',
].join('\n');

export function libvirtdSocket(stateDir: string): string {
  return join(resolve(stateDir), 'run', 'libvirt-sock');
}

export function libvirtdUri(stateDir: string): string {
  return `qemu+unix:///system?socket=${libvirtdSocket(stateDir)}`;
}

/** Checks the options; the absolute state folder, and the network namespace's path if one is given. */
function checkStartOptions(opts: LibvirtdOptions): { stateDir: string; netnsPath?: string } {
  const { name } = opts;
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(name)) {
    throw invalid(`"${name}" is not a valid host name for a lab hypervisor`, 'use letters, digits and inner dashes, at most 63 characters');
  }
  if (!isAbsolute(opts.stateDir)) throw invalid(`the state folder "${opts.stateDir}" must be an absolute path`);
  const stateDir = resolve(opts.stateDir);
  for (const b of BINDS) {
    if (stateDir === b.host || stateDir.startsWith(`${b.host}/`)) {
      throw invalid(`the state folder ${stateDir} lies inside ${b.host}, which the namespace hides`, 'choose a folder elsewhere, e.g. under /var/lib/kumo/lab');
    }
  }
  if (/\s/.test(stateDir) || stateDir.includes(',')) {
    // libvirt URIs and -p arguments take it verbatim; keep it simple and unambiguous.
    throw invalid(`the state folder "${stateDir}" must not contain spaces or commas`);
  }
  if (opts.netns === undefined) return { stateDir };
  const netnsPath = opts.netns.includes('/') ? opts.netns : join('/run/netns', opts.netns);
  if (!existsSync(netnsPath)) throw invalid(`network namespace ${opts.netns} does not exist (${netnsPath})`, 'create it first: ip netns add NAME');
  return { stateDir, netnsPath };
}

export async function startLibvirtd(opts: LibvirtdOptions, exec: Executor = local): Promise<NamespacedLibvirtd> {
  const { name } = opts;
  const { stateDir, netnsPath } = checkStartOptions(opts);
  const running = await daemonPids(stateDir);
  if (running.libvirtd !== undefined || running.virtlogd !== undefined) {
    throw new KumoError('ALREADY_EXISTS', `a libvirtd for ${stateDir} is already running (pid ${running.libvirtd ?? running.virtlogd})`,
      `use it (${libvirtdUri(stateDir)}) or stop it first`);
  }

  await prepareState(stateDir);
  await mkdir(join(stateDir, 'host-run'), { recursive: true, mode: 0o755 });
  const hostUuid = await writeHostUuid(stateDir, opts.hostUuid);
  await writePortRanges(stateDir, opts.portSlot ?? 1 + Math.floor(Math.random() * 9));
  await writeMigrationTls(stateDir, opts.migrationTls, qemuGroup()?.gid);
  // Sharing the host's network namespace, it must leave the NIC filters to the host's libvirtd.
  const drivers = await prepareDriversWithoutNwfilter(stateDir, netnsPath === undefined);
  // Stale pid files or a socket of an earlier run would mislead the readiness check below.
  await Promise.all(['libvirtd.pid', 'virtlogd.pid', 'mntns'].map((f) => rm(join(stateDir, f), { force: true })));
  await rm(libvirtdSocket(stateDir), { force: true });

  const unshare = ['unshare', '-m', '-u', '--propagation', 'private', '--', 'sh', '-c', NAMESPACE_SCRIPT, 'sh', stateDir, name, opts.maskKvm ? '1' : '0', drivers ?? ''];
  const [cmd, ...args] = netnsPath ? ['nsenter', `--net=${netnsPath}`, '--', ...unshare] : unshare;
  try {
    const uri = libvirtdUri(stateDir);
    await labDaemon(stateDir, 'libvirtd', exec).start({
      command: cmd!, args, timeoutMs: 60_000,
      ready: answering(exec, stateDir, opts.readyTimeoutMs ?? 30_000,
        () => new KumoError('TIMEOUT', `the libvirtd in ${stateDir} did not answer on ${libvirtdSocket(stateDir)}`)),
    });
    const pids = await daemonPids(stateDir);
    if (pids.libvirtd === undefined || pids.virtlogd === undefined) {
      throw new KumoError('COMMAND_FAILED', `the libvirtd in ${stateDir} answers but its pid files are missing`);
    }
    // Remember the namespace, so stop() can also end the guests and helpers left in it.
    await writeFile(join(stateDir, 'mntns'), await readlink(`/proc/${pids.libvirtd}/ns/mnt`));
    return {
      name, stateDir, uri, socket: libvirtdSocket(stateDir), hostUuid,
      hostUriFromInside: `qemu+unix:///system?socket=${join(stateDir, 'host-run', 'libvirt-sock')}`,
      pid: pids.libvirtd, virtlogdPid: pids.virtlogd,
      stop: () => stopLibvirtd(stateDir),
    };
  } catch (e) {
    const log = await readFile(join(stateDir, 'log', 'libvirtd.log'), 'utf8').catch(() => '');
    await stopLibvirtd(stateDir).catch(() => undefined);
    const tail = log.trim().split('\n').slice(-5).join('\n');
    throw new KumoError('COMMAND_FAILED', `could not start a libvirtd named ${name} in ${stateDir}: ${e instanceof Error ? e.message : String(e)}${tail ? `\n${tail}` : ''}`,
      'check that libvirt-daemon-system is installed and you are root (scripts/up.sh)', { cause: e });
  }
}

/**
 * Starts libvirtd again after it died, in the namespaces (mount, UTS, network) its virtlogd
 * (and guests) still live in: the private state is kept, so libvirtd reconnects to the running guests, as a real
 * hypervisor's libvirtd does after a crash.
 */
export async function restartLibvirtd(stateDir: string, exec: Executor = local, readyTimeoutMs = 30_000): Promise<void> {
  stateDir = resolve(stateDir);
  const running = await daemonPids(stateDir);
  if (running.libvirtd !== undefined) return;
  if (running.virtlogd === undefined) {
    throw new KumoError('NOT_FOUND', `nothing of the libvirtd in ${stateDir} is left to restart`, 'start it anew with startLibvirtd');
  }
  const ns = `/proc/${running.virtlogd}/ns`;
  const drivers = driversWithoutNwfilter(stateDir);
  await rm(join(stateDir, 'libvirtd.pid'), { force: true });
  await labDaemon(stateDir, 'libvirtd', exec).start({
    command: 'nsenter',
    args: [`--mount=${ns}/mnt`, `--uts=${ns}/uts`, `--net=${ns}/net`, '--',
      ...(drivers ? ['env', `LIBVIRT_DRIVER_DIR=${drivers}`] : []), 'libvirtd', '-d', '-p', join(stateDir, 'libvirtd.pid')],
    timeoutMs: 60_000,
    ready: answering(exec, stateDir, readyTimeoutMs, () => new KumoError('TIMEOUT', `the restarted libvirtd in ${stateDir} did not answer`)),
  });
}

/**
 * Stops the daemons of a state folder and every process left in their namespace (guests,
 * dnsmasq). Idempotent; works without the Node process that started them. The state
 * folder itself stays (remove it yourself if you want it gone).
 */
export async function stopLibvirtd(stateDir: string, timeoutMs = 15_000): Promise<void> {
  stateDir = resolve(stateDir);
  const pids = await daemonPids(stateDir);
  let ns = (await readFile(join(stateDir, 'mntns'), 'utf8').catch(() => '')).trim();
  if (!ns && pids.libvirtd !== undefined) ns = await readlink(`/proc/${pids.libvirtd}/ns/mnt`).catch(() => '');
  if (!ns && pids.virtlogd !== undefined) ns = await readlink(`/proc/${pids.virtlogd}/ns/mnt`).catch(() => '');
  // libvirtd first (it may still log through virtlogd), then virtlogd, then whatever else lives there.
  await labDaemon(stateDir, 'libvirtd').stop(timeoutMs);
  await labDaemon(stateDir, 'virtlogd').stop(timeoutMs);
  if (ns) {
    const others = await processesInNamespace(ns, stateDir);
    if (others.length) await terminate(others, timeoutMs);
  }
  await Promise.all(['libvirtd.pid', 'virtlogd.pid', 'mntns', 'no-kvm'].map((f) => rm(join(stateDir, f), { force: true })));
}

/** The daemons of a state folder that are alive, found through their pid files. */
export async function daemonPids(stateDir: string): Promise<{ libvirtd?: number; virtlogd?: number }> {
  const out: { libvirtd?: number; virtlogd?: number } = {};
  for (const daemon of ['libvirtd', 'virtlogd'] as const) {
    const pid = await labDaemon(resolve(stateDir), daemon).pid();
    if (pid !== undefined) out[daemon] = pid;
  }
  return out;
}

// --- the two daemons -------------------------------------------------------------------

/**
 * libvirtd or virtlogd of a state folder on the managed-daemon life cycle. They run on this
 * machine (in its namespaces), so their pid files and processes are read and signalled
 * directly; the state folder's own files are removed by stopLibvirtd, daemons or not.
 */
function labDaemon(stateDir: string, daemon: 'libvirtd' | 'virtlogd', exec: Executor = local): ManagedDaemon {
  const pidFile = join(stateDir, `${daemon}.pid`);
  return new ManagedDaemon(exec, {
    what: `the ${daemon} in ${stateDir}`, binary: daemon, pidFile, marker: pidFile,
    findPid: () => pidOf(daemon, pidFile),
    terminate: (pid, graceMs) => terminate([pid], graceMs),
    leftovers: [],
  });
}

/** The pid in the pid file, if that process is this daemon. */
async function pidOf(daemon: string, pidFile: string): Promise<number | undefined> {
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  // The pid file's own path is on the daemon's command line (-p FILE): a recycled pid cannot pass.
  const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
  return cmdline.some((a) => a.endsWith(daemon)) && cmdline.includes(pidFile) ? pid : undefined;
}

/** Polls `virsh uri` on the daemon's socket until it answers. */
function answering(exec: Executor, stateDir: string, timeoutMs: number, timedOut: () => KumoError): Readiness {
  const uri = libvirtdUri(stateDir);
  return {
    what: `the libvirtd in ${stateDir} answering`,
    probe: async () => ((await exec.run('virsh', ['-q', '-c', uri, 'uri'], { allowFailure: true, timeoutMs: 10_000 }).catch(() => undefined))?.code === 0 ? true : undefined),
    timeoutMs,
    everyMs: 200,
    timedOut,
  };
}

// --- processes -------------------------------------------------------------------------

/** Processes whose mount namespace is `ns` and that see a lab's /run/libvirt (not the host's). */
async function processesInNamespace(ns: string, stateDir: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    if ((await readlink(`/proc/${pid}/ns/mnt`).catch(() => '')) !== ns) continue;
    // A namespace id can be reused once a namespace dies: check that this one is really ours.
    const mounts = await readFile(`/proc/${pid}/mountinfo`, 'utf8').catch(() => '');
    // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT …; ROOT is STATE/run relative to its filesystem.
    const ours = mounts.split('\n').some((l) => {
      const [, , , root = '', mountPoint] = l.split(' ');
      return mountPoint === '/run/libvirt' && root.endsWith('/run') && root.length > 4 && stateDir.endsWith(root.slice(0, -4));
    });
    if (ours) found.push(pid);
  }
  return found;
}

async function terminate(pids: number[], timeoutMs: number): Promise<void> {
  const signal = (pid: number, sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      /* already gone */
    }
  };
  pids.forEach((p) => signal(p, 'SIGTERM'));
  const deadline = Date.now() + timeoutMs;
  let alive = pids;
  while (alive.length && Date.now() < deadline) {
    await sleep(100);
    alive = alive.filter(processAlive);
  }
  alive.forEach((p) => signal(p, 'SIGKILL'));
  const killDeadline = Date.now() + 5_000;
  while (alive.length && Date.now() < killDeadline) {
    await sleep(50);
    alive = alive.filter(processAlive);
  }
}
