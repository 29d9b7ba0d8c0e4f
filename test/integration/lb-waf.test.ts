import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { local } from '../../src/exec/exec.js';
import { NetnsExecutor } from '../../src/exec/netns.js';
import { KumoError } from '../../src/model/errors.js';
import { Haproxy } from '../../src/drivers/daemons/haproxy/haproxy.js';
import type { HaproxyBackend, HaproxySpec } from '../../src/drivers/daemons/haproxy/config.js';
import type { ServerHealth } from '../../src/drivers/daemons/haproxy/stats.js';
import { NginxWaf } from '../../src/drivers/daemons/nginx-waf/nginx-waf.js';
import type { WafSpec } from '../../src/drivers/daemons/nginx-waf/config.js';
import { makeTestEnv, sleep, waitFor, type TestEnv } from '../helpers/env.js';

/**
 * The course datacenter's front: outside → nginx + ModSecurity (:80) → HAProxy (127.0.0.1:8000)
 * → three busybox web servers, each in its own network namespace. The LB node is a namespace
 * too, driven through a NetnsExecutor as a remote node would be; the client namespace reaches
 * only the LB (the LB does not route), so every request passes the WAF and the balancer.
 */
const TOOLS = ['haproxy', 'nginx', 'busybox', 'curl', 'nsenter', 'ip'];

let env: TestEnv;
let missing = '';
const ns = { out: '', lb: '', b: [] as string[] };
let lbExec: NetnsExecutor;
let outExec: NetnsExecutor;
let lb: Haproxy;
let waf: NginxWaf;
const servers = new Map<string, ChildProcess>();

const LB_FRONT = '10.91.1.1';
const CLIENT = '10.91.1.2';
const backendIp = (i: number) => `10.91.2.${11 + i}`;
const BACKENDS: HaproxyBackend[] = [0, 1, 2].map((i) => ({ name: `b${i + 1}`, address: backendIp(i), port: 8080 }));
const HEALTH = { path: '/index.html', intervalMs: 500, fall: 2, rise: 2 };
const lbSpec = (backends = BACKENDS): HaproxySpec => ({ name: 'web', frontend: { address: '127.0.0.1', port: 8000 }, backends, health: HEALTH });
const wafSpec = (o: Partial<WafSpec> = {}): WafSpec => ({
  name: 'web', listen: { address: '0.0.0.0', port: 80 }, upstream: { address: '127.0.0.1', port: 8000 }, enabled: true, paranoia: 1, ...o,
});

async function ip(...args: string[]) {
  await local.run('ip', args);
}

/** `busybox httpd -f` in backend i's namespace, serving "backend bN". */
async function startBackend(i: number): Promise<void> {
  const name = BACKENDS[i]!.name;
  const child = spawn('nsenter', [`--net=/run/netns/${ns.b[i]}`, '--', 'busybox', 'httpd', '-f', '-p', '8080', '-h', join(env.home, `www-${name}`)], { stdio: 'ignore' });
  servers.set(name, child);
  await waitFor(`${name} serving`, async () => {
    const r = await lbExec.run('curl', ['-s', '--max-time', '2', `http://${backendIp(i)}:8080/`], { allowFailure: true });
    return r.stdout.trim() === `backend ${name}` ? true : undefined;
  }, 15_000);
}

function stopBackend(name: string) {
  servers.get(name)?.kill('SIGKILL');
  servers.delete(name);
}

interface Reply {
  status: number;
  body: string;
  /** HAProxy's X-Kumo-Backend header: the server that answered ('' if absent). */
  backend: string;
}

/** One request from the client namespace to the LB's public address (a new connection each time); `curlArgs` add a method and body. */
async function ask(path: string, host: string, curlArgs: string[] = []): Promise<Reply> {
  const r = await outExec.run('curl', ['-s', '-g', '--max-time', '5', ...curlArgs, '-H', `Host: ${host}`, '-w', '\n%header{x-kumo-backend}\n%{http_code}', `http://${LB_FRONT}${path}`], { allowFailure: true });
  const lines = r.stdout.split('\n');
  const status = Number(lines.pop());
  const backend = lines.pop() ?? '';
  return { status: r.code === 0 ? status : 0, backend, body: lines.join('\n').trim() };
}

const get = (path = '/', host = 'shop.example') => ask(path, host);
/** An order POSTed to the backends' CGI program. */
const post = () => ask('/cgi-bin/order', 'shop.example', ['-d', 'order=1']);

/** Connections HAProxy's frontend has accepted since its worker started (the WAF's, here). */
async function frontendConnections(): Promise<number> {
  const lines = (await lb.runtime('show stat')).split('\n');
  const header = lines[0]!.replace(/^#\s*/, '').split(',');
  const row = lines.map((l) => l.split(',')).find((r) => r[1] === 'FRONTEND');
  return Number(row?.[header.indexOf('conn_tot')]);
}

/** Which backends answered n requests (all must be 200, each naming itself in X-Kumo-Backend). */
async function spread(n: number): Promise<string[]> {
  const seen: string[] = [];
  for (let k = 0; k < n; k++) {
    const r = await get();
    assert.equal(r.status, 200, `request ${k} failed: ${r.status} ${r.body}`);
    const name = r.body.replace(/^backend /, '');
    assert.equal(r.backend, name, 'X-Kumo-Backend names the server that answered');
    seen.push(name);
  }
  return seen;
}

const statusOf = async (name: string): Promise<ServerHealth | undefined> => (await lb.health()).find((s) => s.server === name);

before(async () => {
  missing = (await local.run('sh', ['-c', 'for t; do command -v "$t" >/dev/null || echo "$t"; done', 'sh', ...TOOLS])).stdout.trim();
  if (missing) return;
  env = await makeTestEnv('lbw');
  ns.out = `${env.prefix}-out`;
  ns.lb = `${env.prefix}-lb`;
  ns.b = [1, 2, 3].map((i) => `${env.prefix}-b${i}`);
  for (const n of [ns.out, ns.lb, ...ns.b]) {
    await ip('netns', 'add', n);
    await ip('-n', n, 'link', 'set', 'lo', 'up');
  }
  // Client ↔ LB: one veth made directly inside the namespaces (nothing in the host's).
  await ip('-n', ns.out, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'front0', 'netns', ns.lb);
  await ip('-n', ns.out, 'addr', 'add', `${CLIENT}/24`, 'dev', 'eth0');
  await ip('-n', ns.out, 'link', 'set', 'eth0', 'up');
  await ip('-n', ns.lb, 'addr', 'add', `${LB_FRONT}/24`, 'dev', 'front0');
  await ip('-n', ns.lb, 'link', 'set', 'front0', 'up');
  // LB ↔ backends: a bridge inside the LB namespace.
  await ip('-n', ns.lb, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
  await ip('-n', ns.lb, 'addr', 'add', '10.91.2.1/24', 'dev', 'br0');
  await ip('-n', ns.lb, 'link', 'set', 'br0', 'up');
  for (const [i, n] of ns.b.entries()) {
    await ip('-n', n, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `bk${i + 1}`, 'netns', ns.lb);
    await ip('-n', ns.lb, 'link', 'set', `bk${i + 1}`, 'master', 'br0');
    await ip('-n', ns.lb, 'link', 'set', `bk${i + 1}`, 'up');
    await ip('-n', n, 'addr', 'add', `${backendIp(i)}/24`, 'dev', 'eth0');
    await ip('-n', n, 'link', 'set', 'eth0', 'up');
  }
  lbExec = new NetnsExecutor(ns.lb);
  outExec = new NetnsExecutor(ns.out);
  for (const b of BACKENDS) {
    await mkdir(join(env.home, `www-${b.name}`), { recursive: true });
    await writeFile(join(env.home, `www-${b.name}`, 'index.html'), `backend ${b.name}\n`);
    // A POST target: busybox httpd serves no POST to a file, but runs CGI programs.
    await mkdir(join(env.home, `www-${b.name}`, 'cgi-bin'));
    await writeFile(join(env.home, `www-${b.name}`, 'cgi-bin', 'order'), `#!/bin/sh\ncat >/dev/null\nprintf 'Content-Type: text/plain\\r\\n\\r\\nordered at ${b.name}\\n'\n`, { mode: 0o755 });
  }
  for (const i of [0, 1, 2]) await startBackend(i);
  lb = new Haproxy(join(env.home, 'lb'), lbExec);
  waf = new NginxWaf(join(env.home, 'waf'), lbExec);
});

after(async () => {
  if (!env) return;
  await waf?.stop().catch(() => undefined);
  await lb?.stop().catch(() => undefined);
  for (const name of [...servers.keys()]) stopBackend(name);
  // Anything still running in this run's namespaces was started by this run: end it, or the namespace outlives `ip netns del`.
  for (const n of [ns.out, ns.lb, ...ns.b]) {
    const pids = (await local.run('ip', ['netns', 'pids', n], { allowFailure: true })).stdout.split('\n').map(Number).filter((p) => p > 1);
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone already */ } }
  }
  await env.cleanup();
});

test('requests from outside pass the WAF and HAProxy and reach every backend in turn', { timeout: 120_000 }, async (t) => {
  if (missing) return t.skip(`not installed: ${missing.split('\n').join(', ')}`);
  assert.equal(await lb.apply(lbSpec()), 'started');
  assert.equal(await waf.apply(wafSpec()), 'started');
  await waitFor('every backend UP', async () => ((await lb.health()).filter((s) => s.status === 'UP').length === 3 ? true : undefined), 20_000);
  const seen = await spread(6);
  assert.deepEqual([...new Set(seen)].sort(), ['b1', 'b2', 'b3'], `round robin: ${seen.join(' ')}`);
  // The runtime API is also reachable through the executor (socat), as for a node over ssh.
  if ((await local.run('sh', ['-c', 'command -v socat'], { allowFailure: true })).code === 0) {
    const viaExec = await new Haproxy(join(env.home, 'lb'), lbExec, { socketVia: 'executor' }).health();
    assert.deepEqual(viaExec.map((s) => s.server), ['b1', 'b2', 'b3']);
  }
  // The client cannot bypass the LB: the backends' network is not routed from outside.
  const direct = await outExec.run('curl', ['-s', '--max-time', '2', `http://${backendIp(0)}:8080/`], { allowFailure: true });
  assert.notEqual(direct.code, 0);
});

test('a dead backend is marked DOWN within seconds and gets no traffic; back UP after restart', { timeout: 120_000 }, async (t) => {
  if (missing) return t.skip(`not installed: ${missing.split('\n').join(', ')}`);
  stopBackend('b2');
  const down = await waitFor('b2 DOWN', async () => {
    const s = await statusOf('b2');
    return s?.status === 'DOWN' ? s : undefined;
  }, 15_000);
  assert.match(down.checkInfo, /L4CON|refused|L7/i, down.checkInfo);
  const seen = await spread(9);
  assert.ok(!seen.includes('b2'), `no request lands on b2: ${seen.join(' ')}`);
  assert.deepEqual([...new Set(seen)].sort(), ['b1', 'b3']);

  await startBackend(1);
  await waitFor('b2 UP again', async () => ((await statusOf('b2'))?.status === 'UP' ? true : undefined), 15_000);
  assert.ok((await spread(6)).includes('b2'), 'b2 gets traffic again');
});

test('reloads of HAProxy (a changed backend list) and of the WAF drop no request while clients keep asking', { timeout: 120_000 }, async (t) => {
  if (missing) return t.skip(`not installed: ${missing.split('\n').join(', ')}`);
  const pidBefore = await lb.pid();
  const replies: Reply[] = [];
  let running = true;
  // Two clients at once, so connections are being opened at every moment of the switch; the WAF
  // keeps its connections to HAProxy for GETs, and the reload closes those. A third client POSTs.
  const client = Promise.all([get, get, post].map(async (send) => {
    while (running) replies.push(await send());
  }));
  try {
    await sleep(700);
    assert.equal(await lb.apply(lbSpec([BACKENDS[0]!, BACKENDS[2]!])), 'reloaded');
    assert.deepEqual((await lb.health()).map((s) => s.server), ['b1', 'b3']);
    await sleep(700);
    const during = replies.length;
    await sleep(700);
    assert.ok(!replies.slice(during).some((r) => r.body === 'backend b2'), 'b2 is out after the reload');
    assert.equal(await lb.apply(lbSpec()), 'reloaded');
    await sleep(700);
    // The WAF's own reloads too: nginx's new workers take over while the old ones finish their requests.
    assert.equal(await waf.apply(wafSpec({ paranoia: 2 })), 'reloaded');
    await sleep(700);
    assert.equal(await waf.apply(wafSpec()), 'reloaded');
    await sleep(700);
  } finally {
    running = false;
    await client;
  }
  const failed = replies.filter((r) => r.status !== 200);
  assert.ok(replies.length >= 10, `the client made ${replies.length} requests`);
  assert.deepEqual(failed, [], `${failed.length} of ${replies.length} requests failed during the reloads`);
  assert.ok(replies.some((r) => /^ordered at b\d$/.test(r.body)), 'the POSTs reached a backend');
  t.diagnostic(`${replies.length} requests across four reloads, none failed`);
  assert.equal(await lb.pid(), pidBefore, 'the master stays; only workers are replaced');
  await waitFor('b2 UP after being added back', async () => ((await statusOf('b2'))?.status === 'UP' ? true : undefined), 15_000);
  assert.ok((await spread(6)).includes('b2'));
});

test('the WAF keeps its connections to HAProxy for GETs and opens one per POST (never sent into a connection HAProxy may be closing)', { timeout: 60_000 }, async (t) => {
  if (missing) return t.skip(`not installed: ${missing.split('\n').join(', ')}`);
  const before = await frontendConnections();
  assert.ok(Number.isInteger(before), 'HAProxy counts its frontend connections');
  const seen = await spread(12);
  const afterGets = await frontendConnections();
  // Each curl is a new client connection to nginx; nginx's two workers each keep theirs to HAProxy.
  assert.ok(afterGets - before <= 2, `12 GETs opened ${afterGets - before} connections to HAProxy`);
  assert.deepEqual([...new Set(seen)].sort(), ['b1', 'b2', 'b3'], `HAProxy still balances each request on a kept connection: ${seen.join(' ')}`);
  for (let k = 0; k < 4; k++) {
    const r = await post();
    assert.equal(r.status, 200, `POST ${k}: ${r.status} ${r.body}`);
  }
  assert.equal(await frontendConnections() - afterGets, 4, 'each POST had a connection of its own');
});

const SQLI = "/?id=1'%20OR%20'1'='1";
const XSS = '/?q=%3Cscript%3Ealert(1)%3C/script%3E';

test('a reload HAProxy refuses (a frontend address the node lacks) leaves the old worker serving and its config in place', { timeout: 60_000 }, async (t) => {
  if (missing) { t.skip(`not installed: ${missing}`); return; }
  const before = await lb.currentConfig();
  await assert.rejects(lb.reload({ ...lbSpec(), frontend: { address: '10.91.9.9', port: 8000 } }),
    (e: unknown) => e instanceof KumoError && /reload failed|HAProxy reload/.test(e.message));
  assert.equal(await lb.currentConfig(), before, 'the file still says what runs');
  assert.equal((await get()).status, 200, 'the previous worker still serves');
});

test('WAF on: SQL injection and XSS get 403 and are in the audit log with their rule ids; a normal request gets 200', { timeout: 120_000 }, async (t) => {
  if (missing) return t.skip(`not installed: ${missing.split('\n').join(', ')}`);
  assert.equal((await get('/')).status, 200);
  assert.equal((await get(SQLI)).status, 403);
  assert.equal((await get(XSS)).status, 403);
  // ModSecurity writes the audit record after the answer has gone out: give it a moment.
  const events = await waitFor('both attacks in the audit log', async () => {
    const found = await waf.recentEvents(10);
    return found.some((e) => e.uri.startsWith('/?id=1')) && found.some((e) => e.uri.startsWith('/?q=%3Cscript')) ? found : undefined;
  }, 10_000);
  const sqli = events.find((e) => e.uri.startsWith('/?id=1'));
  const xss = events.find((e) => e.uri.startsWith('/?q=%3Cscript'));
  assert.ok(sqli && xss);
  assert.ok(sqli.ruleIds.includes('942100'), `SQLi rule: ${sqli.ruleIds.join(',')}`);
  assert.ok(xss.ruleIds.includes('941100'), `XSS rule: ${xss.ruleIds.join(',')}`);
  for (const e of [sqli, xss]) {
    assert.equal(e.status, 403);
    assert.equal(e.blocked, true);
    assert.equal(e.client, CLIENT);
    assert.equal(e.method, 'GET');
    assert.ok(Math.abs(Date.parse(e.time) - Date.now()) < 10 * 60_000, `time ${e.time} is now-ish (UTC)`);
    assert.ok(e.messages.some((m) => /Anomaly Score Exceeded/.test(m)), e.messages.join(' | '));
  }
  assert.equal(events.filter((e) => e.uri === '/').length, 0, 'normal requests are not listed as blocks');
});

test('WAF detection-only: the attack passes (200) but is logged; paranoia level changes the config and what is blocked', { timeout: 120_000 }, async (t) => {
  if (missing) return t.skip(`not installed: ${missing.split('\n').join(', ')}`);
  const wafPid = await waf.pid();
  assert.equal(await waf.apply(wafSpec({ enabled: false })), 'reloaded');
  assert.equal(await waf.pid(), wafPid, 'reloaded in place');
  assert.match((await waf.currentModsecConfig()) ?? '', /^SecRuleEngine DetectionOnly$/m);
  const passed = await get(`${SQLI}&detect=1`);
  assert.equal(passed.status, 200);
  assert.match(passed.body, /^backend b\d$/);
  const logged = await waitFor('the attack that passed in the audit log',
    async () => (await waf.recentEvents(5)).find((e) => e.uri.includes('detect=1')), 10_000);
  assert.equal(logged.blocked, false);
  assert.equal(logged.status, 200);
  assert.ok(logged.ruleIds.includes('942100'), logged.ruleIds.join(','));

  // An apostrophe in a name: fine at paranoia 1, blocked at 4 (the strict levels' known false positive).
  const name = "/?name=O'Reilly";
  await waf.apply(wafSpec({ paranoia: 1 }));
  assert.equal((await get(name)).status, 200);
  const pl1 = await waf.currentModsecConfig();
  await waf.apply(wafSpec({ paranoia: 4 }));
  const pl4 = await waf.currentModsecConfig();
  assert.notEqual(pl4, pl1);
  assert.match(pl4 ?? '', /setvar:tx\.paranoia_level=4,/);
  assert.equal((await get(name)).status, 403);
  assert.equal((await get('/')).status, 200, 'a plain request still passes at paranoia 4');
  await waf.apply(wafSpec());
});

test('a WAF reload nginx refuses (a listen address the node lacks) changes nothing: the old workers serve, the files are as they were', { timeout: 90_000 }, async (t) => {
  if (missing) return t.skip(`not installed: ${missing.split('\n').join(', ')}`);
  const before = [await waf.currentConfig(), await waf.currentModsecConfig()];
  await assert.rejects(waf.reload(wafSpec({ listen: { address: '10.91.9.9', port: 80 }, paranoia: 2 })), (e: unknown) => e instanceof KumoError);
  assert.deepEqual([await waf.currentConfig(), await waf.currentModsecConfig()], before, 'the files still say what runs');
  assert.equal((await get('/')).status, 200, 'the old workers still serve');
  assert.equal((await get(SQLI)).status, 403, 'with the old rules');
});

test('invalid specs are refused with INVALID_INPUT and a fix; nothing is written, nothing stops', { timeout: 60_000 }, async (t) => {
  if (missing) return t.skip(`not installed: ${missing.split('\n').join(', ')}`);
  const lbCfg = await lb.currentConfig();
  const wafCfg = await waf.currentConfig();
  const modsec = await waf.currentModsecConfig();
  const isInvalid = (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT' && !!e.fix;
  for (const spec of [
    { ...lbSpec(), frontend: { address: '127.0.0.1', port: 0 } },
    { ...lbSpec(), frontend: { address: '127.0.0.1', port: 70000 } },
    lbSpec([BACKENDS[0]!, { ...BACKENDS[1]!, name: 'b1' }]),
    lbSpec([{ ...BACKENDS[0]!, address: '10.91.2.256' }]),
    lbSpec([{ ...BACKENDS[0]!, name: 'b1\n    server evil 10.91.1.2:80' }]),
  ]) {
    await assert.rejects(lb.apply(spec), isInvalid, JSON.stringify(spec));
  }
  await assert.rejects(waf.apply(wafSpec({ paranoia: 7 })), isInvalid);
  await assert.rejects(waf.apply(wafSpec({ upstream: { address: 'haproxy.local', port: 8000 } })), isInvalid);
  assert.equal(await lb.currentConfig(), lbCfg);
  assert.equal(await waf.currentConfig(), wafCfg);
  assert.equal(await waf.currentModsecConfig(), modsec);
  const fresh = join(env.home, 'never');
  await assert.rejects(new Haproxy(fresh, lbExec).apply({ ...lbSpec(), backends: [{ ...BACKENDS[0]!, port: 0 }] }), isInvalid);
  await assert.rejects(new NginxWaf(fresh, lbExec).apply(wafSpec({ listen: { address: '0.0.0.0', port: 99999 } })), isInvalid);
  assert.equal((await local.run('test', ['-e', fresh], { allowFailure: true })).code, 1, 'nothing was written');
  assert.equal((await get('/')).status, 200, 'the running LB and WAF are untouched');
});

test('without the WAF, HAProxy takes port 80 itself; stop ends both and frees the port', { timeout: 60_000 }, async (t) => {
  if (missing) return t.skip(`not installed: ${missing.split('\n').join(', ')}`);
  await waf.stop();
  assert.equal(await waf.pid(), undefined);
  assert.equal((await get('/')).status, 0, 'nothing listens on :80 now');
  assert.equal(await lb.apply({ ...lbSpec(), frontend: { address: '0.0.0.0', port: 80 } }), 'reloaded');
  await waitFor('every backend UP', async () => ((await lb.health()).filter((s) => s.status === 'UP').length === 3 ? true : undefined), 20_000);
  const seen = await spread(6);
  assert.deepEqual([...new Set(seen)].sort(), ['b1', 'b2', 'b3']);
  assert.equal((await get(SQLI)).status, 200, 'no WAF in the path now');
  await lb.stop();
  assert.equal(await lb.pid(), undefined);
  assert.equal((await get('/')).status, 0);
});
