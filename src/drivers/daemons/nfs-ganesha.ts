import { join } from 'node:path';
import { type Executor, local } from '../../exec/exec.js';
import { readHostFile } from '../../exec/files.js';
import { KumoError, invalid } from '../../model/errors.js';
import { ManagedDaemon } from './daemon.js';
import { readCidr } from '../../model/checks.js';

/**
 * The NFS server of the storage node: nfs-ganesha in user space (HOST-NOTES: kernel nfsd
 * cannot run on these hosts, and ganesha needs no kernel support at all). NFSv4.1 over TCP
 * only, so there is no rpcbind or lock manager to run beside it.
 */
export interface NfsExport {
  id: number;
  /** The folder served. */
  path: string;
  /** The name clients mount: SERVER:/pseudo. */
  pseudo: string;
  readOnly: boolean;
  /** Who may mount it: CIDRs. Nobody else can, whatever they try. */
  clients: string[];
}

/**
 * Who every guest is on a share: nobody/nogroup. All_Squash rather than Root_Squash: with root
 * squashed only, a guest's uid 1000 would still write as the host's uid 1000 (a real local
 * user, whose setuid files it could plant); squashed to nobody, a guest never owns a file as
 * anyone who matters on the host.
 */
export const SHARE_ANON_ID = 65534;

const SAFE_PATH = /^\/[A-Za-z0-9._/-]*$/;
/** A client network: a CIDR as the shared parser reads it (octets 0-255, prefix at most /32, no host bits). */
const isClientCidr = (text: string) => readCidr(text).ok;

/** ganesha.conf from typed exports; every value is checked before it is written. */
export function buildGaneshaConfig(exports: NfsExport[]): string {
  const blocks = exports.map((e) => {
    if (!SAFE_PATH.test(e.path) || !SAFE_PATH.test(e.pseudo)) throw invalid(`export path "${e.path}" or "${e.pseudo}" has characters ganesha cannot take`);
    if (!e.clients.length || e.clients.some((c) => !isClientCidr(c))) throw invalid(`export ${e.pseudo} needs client networks as CIDRs, got ${e.clients.join(', ') || 'none'}`);
    const access = e.readOnly ? 'RO' : 'RW';
    return `EXPORT {
  Export_Id = ${e.id};
  Path = "${e.path}";
  Pseudo = "${e.pseudo}";
  Access_Type = None;
  Squash = All_Squash;
  Anonymous_Uid = ${SHARE_ANON_ID};
  Anonymous_Gid = ${SHARE_ANON_ID};
  Protocols = 4;
  Transports = TCP;
  SecType = sys;
  # Files change on the storage side too (the course edits index.html there): no stale attributes.
  Attr_Expiration_Time = 0;
  CLIENT { Clients = ${e.clients.join(', ')}; Access_Type = ${access}; }
  FSAL { Name = VFS; }
}`;
  });
  return `# Written by kumo: changes here are replaced on the next kumo share command.
NFS_CORE_PARAM { Protocols = 4; NFS_Port = 2049; Enable_NLM = false; Enable_RQUOTA = false; }
NFSV4 { Graceless = true; Minor_Versions = 1, 2; }
${blocks.join('\n')}
`;
}

/**
 * One ganesha per storage host, with its config, log and pid file in a folder of kumo's on
 * that host. Files and processes are reached through the host's executor (a lab namespace,
 * or ssh to a real storage node), never assumed to be on this machine.
 */
export class GaneshaServer {
  private readonly daemon: ManagedDaemon;

  constructor(private readonly dir: string, private readonly exec: Executor = local) {
    this.daemon = new ManagedDaemon(exec, {
      what: 'the NFS server', binary: 'ganesha.nfsd', pidFile: this.pidFile, marker: this.config,
      notInstalled: { message: `the NFS server nfs-ganesha is not installed (${exec.description})`, fix: 'apt-get install nfs-ganesha nfs-ganesha-vfs' },
    });
  }

  private get pidFile() { return join(this.dir, 'ganesha.pid'); }
  private get config() { return join(this.dir, 'ganesha.conf'); }

  async pid(): Promise<number | undefined> {
    return this.daemon.pid();
  }

  /** Writes the exports and (re)starts the server; with no exports, stops it and removes its config (no stale export in it). */
  async apply(exports: NfsExport[]): Promise<void> {
    await this.stop();
    if (!exports.length) {
      await this.exec.run('rm', ['-f', '--', this.config]);
      return;
    }
    await this.daemon.installConfig([{ path: this.config, text: buildGaneshaConfig(exports), mode: '644' }]);
    const log = join(this.dir, 'ganesha.log');
    let text = '';
    let seen = false;
    const failed = async () => {
      const alive = (await this.pid()) !== undefined;
      await this.stop();
      const why = text.split('\n').filter((l) => /CRIT|FATAL|MAJ/.test(l)).slice(-2).join(' ').trim();
      // Gone with no refusal in its log: killed or crashed (ganesha logs harmless CRIT lines, dbus and
      // krb5, at every start: those do not tell a refusal).
      if (!alive && !/Cannot bind|Address already in use|FATAL/i.test(text)) return this.died('while starting', why);
      return new KumoError('COMMAND_FAILED', `the NFS server did not start${why ? `: ${why}` : ''}`,
        'is another NFS server using port 2049 on this host? (ss -ltnp | grep 2049)');
    };
    await this.daemon.start({
      clear: [log],
      args: ['-f', this.config, '-L', log, '-p', this.pidFile, '-N', 'NIV_EVENT'],
      timeoutMs: 30_000,
      // ganesha forks into the background; it is up once port 2049 is bound (or it has died).
      ready: {
        what: 'the NFS server starting',
        probe: async () => {
          text = (await readHostFile(this.exec, log)) ?? '';
          const pid = await this.pid();
          if (/NFS STARTUP/.test(text) && pid) return true;
          if (pid) seen = true;
          else if (seen) throw await failed(); // it ran, and is gone
          if (/Cannot bind|Address already in use|FATAL|CRIT :.*(socket|bind)/i.test(text)) throw await failed();
          return undefined;
        },
        timeoutMs: 15_000,
        everyMs: 200,
        timedOut: failed,
      },
    });
  }

  stop(): Promise<void> {
    return this.daemon.stop();
  }

  /** The error for a server that went away under kumo: what died, where, and what brings it back. */
  private died(when: string, alarms: string): KumoError {
    return new KumoError('HOST_UNREACHABLE', `the NFS server (nfs-ganesha on ${this.exec.description === 'local' ? 'this machine' : this.exec.description}) exited ${when} (killed?); its log is ${join(this.dir, 'ganesha.log')}${alarms ? `, its last alarms: ${alarms}` : ''}`,
      'run the share command again: kumo starts the server anew with every share\'s export');
  }

  /** Its folder (config, log), once it is stopped. */
  async removeFiles(): Promise<void> {
    await this.stop();
    await this.exec.run('rm', ['-rf', '--', this.dir]);
  }
}
