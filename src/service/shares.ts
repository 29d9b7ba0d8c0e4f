import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { Context } from './context.js';
import { NetworkService } from './networks.js';
import { GaneshaServer } from '../drivers/services/nfs-ganesha.js';
import { KumoError, invalid, notFound } from '../model/errors.js';
import { checkName } from '../model/names.js';
import type { ShareRecord } from '../store/shares.js';

export interface ShareView extends ShareRecord {
  /** What an instance on each allowed network mounts. */
  mounts: { network: string; source: string; command: string }[];
}

/**
 * Shared folders (the course's index.html on the storage node) served over NFSv4.1 by this
 * host's nfs-ganesha, mountable only from the instance networks each share names.
 */
export class ShareService {
  private readonly server: GaneshaServer;

  constructor(private readonly ctx: Context) {
    this.server = new GaneshaServer(join(ctx.paths.home, 'nfs'), ctx.exec);
  }

  async list(): Promise<ShareView[]> {
    return Promise.all(this.ctx.shares.list().map((s) => this.view(s)));
  }

  async get(name: string): Promise<ShareView> {
    const s = this.ctx.shares.get(name);
    if (!s) throw notFound(`share "${name}" does not exist`, 'see `kumo share list`');
    return this.view(s);
  }

  async create(name: string, opts: { networks: string[]; path?: string; readOnly?: boolean }): Promise<ShareView> {
    checkName('share', name);
    if (this.ctx.shares.get(name)) throw new KumoError('ALREADY_EXISTS', `share "${name}" already exists`, 'pick another name');
    if (!opts.networks.length) throw invalid('a share needs at least one --network whose instances may mount it', 'e.g. --network default');
    const path = opts.path ? resolve(opts.path) : join(this.ctx.paths.home, 'shares', name);
    if (opts.path && !isAbsolute(opts.path)) throw invalid(`--path must be absolute, got "${opts.path}"`);
    if (!/^\/[A-Za-z0-9._/-]*$/.test(path)) throw invalid(`share path "${path}" has characters the NFS server cannot take`, 'use letters, digits, ".", "_", "-" and "/"');
    if (opts.path && !existsSync(path)) throw invalid(`folder ${path} does not exist`, 'create it first, or leave --path out to get one under KUMO_HOME/shares');
    for (const n of opts.networks) await this.networkCidr(n);
    if (!opts.path) await mkdir(path, { recursive: true, mode: 0o755 });
    const record: ShareRecord = { name, path, networks: opts.networks, readOnly: opts.readOnly ?? false, createdAt: new Date().toISOString() };
    this.ctx.shares.insert(record);
    try {
      await this.apply();
    } catch (e) {
      this.ctx.shares.delete(name);
      await this.apply().catch(() => undefined);
      throw e;
    }
    return this.view(record);
  }

  async delete(name: string): Promise<void> {
    await this.get(name);
    this.ctx.shares.delete(name);
    await this.apply();
  }

  /** Rewrites the server's exports from the store: the store is the intent. */
  private async apply(): Promise<void> {
    const shares = this.ctx.shares.list();
    const exports = [];
    for (const [i, s] of shares.entries()) {
      exports.push({ id: i + 1, path: s.path, pseudo: `/${s.name}`, readOnly: s.readOnly,
        clients: await Promise.all(s.networks.map((n) => this.networkCidr(n))) });
    }
    await this.server.apply(exports);
  }

  private async networkCidr(network: string): Promise<string> {
    const n = await new NetworkService(this.ctx).get(network);
    if (!n.cidr) throw invalid(`network "${network}" has no subnet kumo knows (mode ${n.mode})`, 'give a nat or isolated network');
    return n.cidr;
  }

  private async view(s: ShareRecord): Promise<ShareView> {
    const mounts = [];
    for (const network of s.networks) {
      const n = await new NetworkService(this.ctx).get(network).catch(() => undefined);
      if (!n?.gateway) continue;
      const source = `${n.gateway}:/${s.name}`;
      mounts.push({ network, source, command: `mount -t nfs4 -o vers=4.1,addr=${n.gateway} ${source} /mnt` });
    }
    return { ...s, mounts };
  }
}
