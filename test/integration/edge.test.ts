import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { makeTestEnv, sleep, waitFor, type TestEnv } from '../helpers/env.js';
import { processesMentioning } from '../helpers/lab.js';
import { dropTable, listenIn, restoreTable, tcpFrom } from '../helpers/reach.js';
import { local } from '../../src/exec/exec.js';
import { NetnsExecutor } from '../../src/exec/netns.js';
import { ImageService } from '../../src/service/images.js';
import { LabService } from '../../src/service/lab.js';

/**
 * The course's extra item 3 from examples/course-datacenter-edge.yaml (under this run's name,
 * with 2 instances): the edge router forwards its public port 80 to the LB, source-NATs the
 * LB's way out, accepts SSH from outside to itself only; a second apply changes nothing and
 * destroy leaves no namespace of the run behind.
 */
let env: TestEnv;
let file: string;
let outside: NetnsExecutor;
const PUBLIC = '10.5.1.213';
const EXAMPLE = join(import.meta.dirname, '../../../examples/course-datacenter-edge.yaml');
const children: ChildProcess[] = [];

before(async () => {
  env = await makeTestEnv('edge');
  await new ImageService(env.ctx).buildTiny();
  const dc = parse(await readFile(EXAMPLE, 'utf8')) as Record<string, unknown> & { lab: Record<string, unknown>; instances: Record<string, { count: number }> };
  dc.name = env.prefix;
  dc.lab.name = env.prefix;
  const group = `${env.prefix}-web`;
  dc.instances = { [group]: { ...dc.instances.web!, count: 2 } };
  (dc.loadbalancers as Record<string, { instances: string }>).front!.instances = group;
  file = join(env.home, 'datacenter.yaml');
  await writeFile(file, stringify(dc));
  outside = new NetnsExecutor(`${env.prefix}-internet`);
});

after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await new LabService(env.ctx).down().catch(() => undefined);
  await env?.cleanup();
});

/** A process in one of the run's namespaces; its output is collected. */
function inNode(node: string, args: string[]): { child: ChildProcess; out: () => string } {
  let text = '';
  const child = spawn('nsenter', [`--net=/run/netns/${env.prefix}-${node}`, '--', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d: Buffer) => { text += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { text += d.toString(); });
  children.push(child);
  return { child, out: () => text };
}

const at = (node: string) => new NetnsExecutor(`${env.prefix}-${node}`);

test('edge files are checked against the lab and the load balancers', async () => {
  const good = await readFile(file, 'utf8');
  const bad = join(env.home, 'bad.yaml');
  for (const [edit, says] of [
    [(t: string) => t.replace('public_address: 10.5.1.213', 'public_address: 10.5.1.99'), /edge\.public_address: 10\.5\.1\.99 is not edge's address on frontend/],
    [(t: string) => t.replace('to: front', 'to: nope'), /edge\.forwards\.0\.to: load balancer "nope" is not declared/],
    [(t: string) => t.replace(/roles:\n(\s+)- edge/, 'roles:\n$1- lb'), /edge\.host: lab node "edge" does not have the edge role/],
    [(t: string) => t.replace('gateway: 10.5.4.1', 'gateway: 10.5.9.1'), /lab\.nodes\.lb\.gateway: 10\.5\.9\.1 is on none of lb's segments/],
  ] as const) {
    const text = edit(good);
    assert.notEqual(text, good, `the edit for ${String(says)} applies`);
    await writeFile(bad, text);
    const r = await env.cli(['plan', bad]);
    assert.equal(r.code, 2, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, says);
  }
  assert.equal(new LabService(env.ctx).state(), undefined, 'nothing was made');
});

test('apply: the site through the edge, SSH to the edge only, the LB out through SNAT', async () => {
  const planned = await env.cli(['plan', file]);
  assert.equal(planned.code, 0, planned.stderr);
  assert.match(planned.stdout, /\+ create edge edge: /);
  const applied = await env.cli(['apply', file]);
  assert.equal(applied.code, 0, `${applied.stdout}${applied.stderr}`);
  assert.match(applied.stdout, /website \(front\): http:\/\/10\.5\.1\.213:80\//);

  // The LB's default route goes through the edge; lab up again keeps it (idempotent).
  const route = async () => (await at('lb').run('ip', ['route', 'show', 'default'])).stdout.trim();
  assert.match(await route(), /^default via 10\.5\.4\.1 dev dmz/);
  const lab = new LabService(env.ctx);
  await lab.up(lab.state()!.spec);
  assert.match(await route(), /^default via 10\.5\.4\.1 dev dmz/);

  // Port 80 of the public address: DNAT to the LB, which serves the site.
  const page = await waitFor('the site through the edge', async () => {
    const r = await outside.run('curl', ['-s', '-w', '\n%{http_code}', '--max-time', '3', `http://${PUBLIC}:80/`], { allowFailure: true });
    return /kumo course datacenter \(behind the edge\)/.test(r.stdout) && r.stdout.trimEnd().endsWith('200') ? r.stdout : undefined;
  }, 30_000);
  assert.match(page, /behind the edge/);

  // SSH (a listener on 22 as stand-in) on the edge is reachable from outside: its banner comes back ...
  const edgeSsh = await listenIn(`${env.prefix}-edge`, 22, 'edge-ssh');
  const lbSsh = await listenIn(`${env.prefix}-lb`, 22, 'lb-ssh');
  try {
    await waitFor('the edge\'s SSH stand-in answering the outside', async () => {
      const r = await outside.run('timeout', ['3', 'bash', '-c', `exec 3<>/dev/tcp/${PUBLIC}/22; head -n1 <&3`], { allowFailure: true, input: '' });
      return r.stdout.trim() === 'edge-ssh' ? true : (await sleep(300), undefined);
    }, 20_000);
    // ... the LB's is not, even with a route to the dmz via the edge (as an upstream router would
    // give): the edge forwards only port 80. Removing its rules and the LB's lets the same connect
    // through, so it is the rules that stop it, not a missing route.
    const lbFromOutside = async () => (await tcpFrom(`${env.prefix}-internet`, '10.5.4.10', 22)).outcome;
    assert.notEqual(await lbFromOutside(), 'connected', 'no route: the outside does not reach the dmz');
    await at('internet').run('ip', ['route', 'add', '10.5.4.0/24', 'via', PUBLIC]);
    try {
      assert.equal(await lbFromOutside(), 'timed out', 'the edge drops what it does not forward');
      const edgeRules = await dropTable(`${env.prefix}-edge`, 'inet', 'kumo-edge');
      assert.equal(await lbFromOutside(), 'timed out', 'the LB\'s own rules still drop it');
      const lbRules = await dropTable(`${env.prefix}-lb`, 'inet');
      assert.equal(await lbFromOutside(), 'connected', 'with both rule sets removed, the same connect gets through');
      await restoreTable(`${env.prefix}-lb`, lbRules);
      await restoreTable(`${env.prefix}-edge`, edgeRules);
      assert.equal(await lbFromOutside(), 'timed out', 'the rules loaded again drop it');
    } finally {
      await at('internet').run('ip', ['route', 'del', '10.5.4.0/24'], { allowFailure: true });
    }
  } finally {
    edgeSsh.stop();
    lbSsh.stop();
  }

  // The LB reaches a server outside through the edge, which source-NATs it to its public address.
  const www = join(env.home, 'outside-www');
  await mkdir(www, { recursive: true });
  await writeFile(join(www, 'index.html'), 'outside-server\n');
  const server = inNode('internet', ['busybox', 'httpd', '-f', '-vv', '-p', '8081', '-h', www]);
  await sleep(500);
  const fromLb = await at('lb').run('curl', ['-s', '--max-time', '3', 'http://10.5.1.1:8081/'], { allowFailure: true });
  assert.equal(fromLb.stdout.trim(), 'outside-server', fromLb.stderr);
  await waitFor('the server logged the request', async () => (/url:\//.test(server.out()) ? true : undefined), 5_000);
  assert.match(server.out(), /10\.5\.1\.213\]?:\d+: url:\//, 'the outside sees the edge\'s public address');
  assert.doesNotMatch(server.out(), /10\.5\.4\.10/, 'not the LB\'s own');

  // firewall show: the edge's NAT and filter tables run as derived, with counters.
  const fw = JSON.parse((await env.cli(['firewall', 'show', file, '--json'])).stdout) as { live: { host: string; name: string; current: boolean; counters: { id: string; packets?: number }[] }[] };
  const edgeTables = fw.live.filter((t) => t.host === 'edge');
  assert.deepEqual(edgeTables.map((t) => `${t.name}:${t.current}`).sort(), ['kumo-edge:true', 'kumo-nat:true']);
  const packets = (id: string) => edgeTables.flatMap((t) => t.counters).find((c) => c.id === id)?.packets ?? 0;
  assert.ok(packets('dnat-tcp-80') > 0 && packets('snat-out') > 0 && packets('in-ssh-outside') > 0);
  assert.ok((fw.live.filter((t) => t.host === 'lb').flatMap((t) => t.counters).find((c) => c.id === 'lb-front')?.packets ?? 0) > 0,
    'the LB let the forwarded clients in');
});

test('a second apply changes nothing; a flushed edge is drift that apply repairs', async () => {
  const again = await env.cli(['apply', file]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /no changes: the datacenter matches the file/);
  await at('edge').run('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=0']);
  assert.match((await env.cli(['plan', file])).stdout, /~ update edge edge: IPv4 forwarding is off/);
  const fixed = await env.cli(['apply', file]);
  assert.equal(fixed.code, 0, fixed.stderr);
  assert.equal((await outside.run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', `http://${PUBLIC}/`], { allowFailure: true })).stdout, '200');
  assert.match((await env.cli(['plan', file])).stdout, /no changes/);
});

test('destroy removes everything, the edge and the lab included', async () => {
  for (const c of children) c.kill('SIGKILL');
  const r = await env.cli(['destroy', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /- delete edge edge/);
  assert.equal(new LabService(env.ctx).state(), undefined);
  const namespaces = (await local.run('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith(env.prefix));
  assert.deepEqual(namespaces, []);
  assert.deepEqual(await processesMentioning(env.home), []);
  assert.match((await env.cli(['destroy', file])).stdout, /nothing of this datacenter exists/);
});
