import { join } from 'node:path';
import { invalid } from '../../../model/errors.js';
import { checkDir, checkInt, checkIpv4, checkName, checkPort } from '../config-values.js';

/** haproxy.cfg from a typed spec, and the files of one HAProxy's folder. */
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
    // Instances sit on the LB's own network: a connect that takes over 1 s goes to a dead or
    // drowning server, and is retried on another one well within a client's patience.
    '    timeout connect 1s',
    '    timeout client 60s',
    // A slow but alive server keeps its minute; a dead one is found by the checks instead (below).
    '    timeout server 60s',
    '    timeout http-request 10s',
    '    timeout queue 10s',
    `    timeout check ${checkTimeout}ms`,
    // A backend that died between two checks: retry the request on another server instead of
    // failing it. Beyond a failed connect (always safe) also a server that closed or timed out
    // without an answer; that is only for idempotent methods (disable-l7-retry in the backend).
    '    retries 3',
    '    option redispatch 1',
    '    retry-on conn-failure empty-response response-timeout',
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
    // A vanished server (no RST) leaves its requests hanging until the server timeout: once the
    // checks mark it down, its connections are closed, so those requests are retried elsewhere.
    `    default-server check inter ${h.intervalMs}ms fall ${h.fall} rise ${h.rise} on-marked-down shutdown-sessions`,
    // A request that may have reached a server is sent again only if repeating it is harmless.
    '    http-request disable-l7-retry unless METH_GET || METH_OPTIONS',
    // Names the server (kumo: the instance) that answered, so clients and tests can see the spread.
    '    http-response set-header X-Kumo-Backend %[srv_name]',
    ...spec.backends.map((b) => `    server ${b.name} ${b.address}:${b.port}`),
    '',
  ];
  return lines.join('\n');
}
