import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import { pollHttpInNetns, processesMentioning } from '../helpers/lab.js';
import { local } from '../../src/exec/exec.js';
import { NetnsExecutor } from '../../src/exec/netns.js';
import { ImageService } from '../../src/service/images.js';
import { LabService } from '../../src/service/lab.js';
import { COURSE_LAB } from '../../src/model/lab.js';
import { datacenterJsonSchema } from '../../src/cli/commands/plan.js';

/**
 * The course's project from one file (examples/course-datacenter.yaml, under this run's name):
 * plan, apply, the website from the outside through the LB and its WAF, a second apply that
 * changes nothing, convergence after an instance is deleted by hand and the LB is killed, and
 * destroy. The file's lab and instance names carry the run's prefix.
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

const fromOutside = async (url: string) => {
  const r = await outside.run('curl', ['-s', '-w', '\n%{http_code}', '--max-time', '3', url], { allowFailure: true });
  const lines = r.stdout.trimEnd().split('\n');
  return { status: Number(lines.pop()), body: lines.join('\n').trim() };
};

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
  const listener = spawn('nsenter', [`--net=/run/netns/${env.prefix}-lb`, '--', 'busybox', 'nc', '-l', '-p', '2222'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 500));
    assert.notEqual((await outside.run('curl', ['-s', '--max-time', '2', 'telnet://10.5.1.213:2222'], { allowFailure: true, input: '' })).code, 0);
  } finally {
    listener.kill();
  }
  const storageIp = (JSON.parse((await env.cli(['instance', 'show', members[0]!, '--json'])).stdout) as { nics: { network: string; ipv4?: string }[] })
    .nics.find((n) => n.network === 'storage')!.ipv4!;
  const from = (node: string, url: string) => new NetnsExecutor(`${env.prefix}-${node}`).run('curl', ['-s', '--max-time', '2', url], { allowFailure: true, input: '' });
  assert.notEqual((await from('stg', `http://${storageIp}:8080/`)).code, 0, 'stg must not reach an instance\'s 8080');
  assert.equal((await from('lb', `http://${ip}:8080/`)).code, 0, 'the LB reaches the instances');
  assert.notEqual((await from('kvm1', 'telnet://10.5.3.10:2049')).code, 0, 'only instances may reach NFS on stg');
  const fw = JSON.parse((await env.cli(['firewall', 'show', file, '--json'])).stdout) as { live: { host: string; current: boolean; counters: { id: string; packets?: number }[] }[] };
  assert.deepEqual(fw.live.map((t) => `${t.host}:${t.current}`).sort(), ['kvm1:true', 'kvm2:true', 'lb:true', 'stg:true']);
  const dropped = (host: string, id: string) => fw.live.filter((t) => t.host === host).flatMap((t) => t.counters).find((c) => c.id === id)?.packets ?? 0;
  assert.ok(dropped('lb', 'input-drop') > 0 && dropped('stg', 'input-drop') > 0);
  assert.ok(dropped('kvm1', 'to-instances-front') + dropped('kvm2', 'to-instances-front') > 0);

  // STG's file changes, and every instance serves the change (the LB spreads requests over them).
  const share = JSON.parse((await env.cli(['share', 'show', 'site', '--json'])).stdout) as { path: string };
  await writeFile(join(share.path, 'index.html'), '<h1>edited on stg</h1>\n');
  for (let i = 0; i < 8; i++) {
    await waitFor('the edited page', async () => ((await fromOutside('http://10.5.1.213/')).body === '<h1>edited on stg</h1>' ? true : undefined), 20_000);
  }
});

test('a live migration while the outside polls the website through the LB loses no request', async (t) => {
  const moving = env.ctx.instances.get(members[0]!)!;
  const to = moving.host === 'kvm1' ? 'kvm2' : 'kvm1';
  // A request held up by the move (a retransmission while the switch learns the guest's new
  // port) is slow, not lost: like a browser, the client waits up to 5 s; the gap is reported.
  const poll = pollHttpInNetns(`${env.prefix}-internet`, 'http://10.5.1.213/', 50, 5_000);
  await new Promise((r) => setTimeout(r, 1_000));
  const moved = await env.cli(['instance', 'migrate', moving.name, '--to', to]);
  assert.equal(moved.code, 0, moved.stderr);
  await new Promise((r) => setTimeout(r, 1_000));
  const stats = await poll.stop();
  t.diagnostic(`${moved.stdout.trim()}; through the LB: ${stats.requests} requests, ${stats.failed} failed, longest gap ${stats.longestGapMs} ms`);
  assert.ok(stats.requests > 20);
  assert.equal(stats.failed, 0);
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
