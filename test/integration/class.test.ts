import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { freeSubnet } from '../helpers/env.js';
import { API, ApiClient, closeApiWorld, deleteMadeResources, openApiWorld, refused, type Answer, type ApiWorld, type SseEvent } from '../helpers/api.js';
import { local } from '../../src/exec/exec.js';
import { machineActor } from '../../src/model/actor.js';
import { NetworkService } from '../../src/service/networks.js';

/**
 * Issue 15's "done when": a class on one kumo. Root (the instructor, on the machine) makes two
 * projects with the CLI and a token per student and role; the students use only the API
 * (every answer checked against /openapi.json). p1 holds one instance at most: its member gets
 * one and the quota refuses the second; its reader sees it and may not stop it; p2's member sees
 * nothing of p1 and cannot use its network; two creates racing for a project's last room end
 * with one instance; p1's member reads its use against its caps (the dashboard's data).
 * No guest boots: the instances are made stopped, from a stand-in disk.
 */

let w: ApiWorld;
let p1: string;
let p2: string;
/** One API client per student: p1's member and reader, p2's member. */
let m1: ApiClient;
let r1: ApiClient;
let m2: ApiClient;
/** Each project's own isolated network, made by its member through the API. */
let net1: string;
let net2: string;

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl kumo@test';

/** Root on the machine, as the instructor types it. */
async function kumo(...args: string[]): Promise<string> {
  const r = await w.env.cli(args);
  assert.equal(r.code, 0, `kumo ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** `kumo token create` prints the secret alone on stdout. */
const token = async (name: string, project: string, role: string) =>
  new ApiClient(w.base, (await kumo('token', 'create', `${w.env.prefix}-${name}`, '--project', project, '--role', role)).trim());

const instance = (name: string, networks: string[]) =>
  ({ name: `${w.env.prefix}-${name}`, image: 'stand', flavor: 'small', sshKeys: [KEY], networks, start: false });

/** A create's end: 'made', or the refusal's code and message (a 409 at once, or the operation's error). */
async function outcome(c: ApiClient, a: Answer): Promise<'made' | string> {
  if (a.status !== 202) return `${a.body.error.code} ${a.body.error.message}`;
  const op = await c.finished(a.body.operation.id, 300_000);
  return op.state === 'succeeded' ? 'made' : `${op.error.code} ${op.error.message}`;
}

/** A member makes its project's isolated network through the API. */
async function network(c: ApiClient, name: string): Promise<void> {
  const made = await c.call('POST', `${API}/networks`, { name, mode: 'isolated', cidr: `192.168.${await freeSubnet()}.0/24` });
  assert.ok(made.status === 201 || made.status === 202, JSON.stringify(made.body));
  if (made.status === 202) assert.equal((await c.finished(made.body.operation.id)).state, 'succeeded');
}

before(async () => {
  w = await openApiWorld('class');
  p1 = `${w.env.prefix}-p1`;
  p2 = `${w.env.prefix}-p2`;
  net1 = `${w.env.prefix}-n1`;
  net2 = `${w.env.prefix}-n2`;
  // A stand-in image: an empty 64 MiB disk (the instances here are never started). Root's images are public.
  const disk = join(w.env.home, 'stand.qcow2');
  await local.run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
  await kumo('image', 'import', 'stand', disk, '--os', 'stand-in');
  await kumo('project', 'create', p1, '--max-instances', '1');
  await kumo('project', 'create', p2);
  m1 = await token('m1', p1, 'member');
  r1 = await token('r1', p1, 'reader');
  m2 = await token('m2', p2, 'member');
});

after(async () => {
  for (const c of [m1, r1, m2]) c?.close();
  await closeApiWorld(w ?? {}, async (env) => {
    // Pass or fail: instances, the project's network, the tokens, then the (now empty) projects.
    await deleteMadeResources(env.ctx);
    for (const [n, p] of [[net1, p1], [net2, p2]] as const) {
      if (n) await new NetworkService(env.ctx, env.ctx.virsh, machineActor(p)).delete(n).catch(() => undefined);
    }
    for (const t of ['m1', 'r1', 'm2']) await env.cli(['token', 'revoke', `${env.prefix}-${t}`]).catch(() => undefined);
    for (const p of [p1, p2]) if (p) await env.cli(['project', 'delete', p]).catch(() => undefined);
  });
});

test('p1\'s member makes an instance through the API; the second is refused naming the quota, its limit and its use', async () => {
  await network(m1, net1);
  assert.equal(await outcome(m1, await m1.call('POST', `${API}/instances`, instance('a', [net1]))), 'made');
  const second = await outcome(m1, await m1.call('POST', `${API}/instances`, instance('b', [net1])));
  assert.match(second, new RegExp(`^QUOTA_EXCEEDED project ${p1} allows 1 instance and has 1 \\(quota instances\\)`));
  refused(await m1.call('GET', `${API}/instances/${w.env.prefix}-b`), 404, 'NOT_FOUND');
  const mine = await m1.call('GET', `${API}/instances`);
  assert.deepEqual(mine.body.map((i: { name: string }) => i.name), [`${w.env.prefix}-a`]);
});

test('p1\'s reader lists the instance but may not stop it (403 naming the role needed)', async () => {
  const listed = await r1.call('GET', `${API}/instances`);
  assert.equal(listed.status, 200);
  assert.deepEqual(listed.body.map((i: { name: string }) => i.name), [`${w.env.prefix}-a`]);
  const stop = await r1.call('POST', `${API}/instances/${w.env.prefix}-a/stop`, {});
  refused(stop, 403, 'FORBIDDEN');
  assert.match(stop.body.error.message, new RegExp(`needs the role member; token "${w.env.prefix}-r1" is a reader of project "${p1}"`));
  refused(await r1.call('DELETE', `${API}/instances/${w.env.prefix}-a`), 403, 'FORBIDDEN');
  assert.equal((await m1.call('GET', `${API}/instances/${w.env.prefix}-a`)).status, 200, 'still there');
});

test('p2\'s member sees nothing of p1 (404 in the words for a missing one) and cannot attach p1\'s network', async () => {
  assert.deepEqual((await m2.call('GET', `${API}/instances`)).body, []);
  assert.ok(!(await m2.call('GET', `${API}/networks`)).body.some((n: { name: string }) => n.name === net1), 'p1\'s network is not listed');

  // p1's resources read exactly like names that exist nowhere.
  const words = (a: Answer, name: string) => a.body.error.message.replaceAll(name, 'NAME');
  const theirs = await m2.call('GET', `${API}/instances/${w.env.prefix}-a`);
  const nowhere = await m2.call('GET', `${API}/instances/${w.env.prefix}-zz`);
  refused(theirs, 404, 'NOT_FOUND');
  refused(nowhere, 404, 'NOT_FOUND');
  assert.equal(words(theirs, `${w.env.prefix}-a`), words(nowhere, `${w.env.prefix}-zz`));
  refused(await m2.call('POST', `${API}/instances/${w.env.prefix}-a/stop`, {}), 404, 'NOT_FOUND');
  refused(await m2.call('GET', `${API}/projects/${p1}`), 404, 'NOT_FOUND');
  refused(await m2.call('GET', `${API}/instances?project=${p1}`), 404, 'NOT_FOUND');
  assert.deepEqual((await m2.call('GET', `${API}/projects`)).body.map((p: { name: string }) => p.name), [p2]);
  // p1's operations (its create) are not p2's to see either, listed or by id.
  const p1Ops = (await m1.call('GET', `${API}/operations`)).body as { id: string; project?: string }[];
  assert.ok(p1Ops.length > 0 && p1Ops.every((o) => o.project === p1), 'p1\'s member sees its project\'s operations');
  assert.deepEqual((await m2.call('GET', `${API}/operations`)).body.filter((o: { project?: string }) => o.project === p1), []);
  refused(await m2.call('GET', `${API}/operations/${p1Ops[0]!.id}`), 404, 'NOT_FOUND');

  const attach = await outcome(m2, await m2.call('POST', `${API}/instances`, instance('x', [net1])));
  const ghost = await outcome(m2, await m2.call('POST', `${API}/instances`, instance('y', [`${w.env.prefix}-n9`])));
  assert.match(attach, /^NOT_FOUND /);
  assert.equal(attach.replaceAll(net1, 'NET').replaceAll(`${w.env.prefix}-x`, 'I'), ghost.replaceAll(`${w.env.prefix}-n9`, 'NET').replaceAll(`${w.env.prefix}-y`, 'I'));
  assert.deepEqual((await m2.call('GET', `${API}/instances`)).body, [], 'nothing was made in p2');
});

test('two concurrent creates in a project with room for one end with exactly one instance', async () => {
  await kumo('project', 'set', p2, '--max-instances', '1');
  await network(m2, net2);
  // The event streams: p2's member follows its creates; p1's member sees none of p2's operations.
  const [own, p1Stream] = [await m2.openEvents(), await m1.openEvents()];
  const answers = await Promise.all([m2.call('POST', `${API}/instances`, instance('c1', [net2])), m2.call('POST', `${API}/instances`, instance('c2', [net2]))]);
  const ends = await Promise.all(answers.map((a) => outcome(m2, a)));
  assert.equal(ends.filter((e) => e === 'made').length, 1, JSON.stringify(ends));
  assert.match(ends.find((e) => e !== 'made')!, new RegExp(`^QUOTA_EXCEEDED project ${p2} allows 1 instance and has 1`));
  const listed = (await m2.call('GET', `${API}/instances`)).body.map((i: { name: string }) => i.name);
  assert.equal(listed.length, 1);
  // The refused create left nothing behind: no record, no domain.
  const other = [`${w.env.prefix}-c1`, `${w.env.prefix}-c2`].find((n) => n !== listed[0])!;
  refused(await m2.call('GET', `${API}/instances/${other}`), 404, 'NOT_FOUND');
  assert.equal(await w.env.ctx.virsh.domainState(other), 'missing');
  assert.equal((await m2.call('GET', `${API}/projects/${p2}`)).body.use.instances, 1);
  const p2Op = (e: SseEvent) => e.event === 'operation' && e.data.operation?.project === p2 && e.data.operation.state !== 'running';
  await own.until('p2\'s member sees its create end', p2Op, 30_000);
  assert.deepEqual(p1Stream.events.filter((e) => e.event === 'operation' && e.data.operation?.project !== p1), [], 'p1\'s member saw another project\'s operation');
});

test('the dashboard\'s data: p1\'s member and reader read p1\'s use against its caps', async () => {
  for (const c of [m1, r1]) {
    const shown = await c.call('GET', `${API}/projects/${p1}`);
    assert.equal(shown.status, 200);
    assert.deepEqual(shown.body.limits, { instances: 1 });
    assert.equal(shown.body.use.instances, 1);
    assert.equal(shown.body.use.vcpus, 1);
    assert.equal(shown.body.use.networks, 1);
    assert.deepEqual((await c.call('GET', `${API}/projects`)).body.map((p: { name: string }) => p.name), [p1]);
  }
  // And root sees the same on the machine.
  assert.match(await kumo('project', 'show', p1), /instances\s+1\s+1/);
});
