import { sleep } from '../../exec/process.js';
import { KumoError, invalid } from '../../model/errors.js';
import { nicFiltersAvailable, pinFilterAddresses, xmlForDestinationFilters } from './nic-filter.js';
import type { Virsh } from './virsh.js';

export interface MigrateOptions {
  /** The libvirt that runs the domain now. */
  source: Virsh;
  /** What virsh finds the domain by: kumo passes its UUID (kept across the move). */
  domain: string;
  /** The domain as messages name it (default: `domain`), e.g. the instance's name. */
  label?: string;
  /** The destination libvirt, as this process reaches it (to read the job statistics afterwards). */
  dest: Virsh;
  /**
   * The destination as the SOURCE daemon reaches it, when that differs (peer-to-peer: the source
   * libvirtd connects itself; e.g. a lab daemon sees the host's libvirtd at another socket path).
   * Default: destUri.
   */
  destUriFromSource?: string;
  /**
   * Where the destination QEMU listens for the memory stream: tcp://ADDR[:PORT] (ADDR as the
   * source QEMU reaches it); without a port the destination libvirtd picks one of its
   * migration ports (49152-49215 by default).
   */
  migrateUri: string;
  /**
   * Skip libvirt's safety check on disk caching. Needed only when both hosts see the disks at
   * the same local path without a shared filesystem libvirt recognises (the one-machine lab).
   */
  unsafe?: boolean;
  /** Peer-to-peer (default): the source libvirtd drives the migration, virsh only asks for it. */
  p2p?: boolean;
  /**
   * Encrypt the memory stream with QEMU's native TLS (`--tls`): libvirt fails the migration
   * before anything moves when TLS cannot be set up; it never falls back to plain TCP.
   */
  tls?: boolean;
  /**
   * The guest's addresses (MAC -> IPv4, from DHCP leases): pinned in its NICs' anti-spoofing
   * filter before the move, which the destination would otherwise block until the guest's next
   * DHCP renewal (nic-filter.ts).
   */
  nicAddresses?: ReadonlyMap<string, string>;
  /** After this long the migration is aborted (the domain keeps running on the source). */
  timeoutMs: number;
  /**
   * Called after the changes made before the move (the NICs' pinned addresses) and just before
   * libvirt is asked to migrate: the caller's step boundary (a crash test stops kumo there).
   */
  beforeCall?: () => void;
}

export interface MigrateResult {
  /** Wall-clock time of the migration as seen by the caller. */
  durationMs: number;
  /** The downtime QEMU measured (libvirt's completed-job statistics), if libvirt reports it. */
  downtimeMs?: number;
  /** Time elapsed according to libvirt's job statistics. */
  jobElapsedMs?: number;
  /** Every field of `virsh domjobinfo --completed` on the destination. */
  jobInfo: Record<string, string>;
}

/**
 * Live-migrates a running domain, keeping it defined only on the destination
 * (`virsh migrate --live --persistent --undefinesource [--p2p] [--unsafe] DOM DEST --migrateuri URI`).
 * On failure the domain keeps running on the source (resumed if libvirt left it paused) and a
 * KumoError carries libvirt's reason.
 */
export async function migrateLive(opts: MigrateOptions): Promise<MigrateResult> {
  const { domain, source, dest, migrateUri } = opts;
  const label = opts.label ?? domain;
  const [sourceUri, destUri] = [source.uri, dest.uri];
  if (!/^tcp:\/\/(\[[0-9a-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/i.test(migrateUri)) {
    throw invalid(`migration URI "${migrateUri}" is not tcp://ADDRESS[:PORT]`, 'e.g. tcp://10.0.0.2 or tcp://10.0.0.2:49152');
  }
  const state = await source.domainState(domain);
  if (state === 'missing') throw new KumoError('NOT_FOUND', `domain "${label}" is not defined on ${sourceUri}`);
  if (state !== 'running') {
    throw new KumoError('IN_USE', `domain "${label}" is ${state} on ${sourceUri}: only a running domain can be live-migrated`,
      'start it first (or migrate it offline)');
  }
  const args = [
    'migrate', '--live', '--persistent', '--undefinesource',
    ...(opts.p2p ?? true ? ['--p2p'] : []),
    ...(opts.unsafe ? ['--unsafe'] : []),
    ...(opts.tls ? ['--tls'] : []),
    '--migrateuri', migrateUri,
    '--', domain, opts.destUriFromSource ?? destUri,
  ];
  if (opts.nicAddresses?.size) await pinFilterAddresses(source, domain, opts.nicAddresses);
  // The NICs' filters as the destination can have them: a daemon without nwfilter refuses a filter.
  const destXml = await xmlForDestinationFilters(source, domain, await nicFiltersAvailable(dest));
  opts.beforeCall?.();
  const started = Date.now();
  try {
    if (destXml) await source.runWithXml(destXml, (file) => [...args.slice(0, -3), '--xml', file, ...args.slice(-3)], opts.timeoutMs);
    else await source.run(args, opts.timeoutMs);
  } catch (e) {
    await recoverOnSource(source, domain);
    const why = e instanceof KumoError && e.code === 'TIMEOUT'
      ? `it did not finish within ${opts.timeoutMs} ms and was aborted`
      : (e instanceof Error ? e.message.replace(/^libvirt refused: /, '') : String(e));
    const now = await source.domainState(domain).catch(() => 'unknown');
    throw new KumoError(e instanceof KumoError && e.code === 'TIMEOUT' ? 'TIMEOUT' : 'LIBVIRT_ERROR',
      `live migration of "${label}" to ${destUri} failed: ${why} (the domain is ${now} on ${sourceUri})`,
      'see the reason above; the domain stayed where it was', { cause: e });
  }
  const durationMs = Date.now() - started;
  const jobInfo = parseJobInfo(await dest.run(['domjobinfo', '--completed', domain], 30_000).catch(() => ''));
  return {
    durationMs,
    ...optionalMs('downtimeMs', jobInfo['Total downtime']),
    ...optionalMs('jobElapsedMs', jobInfo['Time elapsed']),
    jobInfo,
  };
}

/** "Total downtime:    42 ms" lines → { 'Total downtime': '42 ms' }. */
export function parseJobInfo(out: string): Record<string, string> {
  const info: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const m = /^([^:]+):\s+(.*\S)\s*$/.exec(line);
    if (m) info[m[1]!.trim()] = m[2]!;
  }
  return info;
}

function optionalMs<K extends string>(key: K, value: string | undefined): { [P in K]?: number } {
  const m = value === undefined ? null : /^(\d+(?:\.\d+)?)\s*ms$/.exec(value.trim());
  return (m ? { [key]: Number(m[1]) } : {}) as { [P in K]?: number };
}

/**
 * Whether a job (a migration, in or out) runs on the domain now. A virsh killed mid-migration
 * (kumo killed, or its call timed out) leaves the job to libvirt, which goes on with it.
 */
export async function migrationJobActive(v: Virsh, domain: string): Promise<boolean> {
  const type = parseJobInfo(await v.run(['domjobinfo', domain], 30_000))['Job type'];
  return type !== undefined && type !== 'None';
}

/** Whether libvirt keeps the domain's definition when it stops (a migration's incoming one is transient until it ends). */
export async function domainPersistent(v: Virsh, domain: string): Promise<boolean> {
  return parseJobInfo(await v.run(['dominfo', domain], 30_000))['Persistent'] === 'yes';
}

/** Asks libvirt to abort the domain's job (a migration); a job already past its point of no return goes on. */
export async function abortJob(v: Virsh, domain: string): Promise<void> {
  await v.run(['domjobabort', domain], 30_000).catch(() => undefined);
}

/** After a failed or aborted migration: no job left running, and the guest running on the source. */
async function recoverOnSource(source: Virsh, domain: string): Promise<void> {
  await source.run(['domjobabort', domain], 30_000).catch(() => undefined);
  for (let i = 0; i < 50; i++) {
    const state = await source.domainState(domain).catch(() => 'missing');
    if (state === 'running' || state === 'missing' || state === 'shut off') return;
    if (state === 'paused') {
      await source.run(['resume', domain], 30_000).catch(() => undefined);
    }
    await sleep(200);
  }
}
