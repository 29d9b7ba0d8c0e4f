import { join } from 'node:path';
import { type Executor, local } from '../../exec/exec.js';
import { readHostFile, writeHostFile } from '../../exec/files.js';
import { KumoError, invalid } from '../../model/errors.js';
import { runTool } from '../host/which.js';
import { checkConfigPath, checkDir, checkInt, checkIpv4, checkName, checkPort } from './daemon-util.js';
import { livePid, signal, stopDaemon, waitUntil } from '../../exec/process.js';
import type { Endpoint } from './haproxy.js';

/**
 * The web application firewall: a private nginx 1.22 with ModSecurity v3 and the OWASP Core
 * Rule Set in front of the load balancer (outside → nginx :80 → HAProxy on loopback →
 * instances). nginx only filters and forwards; balancing and health checks stay in HAProxy,
 * which open-source nginx cannot match (passive checks only).
 */
export interface WafSpec {
  name: string;
  /** Where clients connect (the public address and port). */
  listen: Endpoint;
  /** Where clean requests go (HAProxy's frontend, usually on 127.0.0.1). */
  upstream: Endpoint;
  /** true: SecRuleEngine On, attacks get 403. false: DetectionOnly, attacks pass but are logged. */
  enabled: boolean;
  /** OWASP CRS paranoia level: 1 few false positives … 4 strictest. */
  paranoia: number;
}

export interface WafPaths {
  dir: string;
  config: string;
  modsecConfig: string;
  pidFile: string;
  errorLog: string;
  accessLog: string;
  auditLog: string;
  /** nginx's *_temp_path folders go below this. */
  tempDir: string;
  /** ModSecurity's SecTmpDir/SecDataDir, writable by the workers. */
  modsecDir: string;
}

export function wafPaths(dir: string): WafPaths {
  const d = checkDir(dir, 'WAF folder');
  return {
    dir: d, config: join(d, 'nginx.conf'), modsecConfig: join(d, 'modsecurity.conf'), pidFile: join(d, 'nginx.pid'),
    errorLog: join(d, 'error.log'), accessLog: join(d, 'access.log'), auditLog: join(d, 'modsec-audit.log'),
    tempDir: join(d, 'tmp'), modsecDir: join(d, 'modsec'),
  };
}

/** What the node's packages provide, found through the executor (see discoverWafFiles). */
export interface WafSystemFiles {
  /** Text of Debian's recommended ModSecurity config. */
  recommended: string;
  unicodeMapping: string;
  module: string;
  crsSetup: string;
  crsBefore?: string;
  crsRules: string[];
  crsAfter?: string;
}

export function validateWafSpec(spec: WafSpec): void {
  if (typeof spec !== 'object' || spec === null) throw invalid('the WAF spec is missing');
  checkName(spec.name, 'WAF name');
  checkIpv4(spec.listen?.address, 'WAF listen address', { any: true });
  checkPort(spec.listen?.port, 'WAF listen port');
  checkIpv4(spec.upstream?.address, 'WAF upstream address');
  checkPort(spec.upstream?.port, 'WAF upstream port');
  if (typeof spec.enabled !== 'boolean') throw invalid(`WAF enabled ${JSON.stringify(spec.enabled)} must be true or false`, 'true blocks attacks (403); false only logs them');
  checkInt(spec.paranoia, 'paranoia level', 1, 4);
  if (spec.listen.address === spec.upstream.address && spec.listen.port === spec.upstream.port) {
    throw invalid(`the WAF would forward ${spec.listen.address}:${spec.listen.port} to itself`, 'give HAProxy another port, e.g. 127.0.0.1:8000');
  }
}

/**
 * Directives of the recommended config that kumo sets itself. SecRequestBodyInMemoryLimit goes
 * because ModSecurity v3 rejects it (HOST-NOTES); Include lines because v3 has no
 * IncludeOptional and kumo lists the rule files itself.
 */
const OWNED = /^\s*(SecRuleEngine|SecRequestBodyInMemoryLimit|SecAuditEngine|SecAuditLog\w*|SecUnicodeMapFile|SecTmpDir|SecDataDir|SecStatusEngine|Include\w*)\b/i;

/** The recommended config without the directives kumo owns (with their continuation lines). */
export function stripOwnedDirectives(text: string): string {
  const out: string[] = [];
  let dropping = false;
  for (const line of text.split('\n')) {
    const continues = /\\\s*$/.test(line);
    if (dropping) {
      dropping = continues;
      continue;
    }
    if (OWNED.test(line)) {
      dropping = continues;
      continue;
    }
    out.push(line);
  }
  return out.join('\n');
}

/** modsecurity.conf: Debian's recommended settings, kumo's engine/log settings, the CRS files in order. */
export function buildModsecConfig(spec: WafSpec, paths: WafPaths, sys: WafSystemFiles): string {
  validateWafSpec(spec);
  const files = [sys.unicodeMapping, sys.crsSetup, ...(sys.crsBefore ? [sys.crsBefore] : []), ...sys.crsRules, ...(sys.crsAfter ? [sys.crsAfter] : [])];
  for (const f of files) checkConfigPath(f, 'ModSecurity file');
  return [
    `# Written by kumo for WAF ${spec.name}: changes here are replaced on the next apply.`,
    '# Debian\'s recommended ModSecurity settings, without the directives kumo sets below:',
    stripOwnedDirectives(sys.recommended).trim(),
    '',
    '# kumo',
    `SecRuleEngine ${spec.enabled ? 'On' : 'DetectionOnly'}`,
    // One JSON document per line: what `kumo waf log` reads back (recentWafEvents).
    'SecAuditEngine RelevantOnly',
    'SecAuditLogRelevantStatus "^(?:5|4(?!04))"',
    'SecAuditLogParts ABFHZ',
    'SecAuditLogType Serial',
    'SecAuditLogFormat JSON',
    `SecAuditLog ${paths.auditLog}`,
    `SecTmpDir ${paths.modsecDir}`,
    `SecDataDir ${paths.modsecDir}`,
    // No status reports leave the node.
    'SecStatusEngine Off',
    `SecUnicodeMapFile ${sys.unicodeMapping} 20127`,
    '',
    '# OWASP Core Rule Set',
    `Include ${sys.crsSetup}`,
    // After crs-setup.conf (which may set its own level), before REQUEST-901 (which defaults it to 1).
    `SecAction "id:9601,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level=${spec.paranoia},setvar:tx.executing_paranoia_level=${spec.paranoia}"`,
    ...[...(sys.crsBefore ? [sys.crsBefore] : []), ...sys.crsRules, ...(sys.crsAfter ? [sys.crsAfter] : [])].map((f) => `Include ${f}`),
    '',
  ].join('\n');
}

/** nginx.conf of the private instance: every path it writes is in its own folder. */
export function buildNginxConfig(spec: WafSpec, paths: WafPaths, opts: { module: string; modsecConfig?: string; user?: string }): string {
  validateWafSpec(spec);
  checkConfigPath(opts.module, 'nginx module');
  const user = opts.user === undefined ? undefined : checkName(opts.user, 'nginx worker user');
  const t = paths.tempDir;
  return [
    `# Written by kumo for WAF ${spec.name}: changes here are replaced on the next apply.`,
    `load_module ${opts.module};`,
    `pid ${paths.pidFile};`,
    `error_log ${paths.errorLog} notice;`,
    ...(user ? [`user ${user};`] : []),
    'worker_processes auto;',
    // Audit log timestamps carry no zone: make them UTC so readers can place them.
    'env TZ=UTC;',
    'events { worker_connections 1024; }',
    'http {',
    `    access_log ${paths.accessLog};`,
    `    client_body_temp_path ${t}/body;`,
    `    proxy_temp_path ${t}/proxy;`,
    `    fastcgi_temp_path ${t}/fastcgi;`,
    `    uwsgi_temp_path ${t}/uwsgi;`,
    `    scgi_temp_path ${t}/scgi;`,
    '    server_tokens off;',
    '    server {',
    `        listen ${spec.listen.address}:${spec.listen.port} default_server;`,
    '        server_name _;',
    '        modsecurity on;',
    `        modsecurity_rules_file ${opts.modsecConfig ?? paths.modsecConfig};`,
    '        location / {',
    // A new connection per request (HTTP/1.0 upstream): nothing idle to lose when HAProxy reloads.
    `            proxy_pass http://${spec.upstream.address}:${spec.upstream.port};`,
    '            proxy_set_header Host $host;',
    '            proxy_set_header X-Real-IP $remote_addr;',
    '            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '            proxy_set_header X-Forwarded-Proto $scheme;',
    '            proxy_connect_timeout 5s;',
    // HAProxy's answer headers (X-Kumo-Backend, the instance that served it) reach the client as they are: nothing is hidden here.
    '        }',
    '    }',
    '}',
    '',
  ].join('\n');
}

/** One request ModSecurity blocked, or would have blocked in DetectionOnly mode. */
export interface WafEvent {
  /** ISO 8601, UTC. */
  time: string;
  client: string;
  method: string;
  uri: string;
  /** What the client got: 403 when blocked; the backend's answer in DetectionOnly mode. */
  status: number;
  blocked: boolean;
  /** Every rule that matched, e.g. ['942100', '949110']. */
  ruleIds: string[];
  messages: string[];
  /** ModSecurity's transaction id (also in nginx's error log). */
  id: string;
}

interface AuditTransaction {
  transaction?: {
    client_ip?: string; time_stamp?: string; unique_id?: string;
    request?: { method?: string; uri?: string };
    response?: { http_code?: number };
    producer?: { secrules_engine?: string };
    messages?: { message?: string; details?: { ruleId?: string } }[];
  };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** "Sat Nov 28 03:23:14 2026" (UTC, see `env TZ=UTC`) → ISO 8601; unknown shapes are kept. */
function auditTime(text: string): string {
  const m = /^\w{3} (\w{3}) +(\d{1,2}) (\d\d):(\d\d):(\d\d) (\d{4})$/.exec(text.trim());
  const month = m ? MONTHS.indexOf(m[1]!) : -1;
  if (!m || month < 0) return text;
  return new Date(Date.UTC(Number(m[6]), month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]))).toISOString();
}

/**
 * The anomaly-score verdicts (949xxx inbound, 959xxx outbound) and the recommended config's own
 * deny rules (2000xx) mean "blocked, or would have been"; other matches alone are notes (e.g.
 * 920350, a numeric Host header) that the audit log also keeps.
 */
const VERDICT = /^(?:9[45]9\d{3}|2000\d\d)$/;

/** Parses ModSecurity's JSON audit log (one transaction per line) into blocks, oldest first. */
export function parseAuditLog(text: string, limit = 100): WafEvent[] {
  const events: WafEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let doc: AuditTransaction;
    try {
      doc = JSON.parse(line) as AuditTransaction;
    } catch {
      continue; // a line being written right now, or cut by rotation
    }
    const t = doc.transaction;
    if (!t) continue;
    const messages = t.messages ?? [];
    const ruleIds = messages.map((m) => m.details?.ruleId ?? '').filter(Boolean);
    if (!ruleIds.some((id) => VERDICT.test(id))) continue;
    const status = Number(t.response?.http_code ?? 0);
    events.push({
      time: auditTime(t.time_stamp ?? ''),
      client: t.client_ip ?? '',
      method: t.request?.method ?? '',
      uri: t.request?.uri ?? '',
      status,
      blocked: t.producer?.secrules_engine === 'Enabled' && status === 403,
      ruleIds,
      messages: messages.map((m) => m.message ?? '').filter(Boolean),
      id: t.unique_id ?? '',
    });
  }
  return events.slice(-limit);
}

const PKG_FIX = 'apt-get install --no-install-recommends nginx-light libnginx-mod-http-modsecurity modsecurity-crs';

/** Where Debian's packages put the pieces (bookworm; the first found wins). */
const CANDIDATES = {
  recommended: ['/etc/modsecurity/modsecurity.conf-recommended', '/usr/share/nginx/docs/modsecurity/modsecurity.conf', '/etc/nginx/modsecurity.conf'],
  unicodeMapping: ['/etc/modsecurity/unicode.mapping', '/usr/share/nginx/docs/modsecurity/unicode.mapping', '/etc/nginx/unicode.mapping'],
  module: ['/usr/lib/nginx/modules/ngx_http_modsecurity_module.so'],
  crsSetup: ['/etc/modsecurity/crs/crs-setup.conf'],
  crsBefore: ['/etc/modsecurity/crs/REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf'],
  crsAfter: ['/etc/modsecurity/crs/RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf'],
  crsRules: '/usr/share/modsecurity-crs/rules',
};

async function firstReadable(exec: Executor, paths: string[]): Promise<string | undefined> {
  for (const p of paths) {
    if ((await exec.run('test', ['-r', p], { allowFailure: true })).code === 0) return p;
  }
  return undefined;
}

/** Finds Debian's ModSecurity and CRS files on the node. */
export async function discoverWafFiles(exec: Executor): Promise<WafSystemFiles> {
  const need = async (what: string, paths: string[]) => {
    const p = await firstReadable(exec, paths);
    if (!p) throw new KumoError('MISSING_DEPENDENCY', `${what} is missing on ${exec.description} (looked for ${paths.join(', ')})`, PKG_FIX);
    return p;
  };
  const recommendedPath = await need('ModSecurity\'s recommended config', CANDIDATES.recommended);
  const recommended = (await readHostFile(exec, recommendedPath)) ?? '';
  const unicodeMapping = await need('ModSecurity\'s unicode.mapping', CANDIDATES.unicodeMapping);
  const module = await need('the nginx ModSecurity module', CANDIDATES.module);
  const crsSetup = await need('the OWASP CRS setup (crs-setup.conf)', CANDIDATES.crsSetup);
  const crsBefore = await firstReadable(exec, CANDIDATES.crsBefore);
  const crsAfter = await firstReadable(exec, CANDIDATES.crsAfter);
  const found = await exec.run('find', [CANDIDATES.crsRules, '-maxdepth', '1', '-type', 'f', '-name', '*.conf'], { allowFailure: true });
  // REQUEST-9xx before RESPONSE-9xx: the rule files' names are their order.
  const crsRules = found.stdout.split('\n').filter(Boolean).sort();
  if (found.code !== 0 || !crsRules.length) throw new KumoError('MISSING_DEPENDENCY', `the OWASP CRS rules are missing in ${CANDIDATES.crsRules} on ${exec.description}`, PKG_FIX);
  return { recommended, unicodeMapping, module, crsSetup, crsRules, ...(crsBefore ? { crsBefore } : {}), ...(crsAfter ? { crsAfter } : {}) };
}

export interface WafOptions {
  /** The workers' user (Debian: www-data); undefined: nginx's default for root, nobody. */
  user?: string;
  binary?: string;
}

/** One private nginx + ModSecurity in a folder of the caller's on the LB node, driven through the executor. */
export class NginxWaf {
  readonly paths: WafPaths;
  private readonly user: string | undefined;
  private readonly binary: string;

  constructor(dir: string, private readonly exec: Executor = local, opts: WafOptions = {}) {
    this.paths = wafPaths(dir);
    this.user = 'user' in opts ? opts.user : 'www-data';
    this.binary = opts.binary ?? 'nginx';
  }

  pid(): Promise<number | undefined> {
    return livePid(this.exec, this.paths.pidFile, this.paths.config);
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
    if (await this.pid()) throw new KumoError('IN_USE', `the WAF already runs in ${this.paths.dir}`, 'reload it with the new spec, or stop it first');
    await this.install(spec);
    const r = await this.nginx([...this.baseArgs(this.paths.config)], { allowFailure: true, timeoutMs: 60_000 });
    if (r.code !== 0) {
      const why = r.stderr.trim().split('\n').slice(-2).join(' ');
      throw new KumoError('COMMAND_FAILED', `the WAF's nginx did not start: ${why}`,
        /Address already in use|bind\(\)/.test(why) ? `is something else listening on ${spec.listen.address}:${spec.listen.port}? (ss -ltnp)` : `see ${this.paths.errorLog}`);
    }
    await waitUntil('the WAF\'s nginx writing its pid file', async () => ((await this.pid()) ? true : undefined), 15_000, `see ${this.paths.errorLog}`);
  }

  /** New settings without dropping connections: checked with nginx -t, then HUP (old workers finish their requests). */
  async reload(spec: WafSpec): Promise<void> {
    validateWafSpec(spec);
    const master = await this.pid();
    if (!master) throw new KumoError('NOT_FOUND', `the WAF does not run in ${this.paths.dir}`, 'start it first');
    const before = new Set((await this.workers(master)).map((w) => w.pid));
    const serving = await Promise.all([this.paths.config, this.paths.modsecConfig].map(async (f) => [f, await readHostFile(this.exec, f)] as const));
    await this.install(spec);
    try {
      await signal(this.exec, master, 'HUP');
      // nginx starts new workers only once the new config is in force; then the old ones close
      // their listening sockets (and say "shutting down") and finish what they have.
      await waitUntil('the WAF\'s nginx switching to workers with the new config', async () => {
        const now = await this.workers(master);
        const fresh = now.some((w) => !before.has(w.pid));
        const oldListening = now.some((w) => before.has(w.pid) && !/shutting down/.test(w.title));
        return fresh && !oldListening ? true : undefined;
      }, 20_000, `see ${this.paths.errorLog}`);
    } catch (e) {
      // The old workers keep serving the old config: the files go back to saying what runs.
      for (const [file, text] of serving) if (text !== undefined) await writeHostFile(this.exec, file, text, '644').catch(() => undefined);
      throw e;
    }
  }

  /** Graceful stop (QUIT: requests in progress finish), then TERM and KILL if it lingers. */
  async stop(graceMs = 5000): Promise<void> {
    const pid = await this.pid();
    if (pid === undefined) return;
    await stopDaemon(this.exec, pid, async () => (await this.pid()) !== undefined, 'the WAF\'s nginx', { first: 'QUIT', graceMs });
    await this.exec.run('rm', ['-f', '--', this.paths.pidFile]);
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

  /** The master's children (workers) with their titles, through the executor. */
  private async workers(master: number): Promise<{ pid: number; title: string }[]> {
    const r = await this.exec.run('ps', ['-o', 'pid=,args=', '--ppid', String(master)], { allowFailure: true });
    return r.stdout.split('\n').map((l) => /^\s*(\d+)\s+(.*)$/.exec(l)).filter((m) => m !== null)
      .map((m) => ({ pid: Number(m[1]), title: m[2]! }));
  }

  /**
   * Writes both files as ".next", lets nginx check them together, and only then puts them in
   * place; a refused config leaves the running one untouched.
   */
  private async install(spec: WafSpec): Promise<void> {
    const sys = await discoverWafFiles(this.exec);
    const userOpt = this.user === undefined ? {} : { user: this.user };
    const modsecNext = `${this.paths.modsecConfig}.next`;
    const nginxNext = `${this.paths.config}.next`;
    const modsec = buildModsecConfig(spec, this.paths, sys);
    const staged = buildNginxConfig(spec, this.paths, { module: sys.module, modsecConfig: modsecNext, ...userOpt });
    const final = buildNginxConfig(spec, this.paths, { module: sys.module, ...userOpt });
    await this.exec.run('mkdir', ['-p', '--', this.paths.dir, this.paths.tempDir, this.paths.modsecDir]);
    if (this.user !== undefined) await this.exec.run('chown', ['--', this.user, this.paths.modsecDir]);
    await writeHostFile(this.exec, modsecNext, modsec, '644');
    await writeHostFile(this.exec, nginxNext, staged, '644');
    const check = await this.nginx(['-t', '-q', ...this.baseArgs(nginxNext)], { allowFailure: true, timeoutMs: 60_000 });
    if (check.code !== 0) {
      await this.exec.run('rm', ['-f', '--', modsecNext, nginxNext]);
      const why = (check.stderr || check.stdout).trim().split('\n').filter((l) => /emerg|error|alert/i.test(l)).slice(-3).join(' ');
      throw new KumoError('COMMAND_FAILED', `nginx refused the generated WAF config: ${why || 'see nginx -t'}`,
        `check the ModSecurity/CRS packages on ${this.exec.description} (${PKG_FIX}); if they are fine this is a kumo bug`);
    }
    await this.exec.run('mv', ['-f', '--', modsecNext, this.paths.modsecConfig]);
    await writeHostFile(this.exec, this.paths.config, final, '644');
    await this.exec.run('rm', ['-f', '--', nginxNext]);
  }

  private async nginx(args: string[], options: { allowFailure?: boolean; timeoutMs?: number }) {
    return runTool(this.exec, this.binary, args, options, { says: `nginx is not installed on ${this.exec.description}`, fix: PKG_FIX });
  }
}
