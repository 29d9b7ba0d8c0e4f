import { type Executor, local } from '../../../exec/exec.js';
import { readHostFile } from '../../../exec/files.js';
import { signal, sleep } from '../../../exec/process.js';
import { KumoError } from '../../../model/errors.js';
import { checkInt } from '../config-values.js';
import { ManagedDaemon, stagedPath } from '../daemon.js';
import { type WafEvent, parseAuditLog } from './audit-log.js';
import { type WafPaths, type WafSpec, buildModsecConfig, buildNginxConfig, validateWafSpec, wafPaths } from './config.js';
import { PKG_FIX, discoverWafFiles } from './system-files.js';

/**
 * The web application firewall: a private nginx 1.22 with ModSecurity v3 and the OWASP Core
 * Rule Set in front of the load balancer (outside → nginx :80 → HAProxy on loopback →
 * instances). nginx only filters and forwards; balancing and health checks stay in HAProxy,
 * which open-source nginx cannot match (passive checks only).
 */export interface WafOptions {
  /** The workers' user (Debian: www-data); undefined: nginx's default for root, nobody. */
  user?: string;
  binary?: string;
}

/** One private nginx + ModSecurity in a folder of the caller's on the LB node, driven through the executor. */
export class NginxWaf {
  readonly paths: WafPaths;
  private readonly user: string | undefined;
  private readonly daemon: ManagedDaemon;

  constructor(dir: string, private readonly exec: Executor = local, opts: WafOptions = {}) {
    this.paths = wafPaths(dir);
    this.user = 'user' in opts ? opts.user : 'www-data';
    this.daemon = new ManagedDaemon(exec, {
      what: 'the WAF\'s nginx', binary: opts.binary ?? 'nginx', pidFile: this.paths.pidFile, marker: this.paths.config,
      notInstalled: { message: `nginx is not installed on ${exec.description}`, fix: PKG_FIX },
      // Graceful stop: requests in progress finish.
      stopSignal: 'QUIT',
    });
  }

  pid(): Promise<number | undefined> {
    return this.daemon.pid();
  }

  /** Starts with the spec, or reloads the running instance with it. */
  async apply(spec: WafSpec): Promise<'started' | 'reloaded'> {
    validateWafSpec(spec);
    if (await this.pid()) {
      await this.reload(spec);
      return 'reloaded';
    }
    await this.start(spec);
    return 'started';
  }

  async start(spec: WafSpec): Promise<void> {
    validateWafSpec(spec);
    await this.daemon.refuseIfRunning(`the WAF already runs in ${this.paths.dir}`, 'reload it with the new spec, or stop it first');
    await this.endOrphanWorkers();
    await this.install(spec);
    await this.daemon.start({
      args: this.baseArgs(this.paths.config),
      timeoutMs: 60_000,
      refused: (r) => {
        const why = r.stderr.trim().split('\n').slice(-2).join(' ');
        return new KumoError('COMMAND_FAILED', `the WAF's nginx did not start: ${why}`,
          /Address already in use|bind\(\)/.test(why) ? `is something else listening on ${spec.listen.address}:${spec.listen.port}? (ss -ltnp)` : `see ${this.paths.errorLog}`);
      },
      ready: { what: 'the WAF\'s nginx writing its pid file', probe: async () => ((await this.pid()) ? true : undefined), timeoutMs: 15_000, fix: `see ${this.paths.errorLog}` },
    });
  }

  /** New settings without dropping connections: checked with nginx -t, then HUP (old workers finish their requests). */
  async reload(spec: WafSpec): Promise<void> {
    validateWafSpec(spec);
    const master = await this.pid();
    if (!master) throw new KumoError('NOT_FOUND', `the WAF does not run in ${this.paths.dir}`, 'start it first');
    const before = new Set((await this.workers(master)).map((w) => w.pid));
    const files = [this.paths.config, this.paths.modsecConfig].map((path) => ({ path, mode: '644' }));
    await this.daemon.reloadWithRollback(files, () => this.install(spec), () => this.daemon.signalAndWait(master, 'HUP', {
      // nginx starts new workers only once the new config is in force; then the old ones close
      // their listening sockets (and say "shutting down") and finish what they have.
      what: 'the WAF\'s nginx switching to workers with the new config',
      probe: async () => {
        // A master that died under the reload has no new workers to wait for.
        if (!(await this.pid())) throw new KumoError('HOST_UNREACHABLE', `the WAF's nginx exited during its reload in ${this.paths.dir} (killed?)`, 'start it again with the same config');
        const now = await this.workers(master);
        const fresh = now.some((w) => !before.has(w.pid));
        const oldListening = now.some((w) => before.has(w.pid) && !/shutting down/.test(w.title));
        return fresh && !oldListening ? true : undefined;
      },
      timeoutMs: 20_000,
      fix: `see ${this.paths.errorLog}`,
    }));
  }

  /** Graceful stop (QUIT: requests in progress finish), then TERM and KILL if it lingers. */
  stop(graceMs = 5000): Promise<void> {
    return this.daemon.stop(graceMs);
  }

  /**
   * Recent requests ModSecurity blocked (or, in DetectionOnly mode, would have), oldest first:
   * the last `limit` found among the audit log's last `scanLines` transactions.
   */
  async recentEvents(limit = 50, scanLines = 5000): Promise<WafEvent[]> {
    checkInt(limit, 'limit', 1, 10_000);
    checkInt(scanLines, 'lines to scan', 1, 1_000_000);
    const r = await this.exec.run('tail', ['-n', String(scanLines), '--', this.paths.auditLog], { allowFailure: true });
    return r.code === 0 ? parseAuditLog(r.stdout, limit) : [];
  }

  currentConfig(): Promise<string | undefined> {
    return readHostFile(this.exec, this.paths.config);
  }

  currentModsecConfig(): Promise<string | undefined> {
    return readHostFile(this.exec, this.paths.modsecConfig);
  }

  private baseArgs(config: string): string[] {
    return ['-p', `${this.paths.dir}/`, '-c', config, '-e', this.paths.errorLog];
  }

  /**
   * Workers a killed master left behind: nginx's workers outlive their master and keep the public
   * port, so a new master could not bind it. Their titles name no folder: they are known by this
   * instance's error log among their open files. Asked to finish their requests (QUIT), then killed.
   */
  private async endOrphanWorkers(): Promise<void> {
    let orphans = await this.orphanWorkers();
    for (const pid of orphans) await signal(this.exec, pid, 'QUIT');
    for (const until = Date.now() + 5000; orphans.length && Date.now() < until; orphans = await this.orphanWorkers()) await sleep(200);
    for (const pid of orphans) await signal(this.exec, pid, 'KILL');
  }

  /** Worker processes holding this instance's error log (a zombie holds no files: it is gone). */
  private async orphanWorkers(): Promise<number[]> {
    const ps = await this.exec.run('ps', ['-eo', 'pid=,args='], { allowFailure: true });
    const workers = ps.stdout.split('\n').map((l) => /^\s*(\d+)\s+nginx: (worker|cache)/.exec(l)).filter((m) => m !== null).map((m) => Number(m[1]));
    const mine: number[] = [];
    for (const pid of workers) {
      const fds = await this.exec.run('ls', ['-l', `/proc/${pid}/fd`], { allowFailure: true });
      if (fds.stdout.split('\n').some((l) => l.endsWith(` -> ${this.paths.errorLog}`))) mine.push(pid);
    }
    return mine;
  }

  /** The master's children (workers) with their titles, through the executor. */
  private async workers(master: number): Promise<{ pid: number; title: string }[]> {
    const r = await this.exec.run('ps', ['-o', 'pid=,args=', '--ppid', String(master)], { allowFailure: true });
    return r.stdout.split('\n').map((l) => /^\s*(\d+)\s+(.*)$/.exec(l)).filter((m) => m !== null)
      .map((m) => ({ pid: Number(m[1]), title: m[2]! }));
  }

  /**
   * Stages both files, lets nginx check them together, and only then puts them in place; a
   * refused config leaves the running one untouched. The staged nginx.conf names the staged
   * modsecurity.conf; the one that goes live names the live one.
   */
  private async install(spec: WafSpec): Promise<void> {
    const sys = await discoverWafFiles(this.exec);
    const userOpt = this.user === undefined ? {} : { user: this.user };
    const modsec = buildModsecConfig(spec, this.paths, sys);
    const staged = buildNginxConfig(spec, this.paths, { module: sys.module, modsecConfig: stagedPath(this.paths.modsecConfig), ...userOpt });
    const final = buildNginxConfig(spec, this.paths, { module: sys.module, ...userOpt });
    await this.exec.run('mkdir', ['-p', '--', this.paths.dir, this.paths.tempDir, this.paths.modsecDir]);
    if (this.user !== undefined) await this.exec.run('chown', ['--', this.user, this.paths.modsecDir]);
    await this.daemon.installConfig([
      { path: this.paths.modsecConfig, text: modsec, mode: '644' },
      { path: this.paths.config, text: staged, live: final, mode: '644' },
    ], async ([, nginxNext]) => {
      const check = await this.daemon.run(['-t', '-q', ...this.baseArgs(nginxNext!)], { allowFailure: true, timeoutMs: 60_000 });
      if (check.code === 0) return undefined;
      const why = (check.stderr || check.stdout).trim().split('\n').filter((l) => /emerg|error|alert/i.test(l)).slice(-3).join(' ');
      return new KumoError('COMMAND_FAILED', `nginx refused the generated WAF config: ${why || 'see nginx -t'}`,
        `check the ModSecurity/CRS packages on ${this.exec.description} (${PKG_FIX}); if they are fine this is a kumo bug`);
    });
  }
}
