import { join } from 'node:path';
import { invalid } from '../../../model/errors.js';
import { checkConfigPath, checkDir, checkInt, checkIpv4, checkName, checkPort } from '../config-values.js';
import type { Endpoint } from '../haproxy/config.js';

/** nginx.conf and modsecurity.conf of the WAF from a typed spec, and the files of its folder. */
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

/**
 * How long nginx keeps an idle connection to HAProxy: under HAProxy's own keep-alive timeout (its
 * `timeout http-request`, 10 s), so nginx is the side that closes it.
 */
const UPSTREAM_IDLE_S = 5;

/** Methods nginx may send again after a kept connection failed: only these ride kept connections. */
const KEPT_ALIVE_METHODS = ['GET', 'HEAD', 'OPTIONS'];
const byKeptMethod = (value: string) => `        ${KEPT_ALIVE_METHODS.map((m) => `${m} ${value};`).join(' ')}`;

/** nginx.conf of the private instance: every path it writes is in its own folder. */
export function buildNginxConfig(spec: WafSpec, paths: WafPaths, opts: { module: string; modsecConfig?: string; user?: string }): string {
  validateWafSpec(spec);
  checkConfigPath(opts.module, 'nginx module');
  const user = opts.user === undefined ? undefined : checkName(opts.user, 'nginx worker user');
  const t = paths.tempDir;
  const upstream = `${spec.upstream.address}:${spec.upstream.port}`;
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
    // Idempotent requests reuse kept-alive connections to HAProxy (a new TCP connection per request
    // cost the WAF ~0.2 of its throughput at 64 clients); one that fails on a kept connection, which
    // HAProxy may close during a reload, nginx sends again on a new one. Any other method gets a
    // connection of its own: a POST is never written into a connection HAProxy is closing, and
    // never sent twice.
    '    map $request_method $kumo_upstream {',
    '        default upstream_once;',
    byKeptMethod('upstream_reuse'),
    '    }',
    '    map $request_method $kumo_upstream_connection {',
    '        default close;',
    byKeptMethod('""'),
    '    }',
    `    upstream upstream_reuse { server ${upstream}; keepalive 32; keepalive_timeout ${UPSTREAM_IDLE_S}s; }`,
    `    upstream upstream_once { server ${upstream}; }`,
    '    server {',
    // No reuseport (it spreads a few clients' connections over the workers more evenly, measured
    // in bench/waf-engines.ts): with it, a second root process (HAProxy sets SO_REUSEPORT too)
    // could bind the same port and silently take part of the traffic instead of failing to start.
    `        listen ${spec.listen.address}:${spec.listen.port} default_server;`,
    '        server_name _;',
    '        modsecurity on;',
    `        modsecurity_rules_file ${opts.modsecConfig ?? paths.modsecConfig};`,
    '        location / {',
    // The group named by the method (above): both are HAProxy's frontend.
    '            proxy_pass http://$kumo_upstream;',
    '            proxy_http_version 1.1;',
    '            proxy_set_header Connection $kumo_upstream_connection;',
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
