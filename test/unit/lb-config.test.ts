import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { local } from '../../src/exec/exec.js';
import { KumoError } from '../../src/model/errors.js';
import { Haproxy } from '../../src/drivers/daemons/haproxy/haproxy.js';
import { type HaproxySpec, buildHaproxyConfig, haproxyPaths, validateHaproxySpec } from '../../src/drivers/daemons/haproxy/config.js';
import { parseShowStat } from '../../src/drivers/daemons/haproxy/stats.js';
import {
  type WafSpec, type WafSystemFiles, buildModsecConfig, buildNginxConfig, stripOwnedDirectives, validateWafSpec, wafPaths,
} from '../../src/drivers/daemons/nginx-waf/config.js';
import { parseAuditLog } from '../../src/drivers/daemons/nginx-waf/audit-log.js';
import { discoverWafFiles } from '../../src/drivers/daemons/nginx-waf/system-files.js';

const spec: HaproxySpec = {
  name: 'web',
  frontend: { address: '0.0.0.0', port: 80 },
  backends: [{ name: 'web1', address: '192.168.122.11', port: 8080 }, { name: 'web2', address: '192.168.122.12', port: 8080 }],
  health: { path: '/healthz?full=1', intervalMs: 1000, fall: 2, rise: 3 },
};
const hpaths = haproxyPaths('/var/lib/kumo/lb/web');

const installed = async (tool: string) => (await local.run('sh', ['-c', 'command -v "$1"', 'sh', tool], { allowFailure: true })).code === 0;

/** Runs `check(file)` on the text written to a temporary file. */
async function withFile<T>(name: string, text: string, check: (file: string, dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-lbcfg-'));
  try {
    await writeFile(join(dir, name), text);
    return await check(join(dir, name), dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('haproxy.cfg: frontend, round robin, active HTTP checks with the spec\'s timing, runtime API socket', () => {
  const cfg = buildHaproxyConfig(spec, hpaths, { user: 'haproxy' });
  assert.match(cfg, /^frontend web\n {4}bind 0\.0\.0\.0:80\n {4}default_backend web$/m);
  assert.match(cfg, /^backend web\n {4}balance roundrobin\n {4}option httpchk GET \/healthz\?full=1\n {4}default-server check inter 1000ms fall 2 rise 3 on-marked-down shutdown-sessions$/m);
  assert.match(cfg, /^ {4}server web1 192\.168\.122\.11:8080$/m);
  assert.match(cfg, /^ {4}server web2 192\.168\.122\.12:8080$/m);
  assert.match(cfg, /stats socket \/var\/lib\/kumo\/lb\/web\/stats\.sock mode 600 level admin expose-fd listeners/);
  assert.match(cfg, /^ {4}user haproxy$/m);
  assert.match(cfg, /option redispatch/);
  // A dead backend costs no request: short connect, idempotent requests retried elsewhere, POSTs never replayed.
  assert.match(cfg, /^ {4}timeout connect 1s$/m);
  assert.match(cfg, /^ {4}retry-on conn-failure empty-response response-timeout$/m);
  assert.match(cfg, /^ {4}http-request disable-l7-retry unless METH_GET \|\| METH_OPTIONS$/m);
  // Without a path: TCP checks only; without a user: no privilege drop line.
  const tcp = buildHaproxyConfig({ ...spec, health: { intervalMs: 500, fall: 1, rise: 1 } }, hpaths);
  assert.doesNotMatch(tcp, /httpchk|^ {4}user /m);
  assert.match(tcp, /default-server check inter 500ms fall 1 rise 1/);
});

test('haproxy.cfg is accepted by haproxy -c (with checks, TCP checks, no backends)', async (t) => {
  if (!(await installed('haproxy'))) return t.skip('not installed: haproxy (apt-get install --no-install-recommends haproxy)');
  for (const s of [spec, { ...spec, health: { intervalMs: 200, fall: 3, rise: 1 } }, { ...spec, backends: [] }]) {
    await withFile('haproxy.cfg', '', async (_file, dir) => {
      const cfg = buildHaproxyConfig(s, haproxyPaths(dir), { user: 'haproxy' });
      const file = join(dir, 'haproxy.cfg');
      await writeFile(file, cfg);
      const r = await local.run('haproxy', ['-c', '-f', file], { allowFailure: true });
      assert.equal(r.code, 0, `haproxy -c refused:\n${r.stderr}\n${cfg}`);
    });
  }
});

test('bad load balancer specs are refused with INVALID_INPUT and a fix, before anything is written', async () => {
  const b = spec.backends[0]!;
  const bad: [string, HaproxySpec][] = [
    ['port 0', { ...spec, frontend: { address: '0.0.0.0', port: 0 } }],
    ['port 70000', { ...spec, frontend: { address: '0.0.0.0', port: 70000 } }],
    ['fractional port', { ...spec, backends: [{ ...b, port: 80.5 }] }],
    ['bad address', { ...spec, backends: [{ ...b, address: '10.0.0.300' }] }],
    ['leading zero (octal to inet_aton)', { ...spec, backends: [{ ...b, address: '10.0.0.010' }] }],
    ['host name', { ...spec, backends: [{ ...b, address: 'web1.example' }] }],
    ['0.0.0.0 backend', { ...spec, backends: [{ ...b, address: '0.0.0.0' }] }],
    ['address with an option', { ...spec, backends: [{ ...b, address: '10.0.0.1 backup' }] }],
    ['duplicate names', { ...spec, backends: [b, { ...b, address: '10.0.0.9' }] }],
    ['duplicate endpoints', { ...spec, backends: [b, { ...b, name: 'web9' }] }],
    ['name with a newline', { ...spec, backends: [{ ...b, name: 'x\n    server evil 6.6.6.6:80' }] }],
    ['name with a space', { ...spec, name: 'web 1' }],
    ['path with a space', { ...spec, health: { ...spec.health, path: '/ok HTTP/1.1\\r\\nHost: x' } }],
    ['path with a comment', { ...spec, health: { ...spec.health, path: '/#x' } }],
    ['path with a quote', { ...spec, health: { ...spec.health, path: "/a'b" } }],
    ['relative path', { ...spec, health: { ...spec.health, path: 'healthz' } }],
    ['interval too short', { ...spec, health: { ...spec.health, intervalMs: 10 } }],
    ['fall 0', { ...spec, health: { ...spec.health, fall: 0 } }],
  ];
  for (const [what, s] of bad) {
    assert.throws(() => validateHaproxySpec(s), (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT' && !!e.fix, what);
  }
  // No backends is allowed: the frontend answers 503 until a reload adds some.
  validateHaproxySpec({ ...spec, backends: [] });
  // The driver validates before it runs a single command: a folder that does not exist stays absent.
  const dir = join(tmpdir(), `kumo-lbcfg-never-${process.pid}`);
  const lb = new Haproxy(dir, local);
  await assert.rejects(lb.apply(bad[0]![1]), (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT');
  assert.equal((await local.run('test', ['-e', dir], { allowFailure: true })).code, 1);
  assert.throws(() => haproxyPaths('relative/dir'), (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT');
  assert.throws(() => haproxyPaths('/tmp/a b'), (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT');
});

test('show stat CSV reads back as servers with status and the last check', () => {
  const csv = [
    '# pxname,svname,qcur,scur,status,check_status,check_code,last_chk,addr',
    'web,FRONTEND,,3,OPEN,,,,',
    'web,web1,0,2,UP,L7OK,200,HTTP status check returned code <200>,192.168.122.11:8080',
    'web,web2,0,0,DOWN,L4CON,,Connection refused,192.168.122.12:8080',
    'web,web3,0,1,UP 1/2,* L4CON,,Connection refused,192.168.122.13:8080',
    'web,web4,0,,no check,,,,192.168.122.14:8080',
    'web,web5,0,0,DRAIN,L7OK,200,HTTP status check returned code <200>,192.168.122.15:8080',
    'web,BACKEND,0,3,UP,,,,',
    '',
  ].join('\n');
  assert.deepEqual(parseShowStat(csv), [
    { backend: 'web', server: 'web1', address: '192.168.122.11:8080', status: 'UP', checkInfo: 'L7OK 200 HTTP status check returned code <200>', sessions: 2 },
    { backend: 'web', server: 'web2', address: '192.168.122.12:8080', status: 'DOWN', checkInfo: 'L4CON Connection refused', sessions: 0 },
    { backend: 'web', server: 'web3', address: '192.168.122.13:8080', status: 'UP', transition: '1/2', checkInfo: 'L4CON Connection refused', sessions: 1 },
    { backend: 'web', server: 'web4', address: '192.168.122.14:8080', status: 'NO_CHECK', checkInfo: '', sessions: 0 },
    { backend: 'web', server: 'web5', address: '192.168.122.15:8080', status: 'DRAIN', checkInfo: 'L7OK 200 HTTP status check returned code <200>', sessions: 0 },
  ]);
  assert.throws(() => parseShowStat('Unknown command\n'), (e: unknown) => e instanceof KumoError);
});

const waf: WafSpec = { name: 'web', listen: { address: '0.0.0.0', port: 80 }, upstream: { address: '127.0.0.1', port: 8000 }, enabled: true, paranoia: 1 };
const wpaths = wafPaths('/var/lib/kumo/waf/web');
const sys: WafSystemFiles = {
  recommended: [
    'SecRuleEngine DetectionOnly',
    'SecRequestBodyAccess On',
    'SecRequestBodyInMemoryLimit 131072',
    'SecRule REQUEST_HEADERS:Content-Type "^application/json" \\',
    '     "id:\'200001\',phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"',
    'SecAuditLog /var/log/apache2/modsec_audit.log',
    'SecAuditLogStorageDir /opt/modsecurity/var/audit/',
    'SecUnicodeMapFile unicode.mapping 20127',
    'IncludeOptional /etc/modsecurity/*.conf',
    'SecDataDir /tmp/',
  ].join('\n'),
  unicodeMapping: '/etc/nginx/unicode.mapping',
  module: '/usr/lib/nginx/modules/ngx_http_modsecurity_module.so',
  crsSetup: '/etc/modsecurity/crs/crs-setup.conf',
  crsBefore: '/etc/modsecurity/crs/REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf',
  crsRules: ['/usr/share/modsecurity-crs/rules/REQUEST-901-INITIALIZATION.conf', '/usr/share/modsecurity-crs/rules/REQUEST-942-APPLICATION-ATTACK-SQLI.conf'],
  crsAfter: '/etc/modsecurity/crs/RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf',
};

test('modsecurity.conf: HOST-NOTES fixes, engine mode, JSON audit log, paranoia level, CRS files listed in order', () => {
  const on = buildModsecConfig(waf, wpaths, sys);
  assert.doesNotMatch(on, /SecRequestBodyInMemoryLimit|IncludeOptional|SecRuleEngine DetectionOnly|\/var\/log\/apache2|unicode\.mapping 20127\n.*unicode\.mapping 20127/s);
  assert.match(on, /^SecRuleEngine On$/m);
  assert.match(on, /^SecRequestBodyAccess On$/m, 'the rest of the recommended settings stay');
  assert.match(on, /"id:'200001',phase:1/, 'multi-line rules stay whole');
  assert.match(on, /^SecAuditLogFormat JSON$/m);
  assert.match(on, /^SecAuditLog \/var\/lib\/kumo\/waf\/web\/modsec-audit\.log$/m);
  assert.match(on, /^SecUnicodeMapFile \/etc\/nginx\/unicode\.mapping 20127$/m);
  assert.match(on, /setvar:tx\.paranoia_level=1,setvar:tx\.executing_paranoia_level=1/);
  const order = ['crs-setup.conf', 'id:9601', 'REQUEST-900', 'REQUEST-901', 'REQUEST-942', 'RESPONSE-999'].map((s) => on.indexOf(s));
  assert.deepEqual([...order].sort((a, b) => a - b), order, `CRS order: ${order.join(',')}`);
  assert.ok(order.every((i) => i > 0));

  const detect = buildModsecConfig({ ...waf, enabled: false, paranoia: 3 }, wpaths, sys);
  assert.match(detect, /^SecRuleEngine DetectionOnly$/m);
  assert.match(detect, /setvar:tx\.paranoia_level=3,/);
  assert.notEqual(buildModsecConfig({ ...waf, paranoia: 2 }, wpaths, sys), on, 'the paranoia level changes the config');
  assert.equal(stripOwnedDirectives('SecAuditLog x \\\n  continued\nkeep'), 'keep');
});

test('nginx.conf: private pid, logs and temp paths in the instance folder; module loaded; proxies to the upstream, kept alive for idempotent methods only', () => {
  const cfg = buildNginxConfig(waf, wpaths, { module: sys.module, user: 'www-data' });
  assert.match(cfg, /^load_module \/usr\/lib\/nginx\/modules\/ngx_http_modsecurity_module\.so;$/m);
  assert.match(cfg, /^pid \/var\/lib\/kumo\/waf\/web\/nginx\.pid;$/m);
  assert.match(cfg, /^error_log \/var\/lib\/kumo\/waf\/web\/error\.log notice;$/m);
  for (const t of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) {
    assert.match(cfg, new RegExp(`${t}_temp_path /var/lib/kumo/waf/web/tmp/`), t);
  }
  assert.match(cfg, /listen 0\.0\.0\.0:80 default_server;/);
  // Both upstream groups are HAProxy's frontend; the method picks the group.
  assert.match(cfg, /upstream upstream_reuse \{ server 127\.0\.0\.1:8000; keepalive 32; keepalive_timeout 5s; \}/);
  assert.match(cfg, /upstream upstream_once \{ server 127\.0\.0\.1:8000; \}/);
  assert.match(cfg, /proxy_pass http:\/\/\$kumo_upstream;/);
  const map = (name: string) => cfg.slice(cfg.indexOf(`map $request_method $${name} {`)).split('}')[0]!;
  assert.match(map('kumo_upstream'), /default upstream_once;\s+GET upstream_reuse; HEAD upstream_reuse; OPTIONS upstream_reuse;/);
  assert.match(map('kumo_upstream_connection'), /default close;\s+GET ""; HEAD ""; OPTIONS "";/);
  assert.match(cfg, /modsecurity_rules_file \/var\/lib\/kumo\/waf\/web\/modsecurity\.conf;/);
});

test('bad WAF specs are refused with INVALID_INPUT and a fix', () => {
  const bad: [string, WafSpec][] = [
    ['paranoia 0', { ...waf, paranoia: 0 }],
    ['paranoia 5', { ...waf, paranoia: 5 }],
    ['port 70000', { ...waf, listen: { address: '0.0.0.0', port: 70000 } }],
    ['upstream 0.0.0.0', { ...waf, upstream: { address: '0.0.0.0', port: 8000 } }],
    ['upstream with injection', { ...waf, upstream: { address: '127.0.0.1;}', port: 8000 } }],
    ['forwards to itself', { ...waf, listen: { address: '127.0.0.1', port: 8000 } }],
    // @ts-expect-error enabled must be a boolean: a string would silently mean "on"
    ['enabled as text', { ...waf, enabled: 'off' }],
    ['name with a brace', { ...waf, name: 'x}' }],
  ];
  for (const [what, s] of bad) {
    assert.throws(() => validateWafSpec(s), (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT' && !!e.fix, what);
  }
});

test('the generated WAF config passes nginx -t with Debian\'s ModSecurity and CRS files', async (t) => {
  if (!(await installed('nginx'))) return t.skip('not installed: nginx (apt-get install --no-install-recommends nginx-light libnginx-mod-http-modsecurity modsecurity-crs)');
  const found = await discoverWafFiles(local).catch((e: unknown) => e);
  if (found instanceof KumoError) return t.skip(`not installed: ${found.message}`);
  const files = found as WafSystemFiles;
  for (const paranoia of [1, 4]) {
    await withFile('x', '', async (_f, dir) => {
      const p = wafPaths(dir);
      await local.run('mkdir', ['-p', p.tempDir, p.modsecDir]);
      await writeFile(p.modsecConfig, buildModsecConfig({ ...waf, paranoia }, p, files));
      await writeFile(p.config, buildNginxConfig(waf, p, { module: files.module }));
      const r = await local.run('nginx', ['-t', '-p', `${dir}/`, '-c', p.config, '-e', p.errorLog], { allowFailure: true, timeoutMs: 60_000 });
      assert.equal(r.code, 0, `nginx -t refused (paranoia ${paranoia}):\n${r.stderr}`);
      const log = (await local.run('cat', [p.errorLog])).stdout;
      assert.match(log, /rules loaded inline\/local\/remote: 0\/\d{3,}\/0/, `the CRS rules are loaded:\n${log}`);
    });
  }
});

test('the JSON audit log reads back as blocks with rule ids; notes alone and torn lines are left out', () => {
  const tx = (o: { uri: string; code: number; engine: string; rules: [string, string][] }) => JSON.stringify({
    transaction: {
      client_ip: '10.1.2.3', time_stamp: 'Sat Nov 28 03:23:14 2026', unique_id: '1795.1',
      request: { method: 'GET', http_version: 1.1, uri: o.uri }, response: { http_code: o.code },
      producer: { secrules_engine: o.engine },
      messages: o.rules.map(([ruleId, message]) => ({ message, details: { ruleId } })),
    },
  });
  const log = [
    tx({ uri: '/', code: 200, engine: 'Enabled', rules: [['920350', 'Host header is a numeric IP address']] }),
    tx({ uri: "/?id=1'", code: 403, engine: 'Enabled', rules: [['942100', 'SQL Injection Attack Detected via libinjection'], ['949110', 'Inbound Anomaly Score Exceeded (Total Score: 5)']] }),
    tx({ uri: '/?q=<script>', code: 200, engine: 'DetectionOnly', rules: [['941100', 'XSS Attack Detected via libinjection'], ['949110', 'Inbound Anomaly Score Exceeded']] }),
    '{"transaction":{"client_ip":"10.1',
  ].join('\n');
  const events = parseAuditLog(log);
  assert.equal(events.length, 2);
  assert.deepEqual(events[0], {
    time: '2026-11-28T03:23:14.000Z', client: '10.1.2.3', method: 'GET', uri: "/?id=1'", status: 403, blocked: true,
    ruleIds: ['942100', '949110'], messages: ['SQL Injection Attack Detected via libinjection', 'Inbound Anomaly Score Exceeded (Total Score: 5)'], id: '1795.1',
  });
  assert.equal(events[1]!.blocked, false);
  assert.equal(events[1]!.status, 200);
  assert.deepEqual(parseAuditLog(log, 1).map((e) => e.uri), ['/?q=<script>']);
});
