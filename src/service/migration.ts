import type { Context } from './context.js';
import { HostService } from './host.js';
import { NetworkService } from './networks.js';
import { dhcpAddresses } from './leases.js';
import { migrateLive, type MigrateResult } from '../drivers/libvirt/migrate.js';
import { missingTlsFiles, type MigrationEnd } from '../drivers/libvirt/migration-tls.js';
import { KumoError, invalid, notFound } from '../model/errors.js';
import { withUndo } from './undo.js';
import { SETTLE_MIGRATION } from './migration-settle.js';
import { LoadBalancerService, UNDRAIN } from './loadbalancers.js';

/** How a migration goes; `encrypted`: the memory stream over QEMU's TLS (certificates on both hosts). */
export interface MigrateOptions {
  unsafe?: boolean;
  encrypted?: boolean;
  timeoutMs?: number;
}

export interface EvacuateResult {
  name: string;
  to?: string;
  error?: string;
  downtimeMs?: number;
}

/** Live migration of instances between hypervisors on shared storage: one, or all of a host's. */
export class MigrationService {
  constructor(private readonly ctx: Context) {}

  /**
   * Live-migrates a running instance to another host (disks on storage both see at the same
   * path, so only memory moves). kumo records the new host only after libvirt confirms; on
   * failure the instance keeps running where it was. Journaled: a kumo killed or timed out during
   * the move leaves libvirt migrating on; the settle step (migration-settle.ts) ends that and
   * records where the domain is, in the failure path here or at the next kumo start.
   */
  async migrate(name: string, to: string, opts: MigrateOptions = {}): Promise<MigrateResult & { from: string; to: string }> {
    const r = this.ctx.instances.get(name);
    if (!r) throw notFound(`instance "${name}" does not exist`, 'see `kumo instance list`');
    if (r.host === to) throw invalid(`instance "${name}" already runs on ${to}`, 'pick another host: kumo host list');
    const dest = this.ctx.hosts.get(to);
    if (!dest) throw notFound(`host "${to}" is not registered`, 'see `kumo host list`');
    if (!dest.roles.includes('hypervisor')) throw invalid(`host "${to}" is not a hypervisor`, 'pick a host with the hypervisor role');
    const v = this.ctx.virshFor(to);
    if (!(await v.ping())) throw new KumoError('LIBVIRT_ERROR', `host ${to} does not answer`, 'check its libvirtd, or pick another host');
    if (opts.encrypted) await this.checkTls(r.host, to);
    const from = r.host;
    const result = await withUndo(this.ctx, `migrate instance ${name}`, async (undo, step) => {
      const networks = new NetworkService(this.ctx, v);
      for (const n of new Set(r.nics.map((x) => x.network))) await networks.ensureUsable(n);
      // Out of its load balancers' rotation while it moves; back in once it has (or it has not).
      undo({ kind: 'service', handler: UNDRAIN, args: { instance: name }, when: 'always' });
      const lbs = new LoadBalancerService(this.ctx);
      await lbs.drain(name);
      // Before libvirt is asked: whatever stops this process from here on, the next kumo start
      // (or the failure path right here) finds out where the domain is and records that host.
      undo({ kind: 'service', handler: SETTLE_MIGRATION, args: { name, uuid: r.uuid, from, to }, when: 'always' });
      const moved = await migrateLive({
        source: this.ctx.virshFor(from), domain: r.uuid, label: name, dest: v,
        migrateUri: `tcp://${dest.migrationAddress ?? '127.0.0.1'}`,
        // Client-driven (not p2p): virsh reaches both daemons by the URIs kumo has for them.
        p2p: false, unsafe: opts.unsafe ?? this.sameFilesystem(from, to), tls: opts.encrypted ?? false, timeoutMs: opts.timeoutMs ?? 300_000,
        nicAddresses: await dhcpAddresses(this.ctx, [r]),
        beforeCall: step,
      });
      this.ctx.instances.updateHost(name, to);
      await lbs.undrain(name);
      return moved;
    });
    return { ...result, from, to };
  }

  /** Live-migrates every running instance off a host (maintenance), a few at a time. */
  async evacuate(host: string, opts: { parallel?: number; unsafe?: boolean; encrypted?: boolean } = {}): Promise<EvacuateResult[]> {
    if (!this.ctx.hosts.get(host)) throw notFound(`host "${host}" is not registered`, 'see `kumo host list`');
    const queue = this.ctx.instances.list().filter((i) => i.host === host);
    const results: EvacuateResult[] = [];
    const hosts = new HostService(this.ctx);
    const worker = async () => {
      for (let r = queue.shift(); r; r = queue.shift()) {
        try {
          const to = await hosts.place(r.vcpus, r.ramMiB, { exclude: [host] });
          const m = await this.migrate(r.name, to, {
            ...(opts.unsafe !== undefined ? { unsafe: opts.unsafe } : {}), ...(opts.encrypted ? { encrypted: true } : {}),
          });
          results.push({ name: r.name, to, ...(m.downtimeMs !== undefined ? { downtimeMs: m.downtimeMs } : {}) });
        } catch (e) {
          results.push({ name: r.name, error: (e as Error).message });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, opts.parallel ?? 2) }, worker));
    return results;
  }

  /**
   * An encrypted migration needs QEMU's TLS certificates on both hosts: refused before anything
   * moves when a file is missing, naming the host, the folder and the files.
   */
  async checkTls(from: string, to: string): Promise<void> {
    const ends: [string, MigrationEnd][] = [[from, 'source'], [to, 'destination']];
    for (const [host, end] of ends) {
      const { dir, missing } = await missingTlsFiles(this.ctx.shellOf(host), end, this.ctx.hosts.get(host)?.uri);
      if (missing.length) {
        throw invalid(`an encrypted migration needs QEMU's TLS certificates, and ${end} host ${host} lacks ${missing.join(', ')} in ${dir}`,
          `put a CA certificate and a ${end === 'source' ? 'client' : 'server'} certificate and key signed by it there (docs/architecture.md, "Encrypted migration", shows how), or migrate without encryption`);
      }
    }
  }

  /**
   * Hypervisors on this very machine (its own libvirt, lab namespaces) open the same disk
   * files: libvirt's shared-storage check, meant for caches on separate machines, does not apply.
   */
  private sameFilesystem(a: string, b: string): boolean {
    return [a, b].every((h) => ['local', 'netns'].includes(this.ctx.hosts.get(h)?.shell.kind ?? ''));
  }
}
