import { join } from 'node:path';
import { type Executor, local } from '../../exec/exec.js';
import { readHostFile, writeHostFile } from '../../exec/files.js';
import { KumoError, invalid } from '../../model/errors.js';
import { runTool } from '../host/which.js';
import { type SocketVia, checkDir, checkInt, checkIpv4, checkName, checkPort, defaultSocketVia, socketRequest } from './daemon-util.js';
import { livePid, signal, stopDaemon, waitUntil } from '../../exec/process.js';

/**
 * The load balancer: HAProxy 2.6 in master-worker mode, one instance per folder (config, pid
 * file, master and stats sockets). HAProxy rather than nginx because open-source nginx has only
 * passive health checks; HAProxy marks a dead backend down by itself within seconds
 * (HOST-NOTES) and reloads seamlessly: the new worker takes the listening sockets over from the
 * old one (`expose-fd listeners`), which finishes the requests it has.
 */
export interface Endpoint {
  address: string;
  port: number;
}

export interface HaproxyBackend extends Endpoint {
  /** The server's name, also sent back to clients in every answer it gives as X-Kumo-Backend. */
  name: string;
}

export interface HaproxyHealth {
  /** HTTP check of this path (2xx/3xx is healthy); without it, a TCP connect check. */
  path?: string;
  intervalMs: number;
  /** Failed checks in a row before a server is taken out. */
  fall: number;
  /** Passed checks in a row before it is put back. */
  rise: number;
}

export interface HaproxySpec {
  name: string;
  frontend: Endpoint;
  /** May be empty: the frontend then answers 503 until backends are added by a reload. */
  backends: HaproxyBackend[];
  health: HaproxyHealth;
}

export interface HaproxyPaths {
  dir: string;
  config: string;
  pidFile: string;
  statsSocket: string;
  masterSocket: string;
}

export function haproxyPaths(dir: string): HaproxyPaths {
  const d = checkDir(dir, 'HAProxy folder');
  return { dir: d, config: join(d, 'haproxy.cfg'), pidFile: join(d, 'haproxy.pid'), statsSocket: join(d, 'stats.sock'), masterSocket: join(d, 'master.sock') };
}

/** Characters of an HTTP path that mean nothing to HAProxy's config tokenizer (no quotes, '#', '$', '\\', spaces). */
const CHECK_PATH = /^\/[A-Za-z0-9._~!&()*+,;=:@%/?-]*$/;

/** Checks every value of a spec; the first problem is thrown as INVALID_INPUT with a fix. */
export function validateHaproxySpec(spec: HaproxySpec): void {
  if (typeof spec !== 'object' || spec === null) throw invalid('the load balancer spec is missing');
  checkName(spec.name, 'load balancer name');
  checkIpv4(spec.frontend?.address, 'frontend address', { any: true });
  checkPort(spec.frontend?.port, 'frontend port');
  if (!Array.isArray(spec.backends)) throw invalid('backends must be a list', 'give [] for a load balancer with no backends yet');
  const names = new Set<string>();
  const endpoints = new Set<string>();
  for (const b of spec.backends) {
    checkName(b?.name, 'backend name');
    checkIpv4(b.address, `address of backend ${b.name}`);
    checkPort(b.port, `port of backend ${b.name}`);
    if (names.has(b.name)) throw invalid(`backend name ${b.name} is used twice`, 'give every backend its own name');
    const ep = `${b.address}:${b.port}`;
    if (endpoints.has(ep)) throw invalid(`backend ${b.name} repeats ${ep}`, 'list every address:port once');
    names.add(b.name);
    endpoints.add(ep);
  }
  const h = spec.health;
  if (typeof h !== 'object' || h === null) throw invalid('health check settings are missing', 'give { intervalMs, fall, rise } and optionally path');
  checkInt(h.intervalMs, 'health check interval', 100, 3_600_000, ' milliseconds');
  checkInt(h.fall, 'health check fall count', 1, 100);
  checkInt(h.rise, 'health check rise count', 1, 100);
  if (h.path !== undefined && (typeof h.path !== 'string' || h.path.length > 1024 || !CHECK_PATH.test(h.path))) {
    throw invalid(`health check path ${JSON.stringify(h.path)} is not a plain URL path`,
      'start it with "/" and use only URL characters without quotes, "#", "$", "\\" or spaces (percent-encode others)');
  }
}

/**
 * haproxy.cfg from a typed spec. Every value is validated first and only validated words reach
 * the text, so no input can add a directive or a section.
 */
export function buildHaproxyConfig(spec: HaproxySpec, paths: HaproxyPaths, opts: { user?: string } = {}): string {
  validateHaproxySpec(spec);
  const user = opts.user === undefined ? undefined : checkName(opts.user, 'HAProxy user');
  const h = spec.health;
  const checkTimeout = Math.min(h.intervalMs, 5000);
  const lines = [
    `# Written by kumo for load balancer ${spec.name}: changes here are replaced on the next apply.`,
    'global',
    `    stats socket ${paths.statsSocket} mode 600 level admin expose-fd listeners`,
    '    stats timeout 30s',
    ...(user ? [`    user ${user}`, `    group ${user}`] : []),
    '    maxconn 4096',
    // Old workers still busy with a slow client after a reload are ended eventually.
    '    hard-stop-after 30s',
    '',
    'defaults',
    '    mode http',
    '    timeout connect 5s',
    '    timeout client 60s',
    '    timeout server 60s',
    '    timeout http-request 10s',
    '    timeout queue 10s',
    `    timeout check ${checkTimeout}ms`,
    // A backend that died between two checks refuses the connection: try another one instead of failing the request.
    '    retries 3',
    '    option redispatch 1',
    // Behind the WAF on loopback, nginx's X-Forwarded-For already names the client.
    '    option forwardfor except 127.0.0.0/8',
    '',
    `frontend ${spec.name}`,
    `    bind ${spec.frontend.address}:${spec.frontend.port}`,
    `    default_backend ${spec.name}`,
    '',
    `backend ${spec.name}`,
    '    balance roundrobin',
    ...(h.path !== undefined ? [`    option httpchk GET ${h.path}`] : []),
    `    default-server check inter ${h.intervalMs}ms fall ${h.fall} rise ${h.rise}`,
    // Names the server (kumo: the instance) that answered, so clients and tests can see the spread.
    '    http-response set-header X-Kumo-Backend %[srv_name]',
    ...spec.backends.map((b) => `    server ${b.name} ${b.address}:${b.port}`),
    '',
  ];
  return lines.join('\n');
}

export type ServerStatus = 'UP' | 'DOWN' | 'MAINT' | 'DRAIN' | 'NOLB' | 'NO_CHECK' | 'UNKNOWN';

export interface ServerHealth {
  backend: string;
  server: string;
  /** address:port the server is reached at. */
  address: string;
  status: ServerStatus;
  /** "1/2" while a server is changing state (e.g. UP but 1 of 2 failed checks seen). */
  transition?: string;
  /** The last check: result code and HAProxy's description, e.g. "L4CON Connection refused". */
  checkInfo: string;
}

/** Parses `show stat` CSV into the servers of each backend (FRONTEND/BACKEND rows left out). */
export function parseShowStat(csv: string): ServerHealth[] {
  const lines = csv.split('\n').filter((l) => l.trim());
  const header = lines[0]?.replace(/^#\s*/, '').split(',');
  if (!header?.includes('pxname')) throw new KumoError('COMMAND_FAILED', `HAProxy's stats socket answered something else than show stat: ${csv.slice(0, 200)}`);
  const col = (row: string[], name: string) => row[header.indexOf(name)] ?? '';
  return lines.slice(1).map((l) => l.split(',')).filter((r) => !['FRONTEND', 'BACKEND'].includes(col(r, 'svname'))).map((r) => {
    const [word = '', transition] = col(r, 'status').split(' ');
    const known: Record<string, ServerStatus> = { UP: 'UP', DOWN: 'DOWN', MAINT: 'MAINT', DRAIN: 'DRAIN', NOLB: 'NOLB', no: 'NO_CHECK' };
    const desc = col(r, 'last_chk');
    const code = col(r, 'check_code');
    return {
      backend: col(r, 'pxname'),
      server: col(r, 'svname'),
      address: col(r, 'addr'),
      status: known[word] ?? 'UNKNOWN',
      ...(transition && /^\d+\/\d+$/.test(transition) ? { transition } : {}),
      checkInfo: [col(r, 'check_status').replace(/^\* /, ''), code, desc].filter(Boolean).join(' '),
    };
  });
}

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

  constructor(dir: string, private readonly exec: Executor = local, opts: HaproxyOptions = {}) {
    this.paths = haproxyPaths(dir);
    this.user = 'user' in opts ? opts.user : 'haproxy';
    this.via = opts.socketVia ?? defaultSocketVia(exec);
    this.binary = opts.binary ?? 'haproxy';
  }

  /** The master's pid, if it runs with this folder's config. */
  pid(): Promise<number | undefined> {
    return livePid(this.exec, this.paths.pidFile, this.paths.config);
  }

  /** Starts with the spec, or reloads the running instance with it. */
  async apply(spec: HaproxySpec): Promise<'started' | 'reloaded'> {
    const text = buildHaproxyConfig(spec, this.paths, this.userOpt());
    if (await this.pid()) {
      await this.reloadWith(text, spec);
      return 'reloaded';
    }
    await this.startWith(text, spec);
    return 'started';
  }

  async start(spec: HaproxySpec): Promise<void> {
    const text = buildHaproxyConfig(spec, this.paths, this.userOpt());
    if (await this.pid()) throw new KumoError('IN_USE', `HAProxy already runs in ${this.paths.dir}`, 'reload it with the new spec, or stop it first');
    await this.startWith(text, spec);
  }

  /** New config without dropping connections: checked first, then USR2 to the master. */
  async reload(spec: HaproxySpec): Promise<void> {
    const text = buildHaproxyConfig(spec, this.paths, this.userOpt());
    if (!(await this.pid())) throw new KumoError('NOT_FOUND', `HAProxy does not run in ${this.paths.dir}`, 'start it first');
    await this.reloadWith(text, spec);
  }

  /** Soft stop (workers finish their requests), then TERM and KILL if it lingers. */
  async stop(graceMs = 5000): Promise<void> {
    const pid = await this.pid();
    if (pid === undefined) return;
    await stopDaemon(this.exec, pid, async () => (await this.pid()) !== undefined, 'HAProxy', { first: 'USR1', graceMs });
    await this.exec.run('rm', ['-f', '--', this.paths.pidFile, this.paths.statsSocket, this.paths.masterSocket]);
  }

  /** Every server of the backend with its health-check state, from the runtime API. */
  async health(): Promise<ServerHealth[]> {
    return parseShowStat(await socketRequest(this.exec, this.via, this.paths.statsSocket, 'show stat'));
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

  private userOpt() {
    return this.user === undefined ? {} : { user: this.user };
  }

  /** Writes the text as the next config and lets HAProxy check it; only a good one replaces the current. */
  private async install(text: string): Promise<void> {
    const next = `${this.paths.config}.next`;
    await writeHostFile(this.exec, next, text, '600');
    const check = await this.haproxy(['-c', '-q', '-f', next], { allowFailure: true });
    if (check.code !== 0) {
      await this.exec.run('rm', ['-f', '--', next]);
      const why = (check.stderr || check.stdout).trim().split('\n').filter((l) => /ALERT|error/i.test(l)).slice(-3).join(' ');
      throw new KumoError('COMMAND_FAILED', `HAProxy refused the generated config: ${why || 'see haproxy -c'}`, 'this is a kumo bug if the spec passed validation; please report it with the spec');
    }
    await this.exec.run('mv', ['-f', '--', next, this.paths.config]);
  }

  private async startWith(text: string, spec: HaproxySpec): Promise<void> {
    await this.install(text);
    await this.exec.run('rm', ['-f', '--', this.paths.pidFile, this.paths.statsSocket, this.paths.masterSocket]);
    const r = await this.haproxy(['-W', '-D', '-p', this.paths.pidFile, '-f', this.paths.config, '-S', `${this.paths.masterSocket},mode,600`],
      { allowFailure: true, timeoutMs: 30_000 });
    if (r.code !== 0) {
      const why = r.stderr.trim().split('\n').filter((l) => /ALERT/.test(l)).slice(-2).join(' ') || r.stderr.trim().slice(-300);
      throw new KumoError('COMMAND_FAILED', `HAProxy did not start: ${why}`,
        /bind|Address already in use/i.test(why) ? `is something else listening on ${spec.frontend.address}:${spec.frontend.port}? (ss -ltnp)` : undefined);
    }
    await waitUntil('HAProxy answering on its stats socket', async () => {
      if (!(await this.pid())) throw new KumoError('COMMAND_FAILED', 'HAProxy exited right after starting', `run ${this.binary} -d -f ${this.paths.config} on ${this.exec.description} to see why`);
      return (await this.serverNames().catch(() => undefined));
    }, 10_000);
  }

  private async reloadWith(text: string, spec: HaproxySpec): Promise<void> {
    const serving = await this.currentConfig();
    await this.install(text);
    try {
      await this.signalReload(spec);
    } catch (e) {
      // The previous worker keeps serving the previous config: the file goes back to saying
      // what runs, so that a restart does not bring up the config HAProxy just refused.
      if (serving !== undefined) await writeHostFile(this.exec, this.paths.config, serving, '600').catch(() => undefined);
      throw e;
    }
  }

  private async signalReload(spec: HaproxySpec): Promise<void> {
    const master = await this.pid();
    if (!master) throw new KumoError('NOT_FOUND', `HAProxy stopped while being reloaded in ${this.paths.dir}`, 'start it again');
    const before = await this.masterReloads();
    await signal(this.exec, master, 'USR2');
    // Done when the master counts one more reload and has a current worker with the new server list.
    const want = spec.backends.map((b) => b.name).sort().join(',');
    await waitUntil('HAProxy reload', async () => {
      const now = await this.masterReloads().catch(() => undefined);
      if (now === undefined) return undefined;
      if (now.failed > before.failed) {
        throw new KumoError('COMMAND_FAILED', `HAProxy's reload failed in ${this.paths.dir}; the previous worker keeps serving`,
          `look at "show proc" on ${this.paths.masterSocket} and run ${this.binary} -c -f ${this.paths.config}`);
      }
      if (now.reloads <= before.reloads) return undefined;
      const names = await this.serverNames().catch(() => undefined);
      return names !== undefined && names.sort().join(',') === want ? true : undefined;
    }, 15_000, `look at "show proc" on ${this.paths.masterSocket}; the config is ${this.paths.config}`);
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

  private async haproxy(args: string[], options: { allowFailure?: boolean; timeoutMs?: number }) {
    return runTool(this.exec, this.binary, args, options,
      { says: `HAProxy is not installed on ${this.exec.description}`, fix: 'apt-get install --no-install-recommends haproxy' });
  }
}
