import { KumoError } from '../../model/errors.js';
import type { RuntimeState } from '../../model/types.js';
import type { Virsh } from './virsh.js';

/**
 * Typed counters from `virsh domstats --raw`: one record per domain, cumulative since its QEMU
 * process started (a restart or a migration starts them from zero again).
 *
 * Numbers are JavaScript numbers: exact up to 2^53, i.e. ~104 days of CPU time in ns or 9 PB of
 * traffic; beyond that they lose a few units in the last digits, which no rate notices.
 */

export interface NicCounters {
  /** The host-side device (vnetN, or the tap name). */
  name: string;
  rxBytes: number;
  rxPkts: number;
  rxErrs: number;
  rxDrop: number;
  txBytes: number;
  txPkts: number;
  txErrs: number;
  txDrop: number;
}

export type NetTotals = Omit<NicCounters, 'name'>;

export interface DiskCounters {
  /** The guest target (vda, sda). */
  name: string;
  path?: string;
  rdBytes: number;
  rdReqs: number;
  wrBytes: number;
  wrReqs: number;
}

export type BlockTotals = Omit<DiskCounters, 'name' | 'path'>;

export interface DomainStats {
  name: string;
  /** libvirt's state code (virDomainState) in virsh's words. */
  state: RuntimeState;
  /** Host CPU time the whole domain used, all vCPUs and QEMU's own threads (ns). */
  cpuTimeNs?: number;
  cpuUserNs?: number;
  cpuSystemNs?: number;
  vcpus?: number;
  memory: {
    /** What the guest has now (balloon), KiB. */
    currentKiB?: number;
    maximumKiB?: number;
    /** Resident memory of the QEMU process on the host, KiB. */
    rssKiB?: number;
    /** The guest's own view, when its balloon driver reports it (KiB). */
    availableKiB?: number;
    unusedKiB?: number;
    usableKiB?: number;
  };
  /** Summed over every disk (the seed CD-ROM included). */
  block: BlockTotals;
  disks: DiskCounters[];
  /** From the guest's point of view, as libvirt reports them: tx is what the guest sent. */
  net: NetTotals;
  nics: NicCounters[];
}

const STATES: Record<number, RuntimeState> = {
  0: 'unknown', 1: 'running', 2: 'idle', 3: 'paused', 4: 'in shutdown', 5: 'shut off', 6: 'crashed', 7: 'pmsuspended',
};

const zeroNet = (): NetTotals => ({ rxBytes: 0, rxPkts: 0, rxErrs: 0, rxDrop: 0, txBytes: 0, txPkts: 0, txErrs: 0, txDrop: 0 });
const zeroBlock = (): BlockTotals => ({ rdBytes: 0, rdReqs: 0, wrBytes: 0, wrReqs: 0 });

const NET_FIELDS: Record<string, keyof NetTotals> = {
  'rx.bytes': 'rxBytes', 'rx.pkts': 'rxPkts', 'rx.errs': 'rxErrs', 'rx.drop': 'rxDrop',
  'tx.bytes': 'txBytes', 'tx.pkts': 'txPkts', 'tx.errs': 'txErrs', 'tx.drop': 'txDrop',
};
const BLOCK_FIELDS: Record<string, keyof BlockTotals> = {
  'rd.bytes': 'rdBytes', 'rd.reqs': 'rdReqs', 'wr.bytes': 'wrBytes', 'wr.reqs': 'wrReqs',
};

/** Parses the whole output of `virsh domstats --raw` (any set of groups; unknown fields are ignored). */
export function parseDomstats(text: string): DomainStats[] {
  const out: DomainStats[] = [];
  let fields: Map<string, string> | undefined;
  let name = '';
  const flush = () => {
    if (fields) out.push(toStats(name, fields));
    fields = undefined;
  };
  for (const line of text.split('\n')) {
    // The name runs to the last quote: a name may itself contain quotes.
    const header = /^Domain: '(.*)'\s*$/.exec(line);
    if (header) {
      flush();
      name = header[1]!;
      fields = new Map();
      continue;
    }
    const kv = /^\s+([^=\s]+)=(.*)$/.exec(line);
    if (kv && fields) fields.set(kv[1]!, kv[2]!);
  }
  flush();
  return out;
}

function toStats(name: string, f: Map<string, string>): DomainStats {
  const num = (key: string): number | undefined => {
    const v = f.get(key);
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  };
  const opt = <K extends string>(key: K, value: number | undefined) => (value === undefined ? {} : { [key]: value } as Record<K, number>);

  // Per-device records, indexed net.N.* / block.N.*; a shut-off domain has names but no counters.
  const nics: NicCounters[] = [];
  for (let i = 0; i < (num('net.count') ?? 0); i++) {
    const nic: NicCounters = { name: f.get(`net.${i}.name`) ?? `net${i}`, ...zeroNet() };
    for (const [suffix, key] of Object.entries(NET_FIELDS)) nic[key] = num(`net.${i}.${suffix}`) ?? 0;
    nics.push(nic);
  }
  const disks: DiskCounters[] = [];
  for (let i = 0; i < (num('block.count') ?? 0); i++) {
    const path = f.get(`block.${i}.path`);
    const disk: DiskCounters = { name: f.get(`block.${i}.name`) ?? `block${i}`, ...(path ? { path } : {}), ...zeroBlock() };
    for (const [suffix, key] of Object.entries(BLOCK_FIELDS)) disk[key] = num(`block.${i}.${suffix}`) ?? 0;
    disks.push(disk);
  }
  const net = zeroNet();
  for (const nic of nics) for (const key of Object.values(NET_FIELDS)) net[key] += nic[key];
  const block = zeroBlock();
  for (const d of disks) for (const key of Object.values(BLOCK_FIELDS)) block[key] += d[key];

  const code = num('state.state');
  return {
    name,
    state: code === undefined ? 'unknown' : (STATES[code] ?? 'unknown'),
    ...opt('cpuTimeNs', num('cpu.time')),
    ...opt('cpuUserNs', num('cpu.user')),
    ...opt('cpuSystemNs', num('cpu.system')),
    ...opt('vcpus', num('vcpu.current')),
    memory: {
      ...opt('currentKiB', num('balloon.current')),
      ...opt('maximumKiB', num('balloon.maximum')),
      ...opt('rssKiB', num('balloon.rss')),
      ...opt('availableKiB', num('balloon.available')),
      ...opt('unusedKiB', num('balloon.unused')),
      ...opt('usableKiB', num('balloon.usable')),
    },
    block, disks, net, nics,
  };
}

/** The groups kumo reads: fewer than domstats' default, which also asks for perf and dirty-rate data. */
export const DOMSTATS_GROUPS = ['--state', '--cpu-total', '--balloon', '--vcpu', '--interface', '--block'];

/**
 * Counters of every domain on a libvirt (or of the named ones). `--nowait` makes a domain that
 * is busy with a job (a migration, a snapshot) answer at once with what it has, rather than
 * stall the whole host's reading.
 */
export async function readDomainStats(virsh: Virsh, names: string[] = [], timeoutMs = 15_000): Promise<DomainStats[]> {
  const args = ['domstats', '--raw', '--nowait', ...DOMSTATS_GROUPS];
  try {
    return parseDomstats(await virsh.run([...args, ...names], timeoutMs));
  } catch (e) {
    // One vanished name fails the whole call: read everything and keep what still exists.
    if (names.length && e instanceof KumoError && /failed to get domain|Domain not found/i.test(e.message)) {
      const wanted = new Set(names);
      return parseDomstats(await virsh.run(args, timeoutMs)).filter((d) => wanted.has(d.name));
    }
    throw e;
  }
}
