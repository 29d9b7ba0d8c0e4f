import type { Context } from './context.js';
import { parseDomainXml, type DomainFacts } from '../drivers/libvirt/domain-xml.js';
import type { RuntimeState } from '../model/types.js';

/** A domain kumo made (its metadata says so) that no instance record of this kumo names by UUID. */
export interface OrphanDomain {
  host: string;
  name: string;
  uuid: string;
  state: RuntimeState;
  /** The disks it points at, and whether each file is there (an orphan's usually are not). */
  disks: { file: string; exists: boolean }[];
}

/** An instance record whose domain libvirt does not have (shown as `missing` by instance list too). */
export interface MissingDomain {
  instance: string;
  project: string;
  host: string;
  uuid: string;
}

/** An operation whose undo failed (a daemon was down) and is retried by every kumo start. */
export interface UnfinishedOperation {
  operation: string;
  startedAt: string;
  steps: number;
}

export interface DoctorReport {
  orphans: OrphanDomain[];
  missing: MissingDomain[];
  unfinished: UnfinishedOperation[];
  /** Hosts whose libvirt did not answer: what lives there is neither orphan nor missing, but unknown. */
  unreachable: { host: string; error: string }[];
}

export interface DoctorFix {
  removed: OrphanDomain[];
  /** Orphans left in place, and why (a running one without `force`). */
  kept: { orphan: OrphanDomain; why: string }[];
  /** What remains after the fix. */
  after: DoctorReport;
}

export const problemsIn = (r: DoctorReport): number => r.orphans.length + r.missing.length + r.unfinished.length + r.unreachable.length;

/**
 * Whose a domain is. It is this kumo's orphan when kumo made it (`kumo:created-by`), its root disk
 * lies in this kumo's instances folder, and no record holds its UUID. The folder test matters: two
 * kumo homes (test runs, a second install) may share one libvirt, and another's domains are not
 * this one's to report or remove. A domain without kumo's metadata is never kumo's.
 */
export function domainOwner(facts: DomainFacts, uuid: string, knownUuids: ReadonlySet<string>, instancesDir: string): 'instance' | 'orphan' | 'not-ours' {
  if (knownUuids.has(uuid.toLowerCase())) return 'instance';
  if (facts.kumoCreatedBy !== 'kumo') return 'not-ours';
  const root = facts.disks.find((d) => d.device === 'disk')?.file ?? '';
  return root.startsWith(`${instancesDir.replace(/\/+$/, '')}/`) ? 'orphan' : 'not-ours';
}

/**
 * Reconciles kumo's records with the domains on its registered hypervisors. Root on the machine
 * only (the CLI's `kumo doctor`; there is no API route): it looks across every project.
 * `check` changes nothing; `fix` removes orphan domains and nothing else.
 */
export class DoctorService {
  constructor(private readonly ctx: Context) {}

  async check(): Promise<DoctorReport> {
    const records = this.ctx.instances.list();
    const known = new Set(records.map((r) => r.uuid.toLowerCase()));
    const report: DoctorReport = {
      orphans: [], missing: [], unreachable: [],
      // Given up by their process (pid 0): this command's start retried them already and failed again.
      unfinished: this.ctx.journal.pending().filter((e) => e.pid === 0)
        .map((e) => ({ operation: e.operation, startedAt: e.startedAt, steps: e.undo.length })),
    };
    for (const host of this.ctx.hosts.list().filter((h) => h.uri && h.roles.includes('hypervisor'))) {
      const v = this.ctx.virshFor(host.name);
      const listed = await v.listDomains().catch((e: Error) => {
        report.unreachable.push({ host: host.name, error: e.message });
        return undefined;
      });
      if (!listed) continue;
      for (const d of listed.filter((x) => x.uuid && !known.has(x.uuid))) {
        const xml = await v.dumpXml(d.uuid, true).catch(() => undefined);
        if (!xml) continue; // gone meanwhile
        const facts = parseDomainXml(xml);
        if (domainOwner(facts, d.uuid, known, this.ctx.paths.instances) !== 'orphan') continue;
        report.orphans.push({ host: host.name, name: d.name, uuid: d.uuid, state: d.state, disks: await this.disks(host.name, facts) });
      }
      const uuids = new Set(listed.map((d) => d.uuid));
      for (const r of records.filter((x) => x.host === host.name && !uuids.has(x.uuid.toLowerCase()))) {
        report.missing.push({ instance: r.name, project: r.project, host: r.host, uuid: r.uuid });
      }
    }
    return report;
  }

  /**
   * Removes the orphans found now. A shut-off orphan is removed; a running one only with `force`:
   * a running domain may be a guest someone uses (kumo's record of it lost, or restored from an
   * older backup), and removing it stops that guest, so it takes a deliberate second word.
   * Each orphan is looked at again just before (a record may have appeared, it may have started).
   * Running it again finds nothing more to do.
   */
  async fix(opts: { force?: boolean } = {}): Promise<DoctorFix> {
    const removed: OrphanDomain[] = [];
    const kept: DoctorFix['kept'] = [];
    for (const orphan of (await this.check()).orphans) {
      if (this.ctx.instances.list().some((r) => r.uuid.toLowerCase() === orphan.uuid)) continue;
      const v = this.ctx.virshFor(orphan.host);
      const state = await v.domainState(orphan.uuid);
      if (state === 'missing') continue;
      if (state !== 'shut off' && !opts.force) {
        kept.push({ orphan: { ...orphan, state }, why: `it is ${state}: it may be a guest someone uses; \`kumo doctor --fix --force\` stops and removes it` });
        continue;
      }
      await v.removeDomain(orphan.uuid);
      removed.push({ ...orphan, state });
    }
    return { removed, kept, after: await this.check() };
  }

  private async disks(host: string, facts: DomainFacts): Promise<OrphanDomain['disks']> {
    const shell = this.ctx.shellOf(host);
    const files = facts.disks.map((d) => d.file).filter((f) => f);
    return Promise.all(files.map(async (file) => ({
      file, exists: (await shell.run('test', ['-e', file], { allowFailure: true }).catch(() => ({ code: 1 }))).code === 0,
    })));
  }
}
