import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { makeTestEnv, sleep, waitFor, type TestEnv } from '../helpers/env.js';
import { getInNetns, pollHttpInNetns, processesMentioning, runWrk } from '../helpers/lab.js';
import { dropTable, listenIn, restoreTable, routeOutsideIn, tcpFrom } from '../helpers/reach.js';
import { local } from '../../src/exec/exec.js';
import { NetnsExecutor } from '../../src/exec/netns.js';
import { ImageService } from '../../src/service/images.js';
import { LabService } from '../../src/service/lab.js';
import { COURSE_LAB } from '../../src/model/lab.js';
import { datacenterJsonSchema } from '../../src/cli/commands/plan.js';

/**
 * The course's project from one file (examples/course-datacenter.yaml, under this run's name):
 * plan, apply, the website from the outside through the LB and its WAF (each of the 4 instances
 * seen by HAProxy's X-Kumo-Backend), a live migration under wrk's load, a second apply that
 * changes nothing, convergence after an instance is deleted by hand and the LB is killed, the WAF
 * turned off and on again in the file, and destroy. The file's lab and instance names carry the
 * run's prefix.
 */
let env: TestEnv;
let file: string;
let outside: NetnsExecutor;
let members: string[] = [];
const EXAMPLE = join(import.meta.dirname, '../../../examples/course-datacenter.yaml');

before(async () => {
  env = await makeTestEnv('dc');
  await new ImageService(env.ctx).buildTiny();
  const dc = parse(await readFile(EXAMPLE, 'utf8')) as Record<string, unknown> & { instances: Record<string, unknown> };
  // The example as it is, but the lab and the instance group named for this run.
  dc.name = env.prefix;
  dc.lab = { ...COURSE_LAB, name: env.prefix };
  const group = `${env.prefix}-web`;
  dc.instances = { [group]: dc.instances.web };
  (dc.loadbalancers as Record<string, { instances: string }>).front!.instances = group;
  file = join(env.home, 'datacenter.yaml');
  await writeFile(file, stringify(dc));
  outside = new NetnsExecutor(`${env.prefix}-internet`);
  members = [1, 2, 3, 4].map((i) => `${group}-${i}`);
});

after(async () => {
  await new LabService(env.ctx).down().catch(() => undefined);
  await env?.cleanup();
});

const fromOutside = (url: string) => getInNetns(`${env.prefix}-internet`, url);

/** The page as each instance serves it through the LB, GETting until all of `want` answered with `expect`. */
async function everyInstanceServes(expect: string, want: string[]): Promise<Map<string, string>> {
  const seen = new Map<string, string>();
  return waitFor(`all of ${want.join(', ')} serving ${JSON.stringify(expect)} through the LB`, async () => {
    const r = await fromOutside('http://10.5.1.213/');
    if (r.status === 200 && r.backend) seen.set(r.backend, r.body);
    return want.every((w) => seen.get(w) === expect) ? seen : undefined;
  }, 30_000);
}

test('the published JSON Schema is the one kumo validates with', async () => {
  const published = JSON.parse(await readFile(join(import.meta.dirname, '../../../docs/datacenter.schema.json'), 'utf8')) as unknown;
  assert.deepEqual(published, datacenterJsonSchema(), 'regenerate it: kumo plan --schema > docs/datacenter.schema.json');
});

test('bad datacenter files name the line, column and problem, and change nothing', async () => {
  const good = await readFile(file, 'utf8');
  const bad = join(env.home, 'bad.yaml');
  for (const [edit, says] of [
    [(t: string) => t.replace('flavor: small', 'flavor: small\n    colour: red'), /bad\.yaml:\d+:\d+: instances\.\S+: .*colour/],
    [(t: string) => t.replace('port: 80', 'port: 70000'), /bad\.yaml:\d+:\d+: loadbalancers\.front\.frontend\.port/],
    [(t: string) => t.replace('share: site', 'share: nope'), /mount\.share: share "nope" is not declared/],
    [(t: string) => t.replace('address: 10.5.1.213', 'address: 10.5.1.99'), /10\.5\.1\.99 is not an address of lb/],
    [(t: string) => t.replace(/(site:\n\s+networks:\n\s+- )storage/, '$1internet'), /network "internet" is not a segment of the lab/],
    [(t: string) => t.replace('cidr: 10.5.3.0/24', 'cidr: 10.5.2.0/25'), /overlaps segment backend/],
  ] as const) {
    await writeFile(bad, edit(good));
    const r = await env.cli(['plan', bad]);
    assert.equal(r.code, 2, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, says);
  }
  assert.equal(new LabService(env.ctx).state(), undefined, 'nothing was made');
});

test('apply builds the course datacenter: the website through the LB from outside, the same index.html from STG everywhere', async () => {
  const planned = await env.cli(['plan', file]);
  assert.equal(planned.code, 0, planned.stderr);
  assert.match(planned.stdout, /\+ create lab/);
  assert.match(planned.stdout, /\+ create firewall/);
  assert.equal(planned.stdout.match(/\+ create instance/g)?.length, 4);
  const applied = await env.cli(['apply', file]);
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /website \(front\): http:\/\/10\.5\.1\.213:80\//);
  const hosts = env.ctx.instances.list().map((i) => i.host).sort();
  assert.deepEqual(hosts, ['kvm1', 'kvm1', 'kvm2', 'kvm2'], 'two instances per hypervisor');
  const page = await fromOutside('http://10.5.1.213/');
  assert.equal(page.status, 200);
  assert.match(page.body, /kumo course datacenter/);
  // Only the LB is the way in: an instance's own 8080 cannot be reached from outside.
  const ip = (await env.cli(['instance', 'show', members[0]!, '--json'])).stdout.match(/"ipv4": "(10\.5\.2\.\d+)"/)?.[1];
  assert.ok(ip);
  assert.notEqual((await fromOutside(`http://${ip}:8080/`)).status, 200);
  // Every instance serves STG's page itself (seen from the LB node, which may reach them).
  for (const name of members) {
    const addr = (JSON.parse((await env.cli(['instance', 'show', name, '--json'])).stdout) as { nics: { network: string; ipv4?: string }[] })
      .nics.find((n) => n.network === 'backend')!.ipv4!;
    const own = await new NetnsExecutor(`${env.prefix}-lb`).run('curl', ['-s', '--max-time', '3', `http://${addr}:8080/`], { allowFailure: true });
    assert.match(own.stdout, /kumo course datacenter/, `${name} serves the shared page`);
  }
  assert.equal((await fromOutside("http://10.5.1.213/?id=1'%20OR%20'1'='1")).status, 403);
  assert.equal((await fromOutside('http://10.5.1.213/?q=<script>alert(1)</script>')).status, 403);
  assert.equal((await fromOutside('http://10.5.1.213/?file=../../../../etc/passwd')).status, 403, 'path traversal');
  // Access rules, enforced on the nodes: nothing but the frontend port on the LB from outside,
  // the instances' 8080 only from the LB, NFS on STG only from the instances.
  // A listener that answered on the LB itself first: the outside's failure is the rule's, not a missing listener.
  const listener = await listenIn(`${env.prefix}-lb`, 2222);
  try {
    // Both wait out a drop: side by side.
    await Promise.all([
      outside.run('curl', ['-s', '--max-time', '2', 'telnet://10.5.1.213:2222'], { allowFailure: true, input: '' }).then((r) => assert.notEqual(r.code, 0)),
      tcpFrom(`${env.prefix}-internet`, '10.5.1.213', 2222).then((r) => assert.equal(r.outcome, 'timed out', 'the LB drops what is not its frontend port')),
    ]);
  } finally {
    listener.stop();
  }
  const storageIp = (JSON.parse((await env.cli(['instance', 'show', members[0]!, '--json'])).stdout) as { nics: { network: string; ipv4?: string }[] })
    .nics.find((n) => n.network === 'storage')!.ipv4!;
  const from = (node: string, url: string) => new NetnsExecutor(`${env.prefix}-${node}`).run('curl', ['-s', '--max-time', '2', url], { allowFailure: true, input: '' });
  await Promise.all([
    from('stg', `http://${storageIp}:8080/`).then((r) => assert.notEqual(r.code, 0, 'stg must not reach an instance\'s 8080')),
    from('lb', `http://${ip}:8080/`).then((r) => assert.equal(r.code, 0, 'the LB reaches the instances')),
    from('kvm1', 'telnet://10.5.3.10:2049').then((r) => assert.notEqual(r.code, 0, 'only instances may reach NFS on stg')),
  ]);
  const fw = JSON.parse((await env.cli(['firewall', 'show', file, '--json'])).stdout) as { live: { host: string; current: boolean; counters: { id: string; packets?: number }[] }[] };
  assert.deepEqual(fw.live.map((t) => `${t.host}:${t.current}`).sort(), ['kvm1:true', 'kvm2:true', 'lb:true', 'stg:true']);
  const dropped = (host: string, id: string) => fw.live.filter((t) => t.host === host).flatMap((t) => t.counters).find((c) => c.id === id)?.packets ?? 0;
  assert.ok(dropped('lb', 'input-drop') > 0 && dropped('stg', 'input-drop') > 0);
  assert.ok(dropped('kvm1', 'to-instances-front') + dropped('kvm2', 'to-instances-front') > 0);

  // STG's file changes, and each of the 4 instances, named by HAProxy's X-Kumo-Backend (passed
  // through the WAF), serves the change to the outside: the LB spreads requests over all of them.
  const share = JSON.parse((await env.cli(['share', 'show', 'site', '--json'])).stdout) as { path: string };
  await writeFile(join(share.path, 'index.html'), '<h1>edited on stg</h1>\n');
  const seen = await everyInstanceServes('<h1>edited on stg</h1>', members);
  assert.deepEqual([...seen.keys()].sort(), [...members].sort(), 'no other server name appears');
});

test('with a route from the outside, the access rules are what keep it from the instances, NFS and the LB\'s other ports', async () => {
  const ns = (node: string) => `${env.prefix}-${node}`;
  const target = env.ctx.instances.get(members[0]!)!;
  const ip = (JSON.parse((await env.cli(['instance', 'show', target.name, '--json'])).stdout) as { nics: { network: string; ipv4?: string }[] })
    .nics.find((n) => n.network === 'backend')!.ipv4!;
  const instancePage = () => fromOutside(`http://${ip}:8080/`);
  const nfsFrom = (node: string) => tcpFrom(ns(node), '10.5.3.10', 2049);
  const blocked = async (node: string, why: string) => assert.equal((await nfsFrom(node)).outcome, 'timed out', `${node}: ${why}`);
  const opens = async (node: string, why: string) => assert.equal((await nfsFrom(node)).outcome, 'connected', `${node}: ${why}`);
  /** With every rule loaded: no instance's 8080 and no LB port but the frontend from outside, and NFS from no node. */
  const allClosed = (why: string) => Promise.all([
    instancePage().then((r) => assert.notEqual(r.status, 200, 'the outside must not reach an instance\'s 8080')),
    tcpFrom(ns('internet'), '10.5.1.213', 2222).then((r) => assert.equal(r.outcome, 'timed out', 'the outside must not reach the LB\'s port 2222')),
    ...['internet', 'lb', 'kvm1', 'kvm2'].map((node) => blocked(node, why)),
  ]);
  // Positive controls: the instance answers the LB, and ganesha answers on stg itself (lo passes).
  assert.equal((await getInNetns(ns('lb'), `http://${ip}:8080/`)).status, 200);
  assert.equal((await nfsFrom('stg')).outcome, 'connected', 'ganesha listens on 10.5.3.10:2049');

  const unroute = await routeOutsideIn(env.prefix);
  const listener = await listenIn(ns('lb'), 2222);
  try {
    // All rules loaded: with a route, the outside still reaches neither an instance nor NFS nor
    // the LB's other ports, and no node but the instances opens NFS. (Checks of one state of the
    // rules run side by side: each waits out its own drop.)
    await allClosed('only instances may open NFS on stg');

    // STG's rules gone: the LB and the hypervisors open NFS (so it was STG's rule that stopped them);
    // the outside still not: the LB forwards nothing.
    const stgRules = await dropTable(ns('stg'), 'inet');
    assert.ok(stgRules.includes('2049'), stgRules);
    await Promise.all([
      ...['lb', 'kvm1', 'kvm2'].map((node) => opens(node, 'with STG\'s rules removed')),
      blocked('internet', 'the LB\'s rules still forward nothing'),
    ]);

    // The LB's rules gone too: the outside reaches its port 2222 and, forwarded, NFS; an instance
    // still not: its hypervisor's bridge rule lets only the LB's backend address in.
    await dropTable(ns('lb'), 'inet');
    assert.equal((await tcpFrom(ns('internet'), '10.5.1.213', 2222)).outcome, 'connected', 'with the LB\'s rules removed');
    await opens('internet', 'with the LB\'s and STG\'s rules removed');
    assert.notEqual((await instancePage()).status, 200, `${target.host}'s rule alone keeps the outside from the instance`);

    // The hypervisor's rules gone: the same request gets the page (the route works, only rules stopped it).
    const hypervisorRules = await dropTable(ns(target.host), 'bridge');
    assert.equal((await instancePage()).status, 200, 'with every rule on the way removed, the outside reaches the instance');
    await restoreTable(ns(target.host), hypervisorRules);
    assert.notEqual((await instancePage()).status, 200, `${target.host}'s rule loaded again blocks it`);

    // plan sees the missing tables, apply loads them, and everything is closed again.
    const planned = (await env.cli(['plan', file])).stdout;
    assert.match(planned, /~ update firewall \S+: access rules to load on .*\blb\b/);
    assert.match(planned, /~ update firewall \S+: access rules to load on .*\bstg\b/);
    const applied = await env.cli(['apply', file]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match((await env.cli(['plan', file])).stdout, /no changes/);
    await allClosed('after apply, only instances may open NFS on stg');
  } finally {
    listener.stop();
    await unroute();
  }
  // The instances still mount it: each serves STG's (edited) page to the LB.
  assert.match((await getInNetns(ns('lb'), `http://${ip}:8080/`)).body, /edited on stg/);
});

/** An instance's state in the LB's HAProxy, as `kumo lb show` gives it. */
async function backendStatus(instance: string): Promise<string | undefined> {
  const r = await env.cli(['lb', 'show', 'front', '--json']);
  return (JSON.parse(r.stdout) as { backends: { instance: string; status: string }[] }).backends.find((b) => b.instance === instance)?.status;
}

/** What a failed request left in the WAF's logs: its access log's answers other than 2xx/3xx, its error log's last lines. */
async function wafTrouble(): Promise<string> {
  const dir = join(env.home, 'lb', 'front', 'waf');
  const access = (await readFile(join(dir, 'access.log'), 'utf8').catch(() => '')).split('\n').filter((l) => /" [45]\d\d /.test(l));
  const errors = (await readFile(join(dir, 'error.log'), 'utf8').catch(() => '')).trim().split('\n').slice(-5);
  return JSON.stringify({ access: access.slice(-5), errors });
}

test('a live migration under load from the outside (wrk through the WAF and LB) fails no request', async (t) => {
  const moving = env.ctx.instances.get(members[0]!)!;
  const to = moving.host === 'kvm1' ? 'kvm2' : 'kvm1';
  // 4 connections from 2 s before the migration until 3 s after it (at most wrk's -d of 90 s:
  // a loaded machine moves slower), so the whole move happens under load; wrk's own 2 s timeout
  // per request counts as a failure.
  const DURATION_S = 90;
  const t0 = Date.now();
  const stopLoad = new AbortController();
  const load = runWrk('http://10.5.1.213/', { netns: `${env.prefix}-internet`, threads: 1, connections: 4, durationS: DURATION_S, stop: stopLoad.signal });
  // Beside wrk, one request at a time: each failure counted, and the longest time between two
  // good answers through the LB measured. A request caught by the switch-over is held up, not
  // lost (one took just over 2 s on a loaded machine): each may take 5 s, as a browser would wait.
  const poll = pollHttpInNetns(`${env.prefix}-internet`, 'http://10.5.1.213/', 100, 5_000);
  await sleep(2_000);
  const moving$ = env.cli(['instance', 'migrate', moving.name, '--to', to]);
  // kumo takes it out of the LB's rotation while it moves (its switch-over pause holds no request).
  const drained = await waitFor(`${moving.name} drained from the LB`, async () => ((await backendStatus(moving.name)) === 'DRAIN' ? true : undefined), 60_000)
    .catch((e: Error) => e.message);
  const moved = await moving$;
  const movedAfterS = (Date.now() - t0) / 1000;
  const statusAfter = await backendStatus(moving.name);
  await sleep(3_000);
  stopLoad.abort();
  const w = await load;
  const gaps = await poll.stop();
  assert.equal(moved.code, 0, moved.stderr);
  assert.equal(drained, true, `kumo did not drain ${moving.name} while it moved: ${String(drained)}`);
  assert.notEqual(statusAfter, 'DRAIN', 'back in the rotation once moved');
  assert.ok(movedAfterS < DURATION_S - 1, `the migration ended ${movedAfterS.toFixed(1)} s after wrk started: not inside its ${DURATION_S} s`);
  t.diagnostic(`${moved.stdout.trim()}; wrk through the LB: ${w.requests} requests, ${w.requestsPerSec} req/s, latency p50 ${w.latencyMs.p50} ms, ` +
    `p99 ${w.latencyMs.p99} ms, max ${w.latencyMs.max} ms, socket errors ${JSON.stringify(w.socketErrors)}, non-2xx/3xx ${w.non2xx3xx}; ` +
    `one at a time: ${gaps.ok}/${gaps.requests} good, longest gap between good answers ${gaps.longestGapMs} ms`);
  assert.ok(w.requests > 100, `only ${w.requests} requests`);
  assert.deepEqual(w.socketErrors, { connect: 0, read: 0, write: 0, timeout: 0 });
  assert.equal(w.non2xx3xx, 0, `wrk had ${w.non2xx3xx} answers that were not 2xx/3xx; the WAF logged: ${await wafTrouble()}`);
  assert.ok(gaps.requests > 50, `the poller made only ${gaps.requests} requests`);
  assert.equal(gaps.failed, 0, `${gaps.failed} of ${gaps.requests} requests through the LB failed (longest gap ${gaps.longestGapMs} ms); the WAF logged: ${await wafTrouble()}`);
  assert.equal(env.ctx.instances.get(moving.name)!.host, to);
});

test('a second apply changes nothing; after an instance is deleted by hand and HAProxy is killed, apply converges', async () => {
  const again = await env.cli(['apply', file]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /no changes: the datacenter matches the file/);

  // Behind kumo's back: a domain undefined with virsh on its hypervisor, the LB's HAProxy killed.
  const victim = env.ctx.instances.get(members[2]!)!;
  const uri = env.ctx.hosts.get(victim.host)!.uri!;
  await local.run('virsh', ['-c', uri, 'destroy', victim.name]);
  await local.run('virsh', ['-c', uri, 'undefine', victim.name]);
  const pid = (await readFile(join(env.home, 'lb', 'front', 'haproxy', 'haproxy.pid'), 'utf8')).trim();
  process.kill(Number(pid), 'SIGKILL');
  await waitFor('HAProxy gone', async () => ((await processesMentioning(join(env.home, 'lb', 'front', 'haproxy'))).length === 0 ? true : undefined), 10_000);

  const planned = await env.cli(['plan', file]);
  assert.match(planned.stdout, new RegExp(`± recreate instance ${victim.name}: its domain was deleted outside kumo`));
  assert.match(planned.stdout, /~ update loadbalancer front: HAProxy does not run/);
  const fixed = await env.cli(['apply', file]);
  assert.equal(fixed.code, 0, fixed.stderr);
  assert.equal((await fromOutside('http://10.5.1.213/')).status, 200);
  assert.match((await env.cli(['plan', file])).stdout, /no changes/);
});

test('the WAF turned off in the file (detection only) lets attacks through after an in-place update; on again, they get 403', async () => {
  const attacks = ["http://10.5.1.213/?id=1'%20OR%20'1'='1", 'http://10.5.1.213/?q=<script>alert(1)</script>', 'http://10.5.1.213/?file=../../../../etc/passwd'];
  const original = await readFile(file, 'utf8');
  const off = join(env.home, 'waf-off.yaml');
  const dc = parse(original) as { loadbalancers: Record<string, { waf?: unknown }> };
  dc.loadbalancers.front!.waf = { enabled: false };
  await writeFile(off, stringify(dc));
  const wafPid = (await readFile(join(env.home, 'lb', 'front', 'waf', 'nginx.pid'), 'utf8')).trim();
  const planned = await env.cli(['plan', off]);
  assert.match(planned.stdout, /~ update loadbalancer front: WAF on \(paranoia 1\) -> detection only \(paranoia 1\)/);
  assert.doesNotMatch(planned.stdout, /recreate|create instance/);
  const applied = await env.cli(['apply', off]);
  assert.equal(applied.code, 0, applied.stderr);
  for (const url of attacks) assert.equal((await fromOutside(url)).status, 200, `${url} passes with the WAF off`);
  assert.match((await env.cli(['plan', off])).stdout, /no changes/);
  assert.equal((await readFile(join(env.home, 'lb', 'front', 'waf', 'nginx.pid'), 'utf8')).trim(), wafPid, 'nginx was reloaded, not restarted');

  const on = await env.cli(['apply', file]);
  assert.equal(on.code, 0, on.stderr);
  assert.match(on.stdout, /update loadbalancer front: WAF detection only \(paranoia 1\) -> on \(paranoia 1\)/);
  for (const url of attacks) assert.equal((await fromOutside(url)).status, 403, `${url} is blocked again`);
  assert.equal((await fromOutside('http://10.5.1.213/')).status, 200);
  assert.match((await env.cli(['plan', file])).stdout, /no changes/);
});

test('destroy removes what the file made, the lab included', async () => {
  const r = await env.cli(['destroy', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(env.ctx.instances.list(), []);
  assert.deepEqual(env.ctx.loadBalancers.list(), []);
  assert.deepEqual(env.ctx.shares.list(), []);
  assert.equal(new LabService(env.ctx).state(), undefined);
  assert.deepEqual(await processesMentioning(env.home), []);
  assert.match((await env.cli(['destroy', file])).stdout, /nothing of this datacenter exists/);
});
