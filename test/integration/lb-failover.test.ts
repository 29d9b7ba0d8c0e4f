import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { local } from '../../src/exec/exec.js';
import { NetnsExecutor } from '../../src/exec/netns.js';
import { Haproxy } from '../../src/drivers/daemons/haproxy/haproxy.js';
import type { HaproxyBackend } from '../../src/drivers/daemons/haproxy/config.js';
import { LB_HEALTH, LoadBalancerService } from '../../src/service/loadbalancers.js';
import { ProjectService } from '../../src/service/projects.js';
import { makeTestEnv, sleep, waitFor, type TestEnv } from '../helpers/env.js';

/**
 * A backend dies while clients keep asking: HAProxy with the config and health checks
 * LoadBalancerService.sync gives it, in a namespace of the test's own, three Node backends in
 * their own namespaces (one veth each), and a client in the LB's namespace sending a steady
 * stream of keep-alive GETs with a 5 s timeout and no retry of its own. One backend is then
 * taken away either silently (its link goes down: packets vanish without an RST, as when
 * `virsh destroy` removes a guest's tap) or loudly (its process is SIGKILLed: RST). No GET may
 * fail; a POST that may have reached a backend is never sent a second time.
 */
const TOOLS = ['haproxy', 'ip', 'curl'];

let env: TestEnv;
let missing = '';
const ns = { lb: '', b: [] as string[] };
let lb: Haproxy;
const servers = new Map<string, Backend>();

const backendIp = (i: number) => `10.93.${i + 1}.2`;
const BACKENDS: HaproxyBackend[] = [0, 1, 2].map((i) => ({ name: `b${i + 1}`, address: backendIp(i), port: 8080 }));
const FRONT = { address: '127.0.0.1', port: 8000 };

/**
 * A keep-alive backend: GET answers "backend NAME" after 50 ms (so that requests are always in
 * flight on every backend), POST prints "POST" on stdout at once (the test's count of what it
 * received) and answers after 3 s. argv: port, name.
 */
const BACKEND_JS = `
const http = require('node:http');
const name = process.argv[2];
http.createServer((req, res) => {
  const slow = req.method === 'POST' ? 3000 : 50;
  if (req.method === 'POST') process.stdout.write('POST\\n');
  req.resume();
  req.on('end', () => setTimeout(() => { res.setHeader('Content-Type', 'text/plain'); res.end('backend ' + name + '\\n'); }, slow));
}).listen(Number(process.argv[1]), '0.0.0.0', () => process.stdout.write('READY\\n'));
`;

/**
 * The client: WORKERS loops of keep-alive GETs, each with a 5 s timeout and no retry; a line of
 * JSON counts every 200 ms; ends with a last line when its stdin closes. argv: url, workers.
 */
const CLIENT_JS = `
const http = require('node:http');
const [url, workers] = [process.argv[1], Number(process.argv[2])];
const agent = new http.Agent({ keepAlive: true, maxSockets: workers });
const c = { ok: 0, failed: 0, by: {}, failures: [] };
let running = true;
const once = () => new Promise((resolve) => {
  const req = http.get(url, { agent, timeout: 5000 }, (res) => {
    let body = '';
    res.on('data', (d) => { body += d; });
    res.on('end', () => {
      const b = res.headers['x-kumo-backend'] || '?';
      if (res.statusCode === 200) { c.ok++; c.by[b] = (c.by[b] || 0) + 1; }
      else { c.failed++; c.failures.push(res.statusCode + ' from ' + b + ': ' + body.slice(0, 80)); }
      resolve();
    });
    res.on('error', (e) => { c.failed++; c.failures.push('reading: ' + e.message); resolve(); });
  });
  req.on('timeout', () => req.destroy(new Error('client timeout (5 s)')));
  req.on('error', (e) => { c.failed++; c.failures.push(e.message); resolve(); });
});
const loop = async () => { while (running) await once(); };
const report = setInterval(() => process.stdout.write(JSON.stringify(c) + '\\n'), 200);
const all = Promise.all(Array.from({ length: workers }, loop));
process.stdin.resume();
process.stdin.on('end', async () => { running = false; await all; clearInterval(report); process.stdout.write(JSON.stringify({ ...c, done: true }) + '\\n'); process.exit(0); });
`;

interface Counts { ok: number; failed: number; by: Record<string, number>; failures: string[]; done?: boolean }

interface Backend { child: ChildProcess; posts: number }

async function ip(...args: string[]) {
  await local.run('ip', args);
}

/** A Node program in a namespace; its stdout lines go to onLine. */
function inNamespace(netns: string, script: string, args: string[], onLine: (line: string) => void): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', script, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  createInterface({ input: child.stdout! }).on('line', onLine);
  return child;
}

async function startBackend(i: number): Promise<void> {
  const name = BACKENDS[i]!.name;
  let ready = false;
  const b: Backend = { posts: 0, child: inNamespace(ns.b[i]!, BACKEND_JS, ['8080', name], (line) => {
    if (line === 'READY') ready = true;
    if (line === 'POST') b.posts++;
  }) };
  servers.set(name, b);
  await waitFor(`${name} listening`, async () => (ready ? true : undefined), 15_000);
}

const statusOf = async (name: string) => (await lb.health()).find((s) => s.server === name)?.status;

async function allUp(): Promise<void> {
  await waitFor('every backend UP', async () => ((await lb.health()).every((s) => s.status === 'UP') ? true : undefined), 30_000);
}

/** The client, running until stop() is called; latest() is its last count. */
function startClient(workers: number) {
  let last: Counts = { ok: 0, failed: 0, by: {}, failures: [] };
  let finished: (c: Counts) => void;
  const done = new Promise<Counts>((r) => { finished = r; });
  const child = inNamespace(ns.lb, CLIENT_JS, [`http://${FRONT.address}:${FRONT.port}/`, String(workers)], (line) => {
    last = JSON.parse(line) as Counts;
    if (last.done) finished(last);
  });
  return {
    latest: () => last,
    async stop(): Promise<Counts> {
      child.stdin!.end();
      return done;
    },
  };
}

before(async () => {
  missing = (await local.run('sh', ['-c', 'for t; do command -v "$t" >/dev/null || echo "$t"; done', 'sh', ...TOOLS])).stdout.trim();
  if (missing) return;
  env = await makeTestEnv('lbf');
  ns.lb = `${env.prefix}-lb`;
  ns.b = [1, 2, 3].map((i) => `${env.prefix}-b${i}`);
  for (const n of [ns.lb, ...ns.b]) {
    await ip('netns', 'add', n);
    await ip('-n', n, 'link', 'set', 'lo', 'up');
  }
  // One veth per backend, made inside the namespaces (nothing in the host's): a link of its own to take down.
  for (const [i, n] of ns.b.entries()) {
    await ip('-n', n, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `bk${i + 1}`, 'netns', ns.lb);
    await ip('-n', ns.lb, 'addr', 'add', `10.93.${i + 1}.1/24`, 'dev', `bk${i + 1}`);
    await ip('-n', ns.lb, 'link', 'set', `bk${i + 1}`, 'up');
    await ip('-n', n, 'addr', 'add', `${backendIp(i)}/24`, 'dev', 'eth0');
    await ip('-n', n, 'link', 'set', 'eth0', 'up');
  }
  for (const i of [0, 1, 2]) await startBackend(i);
  // Where LoadBalancerService keeps load balancer "web" (KUMO_HOME/lb/web/haproxy), so its drain reaches it too.
  lb = new Haproxy(join(env.home, 'lb', 'web', 'haproxy'), new NetnsExecutor(ns.lb));
  // As LoadBalancerService.sync applies it: kumo's generated config and its health-check settings.
  await lb.apply({ name: 'web', frontend: FRONT, backends: BACKENDS, health: LB_HEALTH });
});

after(async () => {
  if (!env) return;
  await lb?.stop().catch(() => undefined);
  for (const b of servers.values()) b.child.kill('SIGKILL');
  // Anything still running in this run's namespaces was started by this run: end it, or the namespace outlives `ip netns del`.
  for (const n of [ns.lb, ...ns.b]) {
    const pids = (await local.run('ip', ['netns', 'pids', n], { allowFailure: true })).stdout.split('\n').map(Number).filter((p) => p > 1);
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone already */ } }
  }
  await env.cleanup();
});

/**
 * Kills backend `victim` under a steady stream of GETs and returns the client's counts. It waits
 * (never asserting on time) until HAProxy has marked the victim DOWN, every request that was in
 * flight at the kill has ended one way or the other (the client's 5 s timeout has passed), and
 * the others have served a few hundred more.
 */
async function killUnderLoad(victim: number, kill: () => Promise<void>): Promise<Counts> {
  const name = BACKENDS[victim]!.name;
  await allUp();
  const client = startClient(6);
  try {
    await waitFor('every backend serving the client', async () => (BACKENDS.every((b) => (client.latest().by[b.name] ?? 0) >= 20) ? true : undefined), 60_000);
    await kill();
    const killedAt = Date.now();
    await waitFor(`${name} DOWN`, async () => ((await statusOf(name)) === 'DOWN' ? true : undefined), 30_000);
    const atDown = client.latest().ok;
    await sleep(Math.max(0, killedAt + 6_000 - Date.now()));
    await waitFor('more answers after the kill', async () => (client.latest().ok >= atDown + 200 ? true : undefined), 60_000);
  } catch (e) {
    await client.stop();
    throw e;
  }
  return client.stop();
}

test('a backend that vanishes silently (link down, no RST) under load: not one GET fails', { timeout: 120_000 }, async (t) => {
  if (missing) return t.skip(`not installed: ${missing.split('\n').join(', ')}`);
  // Back for the next test, pass or fail.
  t.after(() => ip('-n', ns.b[1]!, 'link', 'set', 'eth0', 'up'));
  const c = await killUnderLoad(1, () => ip('-n', ns.b[1]!, 'link', 'set', 'eth0', 'down'));
  assert.deepEqual(c.failures.slice(0, 5), [], `${c.failed} of ${c.ok + c.failed} GETs failed`);
  assert.equal(c.failed, 0);
  assert.ok((c.by.b1 ?? 0) > 0 && (c.by.b3 ?? 0) > 0, `the others served: ${JSON.stringify(c.by)}`);
});

test('a backend process killed (RST) under load: not one GET fails', { timeout: 120_000 }, async (t) => {
  if (missing) return t.skip(`not installed: ${missing.split('\n').join(', ')}`);
  t.after(() => startBackend(2));
  const c = await killUnderLoad(2, async () => { servers.get('b3')!.child.kill('SIGKILL'); });
  assert.deepEqual(c.failures.slice(0, 5), [], `${c.failed} of ${c.ok + c.failed} GETs failed`);
  assert.equal(c.failed, 0);
});

test('a POST that reached a backend which then dies is not replayed on another one', { timeout: 120_000 }, async (t) => {
  if (missing) return t.skip(`not installed: ${missing.split('\n').join(', ')}`);
  await allUp();
  for (const b of servers.values()) b.posts = 0;
  const lbExec = new NetnsExecutor(ns.lb);
  const posted = lbExec.run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '20', '-X', 'POST', '-d', 'order=1',
    `http://${FRONT.address}:${FRONT.port}/orders`], { allowFailure: true });
  // The backend has the POST (it answers only after 3 s) and dies now: HAProxy sees the connection closed without an answer.
  const [name, got] = await waitFor('the POST at a backend', async () => [...servers.entries()].find(([, b]) => b.posts > 0), 15_000);
  const i = BACKENDS.findIndex((b) => b.name === name);
  t.after(() => startBackend(i));
  got.child.kill('SIGKILL');
  const r = await posted;
  const seen = [...servers.values()].reduce((n, b) => n + b.posts, 0);
  assert.equal(seen, 1, `the POST reached backends ${seen} times`);
  assert.notEqual(r.stdout, '200', 'the client is told the POST failed, not answered by a second backend');
});

test('a drained backend finishes what it has and gets nothing new, even paused for 4 s (a migration\'s switch-over); ready puts it back', { timeout: 120_000 }, async (t) => {
  if (missing) return t.skip(`not installed: ${missing.split('\n').join(', ')}`);
  await allUp();
  const client = startClient(6);
  const child = servers.get('b1')!.child;
  t.after(() => { child.kill('SIGCONT'); return lb.setServerState('web', 'b1', 'ready').catch(() => undefined); });
  try {
    await waitFor('every backend serving the client', async () => (BACKENDS.every((b) => (client.latest().by[b.name] ?? 0) >= 20) ? true : undefined), 60_000);
    await lb.setServerState('web', 'b1', 'drain');
    await waitFor('b1 idle', async () => ((await lb.health()).find((s) => s.server === 'b1')?.sessions === 0 ? true : undefined), 10_000);
    assert.equal(await statusOf('b1'), 'DRAIN');
    // The client reports every 200 ms, and a busy machine delays it more: b1's last answers, sent before it went idle,
    // may be in a later report. 60 answers later they are counted.
    const okAtIdle = client.latest().ok;
    await waitFor('the client past b1\'s last answers', async () => (client.latest().ok >= okAtIdle + 60 ? true : undefined), 30_000);
    const atIdle = client.latest().by.b1 ?? 0;
    child.kill('SIGSTOP');
    await sleep(4_000);
    child.kill('SIGCONT');
    const others = client.latest().ok;
    await waitFor('the others answering meanwhile', async () => (client.latest().ok >= others + 100 ? true : undefined), 60_000);
    assert.equal(client.latest().by.b1 ?? 0, atIdle, 'a drained backend got new requests');
    await lb.setServerState('web', 'b1', 'ready');
    await waitFor('b1 serving again', async () => ((client.latest().by.b1 ?? 0) > atIdle + 20 ? true : undefined), 60_000);
  } finally {
    const c = await client.stop();
    assert.deepEqual(c.failures.slice(0, 5), [], `${c.failed} of ${c.ok + c.failed} GETs failed`);
  }
  await assert.rejects(lb.setServerState('web', 'nosuch', 'drain'), /HAProxy refused to set web\/nosuch to drain/);
});

test('a migration\'s drain (LoadBalancerService) reaches a load balancer of any project, and passes by one whose other servers are down', { timeout: 120_000 }, async (t) => {
  if (missing) return t.skip(`not installed: ${missing.split('\n').join(', ')}`);
  await allUp();
  // Load balancer "web" as the store has it: in project p9, on a host whose shell is the LB's namespace.
  new ProjectService(env.ctx).create(`${env.prefix}p9`);
  env.ctx.hosts.insert({ name: `${env.prefix}-lbh`, roles: ['lb'], shell: { kind: 'netns', netns: ns.lb }, createdAt: new Date().toISOString() });
  env.ctx.loadBalancers.put({
    name: 'web', host: `${env.prefix}-lbh`, frontend: FRONT, instances: ['b1', 'b2', 'b3'], network: env.network, backendPort: 8080,
    internalPort: 18097, waf: null, createdAt: new Date().toISOString(), project: `${env.prefix}p9`,
  });
  const svc = new LoadBalancerService(env.ctx); // as MigrationService makes it: the machine's root, in project default
  try {
    assert.deepEqual(await svc.drain('b1'), ['web']);
    assert.equal(await statusOf('b1'), 'DRAIN');
    await svc.undrain('b1');
    assert.equal(await statusOf('b1'), 'UP');
    // With b2 and b3 out, draining b1 would leave no server: it stays in the rotation.
    for (const b of ['b2', 'b3']) await lb.runtime(`disable server web/${b}`);
    assert.deepEqual(await svc.drain('b1'), []);
    assert.equal(await statusOf('b1'), 'UP');
  } finally {
    for (const b of ['b2', 'b3']) await lb.runtime(`enable server web/${b}`).catch(() => undefined);
    await svc.undrain('b1');
    env.ctx.loadBalancers.delete('web');
    env.ctx.hosts.delete(`${env.prefix}-lbh`);
  }
});

