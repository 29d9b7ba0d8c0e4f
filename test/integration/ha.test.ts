import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { makeTestEnv, sleep, waitFor, type TestEnv } from '../helpers/env.js';
import { getInNetns, pollHttpInNetns } from '../helpers/lab.js';
import { domainsAt, firstAnswer, ms, pageFrom, powerOff, qemuOf, startWatcher, type HostHa } from '../helpers/ha.js';
import { local } from '../../src/exec/exec.js';
import { ImageService } from '../../src/service/images.js';
import { LabService } from '../../src/service/lab.js';
import { COURSE_LAB } from '../../src/model/lab.js';
import type { Instance } from '../../src/model/types.js';
import type { AuditEntry } from '../../src/store/audit.js';

/**
 * Host failure (issue 18) on the course lab: two HA instances on kvm1 and one on kvm2 behind the
 * LB, `kumo ha run` watching. kvm1 loses power (every process of its node SIGKILLed: libvirtd,
 * virtlogd, the guests' QEMUs) while the outside polls the website through the LB every 100 ms:
 * kvm1 is DOWN, fenced, and its HA instances answer again from kvm2 on the same addresses; the
 * LB never fails a request (kvm2's instance keeps the site up) and its config is not touched.
 * kvm1 comes back and rejoins without starting what moved. Then kvm1's fence is a command that
 * fails and only its libvirtd dies (its guest runs on): DOWN, NOT fenced, and its HA instance is
 * NOT started on kvm2, where it would run a second time on the same disk. One lab for all of it.
 */
let env: TestEnv;
let labFile: string;
let watcher: ReturnType<typeof startWatcher> | undefined;
const n = { a1: '', a2: '', b: '', c: '' };

before(async () => {
  env = await makeTestEnv('ha');
  await new ImageService(env.ctx).buildTiny();
  labFile = join(env.home, 'lab.yaml');
  await writeFile(labFile, stringify({ ...COURSE_LAB, name: env.prefix }));
  Object.assign(n, { a1: `${env.prefix}-a1`, a2: `${env.prefix}-a2`, b: `${env.prefix}-b`, c: `${env.prefix}-c` });
});

after(async () => {
  // Pass or fail: the watcher, the lab (its guests, daemons, namespaces), then the test's own world.
  await watcher?.stop();
  await new LabService(env.ctx).down().catch(() => undefined);
  await env?.cleanup();
});

const ns = (node: string) => `${env.prefix}-${node}`;

async function kumo(args: string[], timeoutMs = 300_000): Promise<string> {
  const r = await env.cli(args, { timeoutMs });
  assert.equal(r.code, 0, `kumo ${args.join(' ')} exited with ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

type InstanceView = Instance & { ha: boolean };
const instance = async (name: string) => JSON.parse(await kumo(['instance', 'show', name, '--json'])) as InstanceView;
const hostHa = async (name: string) => (JSON.parse(await kumo(['host', 'show', name, '--json'])) as { ha: HostHa }).ha;
const hostUri = (name: string) => env.ctx.hosts.get(name)!.uri!;
const backendNic = (i: Instance) => i.nics.find((x) => x.network === 'backend')!;
const haAudit = async () => (JSON.parse(await kumo(['audit', '--json', '--limit', '1000'])) as AuditEntry[]).filter((e) => e.actor === 'ha-watcher');
const haproxyCfg = async () => {
  const file = (await local.run('find', [join(env.home, 'lb', 'front'), '-name', 'haproxy.cfg'])).stdout.trim().split('\n')[0]!;
  return readFile(file, 'utf8');
};

/** GETs the site from the outside until each of `want` has answered (HAProxy's X-Kumo-Backend names it). */
async function siteServedBy(want: string[], timeoutMs = 60_000): Promise<void> {
  const seen = new Set<string>();
  await waitFor(`${want.join(', ')} answering through the LB`, async () => {
    const r = await getInNetns(ns('internet'), 'http://10.5.1.213/');
    if (r.status === 200 && r.body.includes(`<h1>${r.backend}</h1>`)) seen.add(r.backend);
    return want.every((w) => seen.has(w)) ? true : undefined;
  }, timeoutMs);
}

/** Waits until kumo tells host NAME's story with `state`; the story then. */
const haState = (name: string, state: HostHa['state'], timeoutMs: number) =>
  waitFor(`host ${name} ${state}`, async () => {
    const ha = await hostHa(name);
    return ha.state === state ? ha : undefined;
  }, timeoutMs);

test('HA instances on both hypervisors behind the LB: --ha is in list, show and JSON; a lab host is fenced by the lab', { timeout: 600_000 }, async () => {
  await kumo(['lab', 'up', labFile]);
  for (const [name, host] of [[n.a1, 'kvm1'], [n.a2, 'kvm1'], [n.b, 'kvm2']] as const) {
    await kumo(['instance', 'create', name, '--image', 'tiny', '--flavor', 'small', '--password', 'test123', '--network', 'backend', '--host', host, '--ha']);
  }
  await Promise.all([n.a1, n.a2, n.b].map((name) => kumo(['instance', 'wait', name, '--timeout', '300'], 360_000)));
  for (const name of [n.a1, n.a2, n.b]) {
    assert.equal((await instance(name)).ha, true, `${name} is HA in --json`);
    assert.match(await kumo(['instance', 'show', name]), /HA:\s+yes/);
  }
  const list = JSON.parse(await kumo(['instance', 'list', '--json'])) as InstanceView[];
  assert.deepEqual(list.map((i) => `${i.name}:${i.host}:${i.ha}`).sort(), [`${n.a1}:kvm1:true`, `${n.a2}:kvm1:true`, `${n.b}:kvm2:true`]);
  assert.match(await kumo(['instance', 'list']), /\bHA\b/);
  assert.match(await kumo(['host', 'show', 'kvm1']), /fence:\s+lab/);
  await kumo(['lb', 'create', 'front', '--host', 'lb', '--frontend', '10.5.1.213:80', '--network', 'backend',
    '--instance', n.a1, '--instance', n.a2, '--instance', n.b]);
  await siteServedBy([n.a1, n.a2, n.b]);
});

test('kvm1 loses power under load: DOWN, fenced, its HA instances answer from kvm2 on the same addresses; the site never goes dark and fails nothing once they are back', { timeout: 300_000 }, async (t) => {
  const before = new Map(await Promise.all([n.a1, n.a2].map(async (name) => [name, await instance(name)] as const)));
  const cfg = await haproxyCfg();
  watcher = startWatcher(env.cliEnv);
  // The watcher has seen every host answer before anything happens.
  await sleep(3_000);
  assert.equal(watcher.exitCode(), null, `kumo ha run ended: ${watcher.output()}`);
  assert.equal((await hostHa('kvm1')).state, 'up');

  const poll = pollHttpInNetns(ns('internet'), 'http://10.5.1.213/', 100, 5_000);
  await siteServedBy([n.a1, n.a2, n.b], 20_000);
  const { killed, at: killedAt } = await powerOff(ns('kvm1'), 'everything');
  assert.ok(killed.includes('libvirtd') && killed.filter((c) => c.startsWith('qemu')).length === 2, `killed: ${killed.join(', ')}`);

  // Each HA instance's first answer, from the LB node on its old address, after the kill.
  const answered = await Promise.all([n.a1, n.a2].map(async (name) => {
    const at = await firstAnswer(ns('lb'), backendNic(before.get(name)!).ipv4!, name, 150_000);
    assert.ok(at !== undefined, `${name} did not answer again within 150 s of the kill; watcher said:\n${watcher!.output()}`);
    return at - killedAt;
  }));
  const ha = await haState('kvm1', 'fenced', 30_000);
  // The LB sees them healthy again by itself (same addresses): all three serve the site, and a few more seconds of polling.
  await siteServedBy([n.a1, n.a2, n.b]);
  const backAt = Date.now();
  await sleep(5_000);
  const stats = await poll.stop();
  const restartedAt = ha.moved.map((m) => ms(m.at));
  t.diagnostic(`kill → DOWN ${ms(ha.downAt) - killedAt} ms, → fenced ${ms(ha.fencedAt) - killedAt} ms, ` +
    `→ restarted ${restartedAt.map((r) => r - killedAt).join(' / ')} ms, → first answer ${answered.join(' / ')} ms (${n.a1} / ${n.a2}); ` +
    `LB: ${stats.failed} of ${stats.requests} requests failed, longest gap ${stats.longestGapMs} ms`);

  // The order is the point: DOWN, then fenced, and only then restarted elsewhere.
  assert.ok(ms(ha.downAt) >= killedAt - 1_000 && ms(ha.downAt) <= ms(ha.fencedAt), `down ${ha.downAt}, fenced ${ha.fencedAt}, kill ${new Date(killedAt).toISOString()}`);
  assert.deepEqual(ha.moved.map((m) => `${m.instance}>${m.to}`).sort(), [`${n.a1}>kvm2`, `${n.a2}>kvm2`]);
  assert.ok(restartedAt.every((r) => r >= ms(ha.fencedAt)), 'nothing was restarted before the fence succeeded');
  // Measured here: ~10-20 s under TCG on a quiet machine (docs/benchmarks.md); the bound leaves room for a loaded CI machine.
  assert.ok(Math.max(...answered) <= 60_000, `the HA instances answered ${answered.join(' / ')} ms after the kill`);
  // Once they are back no request fails; in the gap, kvm2's instance keeps the site answering: the
  // few requests that were on kvm1's guests when they vanished are counted and reported (goal 0,
  // met in most runs: docs/benchmarks.md), and the site is never dark for a client's 5 s.
  const lost = `${stats.failed} of ${stats.requests} requests failed (longest gap ${stats.longestGapMs} ms; kvm1 lost power at ` +
    `${new Date(killedAt).toISOString()}, back at ${new Date(backAt).toISOString()}): ${stats.failures.join('; ')}`;
  if (stats.failed) t.diagnostic(`in the gap, ${lost}`);
  assert.deepEqual(stats.failedAt.filter((at) => at >= backAt), [], `failures after the HA instances were back: ${lost}`);
  assert.ok(stats.longestGapMs < 5_000, `the site went dark: ${lost}`);
  assert.equal(await haproxyCfg(), cfg, 'the LB\'s config did not change: same addresses');

  for (const name of [n.a1, n.a2]) {
    const now = await instance(name);
    assert.equal(now.host, 'kvm2');
    assert.deepEqual(now.nics.map((x) => `${x.mac} ${x.ipv4}`), before.get(name)!.nics.map((x) => `${x.mac} ${x.ipv4}`), `${name}: same MAC, same address`);
    assert.equal(now.uuid, before.get(name)!.uuid, `${name}: the same domain`);
    assert.equal((await qemuOf(name)).length, 1, `${name} runs exactly once`);
  }
  assert.ok((await domainsAt(hostUri('kvm2'))).includes(n.a1));
  assert.match(await kumo(['host', 'list']), /^\s*kvm1\s+FENCED\b/m);
  const audit = await haAudit();
  for (const [action, target] of [['ha.down', 'kvm1'], ['ha.fence', 'kvm1'], ['ha.restart', n.a1], ['ha.restart', n.a2]] as const) {
    assert.ok(audit.some((e) => e.action === action && (e.target ?? '').includes(target)),
      `audit has ${action} ${target}: ${audit.map((e) => `${e.action} ${e.target ?? ''}`).join('; ')}`);
  }
});

test('kvm1 comes back: it rejoins UP without starting the instances that moved, and host show keeps the story', { timeout: 240_000 }, async () => {
  assert.ok(watcher, 'the watcher of the power loss runs');
  // Before it comes back, kumo doctor names what is gone of the lab, with the fix.
  const doctor = await env.cli(['doctor', '--json']);
  assert.equal(doctor.code, 11, doctor.stderr);
  const labFinding = (JSON.parse(doctor.stdout) as { host: { check: string; ok: boolean; detail: string; fix?: string }[] }).host.find((f) => f.check === 'lab');
  assert.equal(labFinding?.ok, false, doctor.stdout);
  assert.match(labFinding!.detail, /kvm1's libvirtd/);
  assert.match(labFinding!.fix ?? '', /kumo lab up/);
  // Its libvirtd back, as an operator powering the node on would (lab up starts what is missing).
  await kumo(['lab', 'up', labFile]);
  const ha = await haState('kvm1', 'up', 60_000);
  assert.ok(ha.rejoinedAt && ms(ha.rejoinedAt) > ms(ha.fencedAt), `rejoined ${ha.rejoinedAt} after fenced ${ha.fencedAt}`);
  assert.ok(ha.downAt && ha.fencedAt, 'the story is kept');
  assert.deepEqual(ha.moved.map((m) => `${m.instance}>${m.to}`).sort(), [`${n.a1}>kvm2`, `${n.a2}>kvm2`]);
  const onKvm1 = await domainsAt(hostUri('kvm1'));
  assert.ok(!onKvm1.includes(n.a1) && !onKvm1.includes(n.a2), `the moved instances are not defined on kvm1: ${onKvm1.join(', ')}`);
  for (const name of [n.a1, n.a2]) {
    assert.equal((await instance(name)).host, 'kvm2');
    assert.equal((await qemuOf(name)).length, 1, `${name} runs exactly once`);
  }
  const show = await kumo(['host', 'show', 'kvm1']);
  for (const name of [n.a1, n.a2]) assert.match(show, new RegExp(`${name}.*kvm2`), `host show tells where ${name} went:\n${show}`);
  assert.match(await kumo(['host', 'list']), /^\s*kvm1\s+up\b/m);
  assert.ok((await haAudit()).some((e) => e.action === 'ha.rejoin' && e.target === 'kvm1'), 'audit has ha.rejoin kvm1');
  await watcher.stop();
  watcher = undefined;
});

test('an unfenceable host: DOWN, NOT fenced, and its HA instance is not started a second time elsewhere', { timeout: 300_000 }, async (t) => {
  await kumo(['instance', 'create', n.c, '--image', 'tiny', '--flavor', 'small', '--password', 'test123', '--network', 'backend', '--host', 'kvm1', '--ha']);
  const ip = /answers at http:\/\/([\d.]+):8080/.exec(await kumo(['instance', 'wait', n.c, '--timeout', '300'], 360_000))?.[1];
  assert.ok(ip, 'kumo instance wait printed its address');
  await kumo(['host', 'set', 'kvm1', '--fence', 'false']);
  assert.match(await kumo(['host', 'show', 'kvm1']), /fence:\s+command/);
  watcher = startWatcher(env.cliEnv);
  await sleep(3_000);
  assert.equal((await hostHa('kvm1')).state, 'up');

  // Only the management daemon dies: the guest runs on. Starting it on kvm2 now would run it twice on one disk.
  const { at: killedAt } = await powerOff(ns('kvm1'), 'libvirtd');
  const ha = await haState('kvm1', 'unfenced', 60_000);
  t.diagnostic(`kill → DOWN ${ms(ha.downAt) - killedAt} ms, UNFENCED: ${ha.fenceError ?? '(no error text)'}`);
  assert.ok(ha.fenceError, 'the fence\'s failure is told');
  // Several more beats: nothing moves.
  await sleep(8_000);
  assert.equal((await instance(n.c)).host, 'kvm1', 'the record stays on kvm1');
  assert.ok(!(await domainsAt(hostUri('kvm2'))).includes(n.c), `${n.c} is not defined on kvm2`);
  assert.equal((await qemuOf(n.c)).length, 1, `${n.c} runs exactly once (still on kvm1)`);
  assert.match((await pageFrom(ns('lb'), ip, 3)) ?? '', new RegExp(`<h1>${n.c}</h1>`), 'it still serves, from kvm1');
  assert.ok(!(await hostHa('kvm1')).moved.some((m) => m.instance === n.c));

  const show = await kumo(['host', 'show', 'kvm1']);
  assert.match(show, /not fenced|unfenced/i, show);
  assert.match(show, /--fence/, `host show gives the fix:\n${show}`);
  assert.match(await kumo(['host', 'list']), /^\s*kvm1\s+DOWN, UNFENCED\b/m);
  const audit = await haAudit();
  assert.ok(audit.some((e) => e.action === 'ha.fence-failed' && e.target === 'kvm1'), 'audit has ha.fence-failed kvm1');
  assert.ok(!audit.some((e) => e.action === 'ha.restart' && e.target === n.c), `no ha.restart of ${n.c}`);
  await watcher.stop();
  watcher = undefined;
});
