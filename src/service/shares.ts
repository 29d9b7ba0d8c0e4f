import { existsSync } from 'node:fs';
import { chown, mkdir, realpath, rm } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type { Context } from './context.js';
import { NetworkService } from './networks.js';
import { GaneshaServer, SHARE_ANON_ID } from '../drivers/daemons/nfs-ganesha.js';
import { ensureNosuidBind, releaseNosuidBind } from '../drivers/host/nosuid-mount.js';
import { KumoError, invalid, notFound } from '../model/errors.js';
import { checkName } from '../model/names.js';
import { ROOT_ONLY, type Reach } from '../model/reach.js';
import type { ShareRecord } from '../store/shares.js';
import { machineActor, type Actor } from '../model/actor.js';
import { actingProject, checkRoom, reserve, sees } from './scope.js';
import { attachableNetwork, networkReader } from './network-owners.js';
import { HostLinks } from '../drivers/net/links.js';
import { contains, parseCidr, parseIp } from '../model/checks.js';
import { onRecover, withUndo } from './undo.js';

/** The journal's undo of a share create (service/undo.ts), run in-process or after a crash. */
const UNDO_CREATE = 'undo-share-create';

export interface ShareView extends ShareRecord {
  /** The storage host that serves it (none: this machine). */
  server?: string;
  /** What an instance on each allowed network mounts. */
  mounts: { network: string; source: string; command: string }[];
}

/**
 * Shared folders (the course's index.html on the storage node) served over NFSv4.1 by the
 * storage host's nfs-ganesha (the first host with the storage role; this machine if there is
 * none), mountable only from the instance networks each share names. The folders live under
 * KUMO_HOME, which the storage node sees at the same path (the lab: one filesystem).
 */
export class ShareService {
  private readonly serverHost: string | undefined;
  private readonly server: GaneshaServer;

  /** `actor`: who asks; it sees and makes shares of its project only (root in `default` by default). */
  constructor(private readonly ctx: Context, private readonly actor: Actor = machineActor()) {
    this.serverHost = ctx.hosts.list().find((h) => h.roles.includes('storage'))?.name;
    this.server = this.serverHost
      ? new GaneshaServer(join(ctx.paths.home, 'nfs', this.serverHost), ctx.shellOf(this.serverHost))
      : new GaneshaServer(join(ctx.paths.home, 'nfs'), ctx.exec);
  }

  async list(): Promise<ShareView[]> {
    return Promise.all(this.ctx.shares.list(this.actor.project).map((s) => this.view(s)));
  }

  async get(name: string): Promise<ShareView> {
    const s = this.ctx.shares.get(name);
    // Another project's share is answered exactly like a missing one.
    if (!s || !sees(this.actor, s.project)) throw notFound(`share "${name}" does not exist`, 'see `kumo share list`');
    return this.view(s);
  }

  /**
   * A share lives under KUMO_HOME/shares: by default KUMO_HOME/shares/NAME, which kumo makes.
   * From the cloud (the API, a datacenter file) a given path must resolve there too; only root on
   * the machine (`kumo share create --path`) may share another folder of the server.
   */
  async create(name: string, opts: { networks: string[]; path?: string; readOnly?: boolean }, reach: Reach = 'cloud'): Promise<ShareView> {
    checkName('share', name);
    const project = actingProject(this.ctx, this.actor);
    checkRoom(this.ctx, project, { shares: 1 });
    if (this.ctx.shares.get(name)) throw new KumoError('ALREADY_EXISTS', `share "${name}" already exists`, 'pick another name');
    if (!opts.networks.length) throw invalid('a share needs at least one --network whose instances may mount it', 'e.g. --network default');
    const path = opts.path ? resolve(opts.path) : join(this.ctx.paths.home, 'shares', name);
    if (opts.path && !isAbsolute(opts.path)) throw invalid(`--path must be absolute, got "${opts.path}"`);
    if (opts.path && reach === 'cloud') await this.checkUnderShares(path);
    if (!/^\/[A-Za-z0-9._/-]*$/.test(path)) throw invalid(`share path "${path}" has characters the NFS server cannot take`, 'use letters, digits, ".", "_", "-" and "/"');
    if (opts.path && !existsSync(path)) throw invalid(`folder ${path} does not exist`, 'create it first, or leave --path out to get one under KUMO_HOME/shares');
    for (const n of opts.networks) await this.networkCidr(attachableNetwork(this.ctx, project, n));
    const record: ShareRecord = { name, path, networks: opts.networks, readOnly: opts.readOnly ?? false, createdAt: new Date().toISOString(), project };
    // Only a folder this create makes is removed by its undo (one left by a deleted share of that name keeps its files).
    const makesFolder = !opts.path && !existsSync(path);
    await withUndo(this.ctx, `create share ${name}`, async (undo, step) => {
      undo({ kind: 'service', handler: UNDO_CREATE, args: { name, createdAt: record.createdAt, folder: makesFolder ? path : '' } });
      if (!opts.path) {
        await mkdir(path, { recursive: true, mode: 0o755 });
        // Guests write as nobody (All_Squash): a folder of kumo's is theirs to write in; a --path
        // folder keeps the owner root gave it.
        await chown(path, SHARE_ANON_ID, SHARE_ANON_ID);
        step();
      }
      reserve(this.ctx, project, { shares: 1 }, () => {
        if (this.ctx.shares.get(name)) throw new KumoError('ALREADY_EXISTS', `share "${name}" already exists`, 'pick another name');
        this.ctx.shares.insert(record);
      });
      step();
      await this.apply(step);
    });
    return this.view(record);
  }

  /**
   * From the cloud a share's folder lies under KUMO_HOME/shares, also after following links: the
   * words are checked before the filesystem is asked (so no answer tells what exists elsewhere
   * on the server), then the real path (so no link leads out).
   */
  private async checkUnderShares(path: string): Promise<void> {
    const root = join(this.ctx.paths.home, 'shares');
    const outside = () => invalid(`share path ${path} is outside KUMO_HOME/shares (${root}): over the API a share lives there`,
      `leave path out to get ${root}/NAME; another folder of the server: ${ROOT_ONLY} (kumo share create --path)`);
    if (!isInside(root, path)) throw outside();
    await mkdir(root, { recursive: true, mode: 0o755 });
    const real = await realpath(path).catch(() => undefined);
    if (real === undefined) throw invalid(`folder ${path} does not exist`, `create it first, or leave path out to get ${root}/NAME`);
    if (!isInside(await realpath(root), real)) throw outside();
  }

  async delete(name: string): Promise<void> {
    await this.get(name);
    this.ctx.shares.delete(name);
    await this.apply();
  }

  /**
   * Stops serving every share and forgets them, with the folders kumo made for them and the
   * server's own files (the storage node goes away: kumo lab down). Folders given with --path stay.
   */
  async removeAll(): Promise<string[]> {
    const shares = this.ctx.shares.list();
    await this.server.stop();
    for (const s of shares) {
      if (s.path === join(this.ctx.paths.home, 'shares', s.name)) await rm(s.path, { recursive: true, force: true });
      this.ctx.shares.delete(s.name);
    }
    await this.server.removeFiles();
    await releaseNosuidBind(this.ctx.exec, this.sharesDir);
    return shares.map((s) => s.name);
  }

  /**
   * Undoes a create (an error in it, or kumo killed in it): forgets the record it wrote (not
   * another create's of the same name), removes the folder it made, and serves what the store
   * says again (exports, bind mount, the server stopped if nothing is left). Idempotent.
   */
  async undoCreate(args: { name: string; createdAt: string; folder: string }): Promise<void> {
    if (this.ctx.shares.get(args.name)?.createdAt === args.createdAt) this.ctx.shares.delete(args.name);
    if (args.folder) await rm(args.folder, { recursive: true, force: true });
    await this.apply();
  }

  private get sharesDir(): string { return join(this.ctx.paths.home, 'shares'); }

  /** Rewrites the server's exports from the store: the store is the intent. */
  private async apply(step: () => void = () => undefined): Promise<void> {
    const shares = this.ctx.shares.list();
    // KUMO_HOME/shares is nosuid,nodev while it serves anything: no setuid file or device node
    // a guest leaves there works on the host. Folders given with --path are root's choice.
    if (shares.some((s) => s.path.startsWith(`${this.sharesDir}/`))) await ensureNosuidBind(this.ctx.exec, this.sharesDir);
    else await releaseNosuidBind(this.ctx.exec, this.sharesDir);
    step();
    const exports = [];
    for (const [i, s] of shares.entries()) {
      exports.push({ id: i + 1, path: s.path, pseudo: `/${s.name}`, readOnly: s.readOnly,
        clients: await Promise.all(s.networks.map((n) => this.networkCidr(n))) });
    }
    await this.server.apply(exports);
  }

  private async networkCidr(network: string): Promise<string> {
    const known = this.ctx.networkSubnets.get(network);
    if (known) return known.cidr;
    const n = await new NetworkService(this.ctx, this.ctx.virsh, networkReader(this.ctx, network)).get(network);
    if (!n.cidr) throw invalid(`network "${network}" has no subnet kumo knows (mode ${n.mode})`, 'give a nat or isolated network');
    return n.cidr;
  }

  private async view(s: ShareRecord): Promise<ShareView> {
    const mounts = [];
    for (const network of s.networks) {
      const server = await this.serverAddress(network).catch(() => undefined);
      if (!server) continue;
      const source = `${server}:/${s.name}`;
      mounts.push({ network, source, command: `mount -t nfs4 -o vers=4.1,addr=${server} ${source} /mnt` });
    }
    return { ...s, ...(this.serverHost ? { server: this.serverHost } : {}), mounts };
  }

  /** The storage host's address on a network: what instances there mount from. */
  private async serverAddress(network: string): Promise<string | undefined> {
    if (!this.serverHost) return (await new NetworkService(this.ctx, this.ctx.virsh, networkReader(this.ctx, network)).get(network)).gateway;
    const net = parseCidr(await this.networkCidr(network));
    const addresses = await new HostLinks(this.ctx.shellOf(this.serverHost)).addresses();
    return addresses.find((a) => contains(net, parseIp(a.address)))?.address;
  }
}

/** Whether `path` lies below `root` (both absolute and resolved); root itself would share every share. */
const isInside = (root: string, path: string): boolean => {
  const rel = relative(root, path);
  return rel !== '' && rel !== '..' && !rel.startsWith('../') && !isAbsolute(rel);
};

onRecover(UNDO_CREATE, async (ctx, args) => {
  await new ShareService(ctx).undoCreate({ name: args.name ?? '', createdAt: args.createdAt ?? '', folder: args.folder ?? '' });
});
