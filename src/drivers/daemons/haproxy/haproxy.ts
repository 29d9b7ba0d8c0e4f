import { type Executor, local } from '../../../exec/exec.js';
import { readHostFile } from '../../../exec/files.js';
import { KumoError, invalid } from '../../../model/errors.js';
import { checkName } from '../config-values.js';
import { ManagedDaemon } from '../daemon.js';
import { type SocketVia, defaultSocketVia, socketRequest } from '../unix-socket.js';
import { type HaproxyPaths, type HaproxySpec, buildHaproxyConfig, haproxyPaths } from './config.js';
import { type ServerHealth, parseShowStat } from './stats.js';

/**
 * The load balancer: HAProxy 2.6 in master-worker mode, one instance per folder (config, pid
 * file, master and stats sockets). HAProxy rather than nginx because open-source nginx has only
 * passive health checks; HAProxy marks a dead backend down by itself within seconds
 * (HOST-NOTES) and reloads seamlessly: the new worker takes the listening sockets over from the
 * old one (`expose-fd listeners`), which finishes the requests it has.
 */
export interface HaproxyOptions {
  /** Unprivileged user the workers run as (Debian's package makes `haproxy`); undefined: stay root. */
  user?: string;
  /** How the runtime API's unix socket is reached; default by executor (see SocketVia). */
  socketVia?: SocketVia;
  /** The haproxy binary on the node. */
  binary?: string;
}

/**
 * One HAProxy in a folder of the caller's on the LB node. Every command, file and liveness
 * check goes through the executor.
 */
export class Haproxy {
  readonly paths: HaproxyPaths;
  private readonly user: string | undefined;
  private readonly via: SocketVia;
  private readonly binary: string;
  private readonly daemon: ManagedDaemon;

  constructor(dir: string, private readonly exec: Executor = local, opts: HaproxyOptions = {}) {
    this.paths = haproxyPaths(dir);
    this.user = 'user' in opts ? opts.user : 'haproxy';
    this.via = opts.socketVia ?? defaultSocketVia(exec);
    this.binary = opts.binary ?? 'haproxy';
    const p = this.paths;
    this.daemon = new ManagedDaemon(exec, {
      what: 'HAProxy', binary: this.binary, pidFile: p.pidFile, marker: p.config,
      notInstalled: { message: `HAProxy is not installed on ${exec.description}`, fix: 'apt-get install --no-install-recommends haproxy' },
      // Soft stop: the workers finish their requests.
      stopSignal: 'USR1', leftovers: [p.pidFile, p.statsSocket, p.masterSocket],
    });
  }

  /** The master's pid, if it runs with this folder's config. */
  pid(): Promise<number | undefined> {
    return this.daemon.pid();
  }

  /** Starts with the spec, or reloads the running instance with it. */
  async apply(spec: HaproxySpec): Promise<'started' | 'reloaded'> {
    const text = this.configFor(spec);
    if (await this.pid()) {
      await this.reloadWith(text, spec);
      return 'reloaded';
    }
    await this.startWith(text, spec);
    return 'started';
  }

  async start(spec: HaproxySpec): Promise<void> {
    const text = this.configFor(spec);
    await this.daemon.refuseIfRunning(`HAProxy already runs in ${this.paths.dir}`, 'reload it with the new spec, or stop it first');
    await this.startWith(text, spec);
  }

  /** New config without dropping connections: checked first, then USR2 to the master. */
  async reload(spec: HaproxySpec): Promise<void> {
    const text = this.configFor(spec);
    if (!(await this.pid())) throw new KumoError('NOT_FOUND', `HAProxy does not run in ${this.paths.dir}`, 'start it first');
    await this.reloadWith(text, spec);
  }

  /** Soft stop (workers finish their requests), then TERM and KILL if it lingers. */
  stop(graceMs = 5000): Promise<void> {
    return this.daemon.stop(graceMs);
  }

  /** Every server of the backend with its health-check state, from the runtime API. */
  async health(): Promise<ServerHealth[]> {
    return parseShowStat(await socketRequest(this.exec, this.via, this.paths.statsSocket, 'show stat'));
  }

  /**
   * Takes a server out of the rotation ('drain': it finishes what it has, gets nothing new) or
   * puts it back ('ready'); the health checks go on either way. Not written to the config: a
   * reload or restart makes every server ready again.
   */
  async setServerState(backend: string, server: string, state: 'drain' | 'ready'): Promise<void> {
    const answer = await this.runtime(`set server ${checkName(backend, 'backend name')}/${checkName(server, 'server name')} state ${state}`);
    if (answer.trim()) throw new KumoError('COMMAND_FAILED', `HAProxy refused to set ${backend}/${server} to ${state}: ${answer.trim()}`, 'see `kumo lb show` for the backends it has');
  }

  /** A runtime API command on the stats socket (admin level), e.g. "disable server web/a". */
  runtime(command: string): Promise<string> {
    if (/[\n;]/.test(command)) throw invalid('one runtime command at a time', 'send commands one by one');
    return socketRequest(this.exec, this.via, this.paths.statsSocket, command);
  }

  /** The config file as it is on the node. */
  currentConfig(): Promise<string | undefined> {
    return readHostFile(this.exec, this.paths.config);
  }

  /** The config text; the spec (and the user) are validated first. */
  private configFor(spec: HaproxySpec): string {
    return buildHaproxyConfig(spec, this.paths, this.user === undefined ? {} : { user: this.user });
  }

  /** Writes the text as the next config and lets HAProxy check it; only a good one replaces the current. */
  private install(text: string): Promise<void> {
    return this.daemon.installConfig([{ path: this.paths.config, text, mode: '600' }], async ([next]) => {
      const check = await this.daemon.run(['-c', '-q', '-f', next!], { allowFailure: true });
      if (check.code === 0) return undefined;
      const why = (check.stderr || check.stdout).trim().split('\n').filter((l) => /ALERT|error/i.test(l)).slice(-3).join(' ');
      return new KumoError('COMMAND_FAILED', `HAProxy refused the generated config: ${why || 'see haproxy -c'}`, 'this is a kumo bug if the spec passed validation; please report it with the spec');
    });
  }

  private async startWith(text: string, spec: HaproxySpec): Promise<void> {
    await this.install(text);
    const p = this.paths;
    await this.daemon.start({
      clear: [p.pidFile, p.statsSocket, p.masterSocket],
      args: ['-W', '-D', '-p', p.pidFile, '-f', p.config, '-S', `${p.masterSocket},mode,600`],
      timeoutMs: 30_000,
      refused: (r) => {
        const why = r.stderr.trim().split('\n').filter((l) => /ALERT/.test(l)).slice(-2).join(' ') || r.stderr.trim().slice(-300);
        return new KumoError('COMMAND_FAILED', `HAProxy did not start: ${why}`,
          /bind|Address already in use/i.test(why) ? `is something else listening on ${spec.frontend.address}:${spec.frontend.port}? (ss -ltnp)` : undefined);
      },
      ready: {
        what: 'HAProxy answering on its stats socket',
        timeoutMs: 10_000,
        probe: async () => {
          if (!(await this.pid())) throw new KumoError('COMMAND_FAILED', 'HAProxy exited right after starting', `run ${this.binary} -d -f ${p.config} on ${this.exec.description} to see why`);
          return (await this.serverNames().catch(() => undefined));
        },
      },
    });
  }

  private reloadWith(text: string, spec: HaproxySpec): Promise<void> {
    return this.daemon.reloadWithRollback([{ path: this.paths.config, mode: '600' }], () => this.install(text), () => this.signalReload(spec));
  }

  private async signalReload(spec: HaproxySpec): Promise<void> {
    const master = await this.pid();
    if (!master) throw new KumoError('NOT_FOUND', `HAProxy stopped while being reloaded in ${this.paths.dir}`, 'start it again');
    const before = await this.masterReloads();
    // Done when the master counts one more reload and has a current worker with the new server list.
    const want = spec.backends.map((b) => b.name).sort().join(',');
    await this.daemon.signalAndWait(master, 'USR2', {
      what: 'HAProxy reload',
      timeoutMs: 15_000,
      fix: `look at "show proc" on ${this.paths.masterSocket}; the config is ${this.paths.config}`,
      probe: async () => {
        const now = await this.masterReloads().catch(() => undefined);
        // A master that died under the reload answers nothing: say so now, not after the wait.
        if (now === undefined && !(await this.pid())) {
          throw new KumoError('HOST_UNREACHABLE', `HAProxy exited during its reload in ${this.paths.dir} (killed?)`, 'start it again with the same config');
        }
        if (now === undefined) return undefined;
        if (now.failed > before.failed) {
          throw new KumoError('COMMAND_FAILED', `HAProxy's reload failed in ${this.paths.dir}; the previous worker keeps serving`,
            `look at "show proc" on ${this.paths.masterSocket} and run ${this.binary} -c -f ${this.paths.config}`);
        }
        if (now.reloads <= before.reloads) return undefined;
        const names = await this.serverNames().catch(() => undefined);
        return names !== undefined && names.sort().join(',') === want ? true : undefined;
      },
    });
  }

  /** The master's reload counters from the master CLI's `show proc` ("1 [failed: 0]"). */
  private async masterReloads(): Promise<{ reloads: number; failed: number }> {
    const out = await socketRequest(this.exec, this.via, this.paths.masterSocket, 'show proc');
    const m = /^\s*\d+\s+master\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?/m.exec(out);
    if (!m) throw new KumoError('COMMAND_FAILED', `unexpected answer from HAProxy's master CLI: ${out.slice(0, 200)}`);
    return { reloads: Number(m[1]), failed: Number(m[2] ?? 0) };
  }

  private async serverNames(): Promise<string[]> {
    return (await this.health()).map((s) => s.server);
  }
}
