import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { SnapshotService } from '../../src/service/snapshots.js';
import { NetworkService } from '../../src/service/networks.js';
import { Virsh } from '../../src/drivers/libvirt/virsh.js';
import { API, closeApiWorld, deleteMadeResources, openApiWorld, refused, type ApiWorld } from '../helpers/api.js';

/**
 * Attack: names that libvirt's lookups could mistake, and domains that took a kumo instance's
 * name over. virsh tries a name as a domain ID, then as a UUID, then as a name: kumo refuses
 * names of those shapes (API 400, CLI exit 2) and finds its own domains by their UUID, so a
 * domain it did not make is never started, snapshotted, destroyed or undefined by it.
 */

const URI = 'qemu:///system';
const virsh = new Virsh(URI);
let w: ApiWorld;
/** UUIDs of the domains this test defines itself behind kumo's back, removed pass or fail. */
const foreign: string[] = [];

before(async () => {
  w = await openApiWorld('nam');
  await new ImageService(w.env.ctx).buildTiny();
});

after(async () => {
  for (const uuid of foreign) await virsh.removeDomain(uuid).catch(() => undefined);
  await closeApiWorld(w, (env) => deleteMadeResources(env.ctx));
  const left = (await virsh.listDomains()).filter((d) => foreign.includes(d.uuid));
  assert.deepEqual(left, [], 'a domain of this test is left behind');
});

/** A bare domain kumo did not make: no disk, 32 MiB, defined (not started) under `name` with `uuid`. */
async function defineForeign(name: string, uuid = randomUUID()): Promise<string> {
  foreign.push(uuid);
  await virsh.runWithXml(
    `<domain type='qemu'><name>${name}</name><uuid>${uuid}</uuid><memory unit='MiB'>32</memory><vcpu>1</vcpu>` +
    "<os><type arch='x86_64'>hvm</type></os></domain>",
    (file) => ['define', file],
  );
  return uuid;
}

const stateOf = async (uuid: string) => virsh.domainState(uuid);

test('all-digit and UUID-shaped names are refused: API 400 naming the rule, CLI exit 2, nothing made', async () => {
  const { env, client } = w;
  for (const name of ['42', randomUUID(), randomUUID().toUpperCase()]) {
    const a = await client.call('POST', `${API}/instances`, { name, image: 'tiny', flavor: 'small', password: 'x', networks: [env.network] });
    refused(a, 400, 'INVALID_INPUT');
    assert.match(a.body.error.message, /is not allowed: it (is all digits|has the shape of a UUID)/, name);
    const n = await client.call('POST', `${API}/networks`, { name, mode: 'isolated', cidr: '192.168.77.0/24' });
    refused(n, 400, 'INVALID_INPUT');
  }
  const cli = await env.cli(['instance', 'create', '7', '--image', 'tiny', '--flavor', 'small', '--password', 'x', '--network', env.network]);
  assert.equal(cli.code, 2, cli.stderr);
  assert.match(cli.stderr, /instance name "7" is not allowed: it is all digits/);
  assert.deepEqual(env.ctx.instances.list(), []);
  assert.deepEqual((await new NetworkService(env.ctx).list()).filter((x) => /^\d+$|^[0-9a-f-]{36}$/i.test(x.name)), []);
});

test('a domain that took a kumo instance\'s name over is left alone: start, snapshot, destroy and delete reach only kumo\'s own domain', async () => {
  const { env } = w;
  const svc = new InstanceService(env.ctx);
  const name = `${env.prefix}-a`;
  const made = await svc.create({ name, image: 'tiny', flavor: 'small', password: 'x', networks: [env.network], start: false });
  assert.equal(made.state, 'shut off');
  const ours = env.ctx.instances.get(name)!.uuid;
  // Someone removes kumo's domain and defines their own under the same name.
  await virsh.run(['undefine', '--nvram', ours]);
  const theirs = await defineForeign(name);

  const seen = await svc.get(name);
  assert.equal(seen.state, 'missing', 'kumo does not take the namesake for its own');
  assert.ok(seen.drift.some((d) => d.includes(`has uuid ${theirs}`) && d.includes('replaced behind kumo\'s back')), seen.drift.join('; '));
  assert.equal((await svc.list()).find((i) => i.name === name)?.state, 'missing');

  await assert.rejects(svc.start(name), (e: Error & { code?: string }) => e.code === 'NOT_FOUND');
  assert.equal(await stateOf(theirs), 'shut off', 'start did not start their domain');
  await assert.rejects(new SnapshotService(env.ctx).create(name, 'snap1'), (e: Error & { code?: string }) => e.code === 'NOT_FOUND');
  assert.equal((await virsh.run(['snapshot-list', theirs, '--name'])).trim(), '', 'no snapshot was taken of their domain');
  await assert.rejects(svc.destroy(name), (e: Error & { code?: string }) => e.code === 'NOT_FOUND');

  await svc.delete(name);
  assert.equal(env.ctx.instances.get(name), undefined, 'kumo forgot its own instance');
  assert.equal(await stateOf(theirs), 'shut off', 'delete did not undefine their domain');
});

test('a running domain named like a kumo instance is never destroyed by kumo acting on its own instance', async () => {
  const { env } = w;
  const svc = new InstanceService(env.ctx);
  const name = `${env.prefix}-b`;
  await svc.create({ name, image: 'tiny', flavor: 'small', password: 'x', networks: [env.network], start: false });
  const ours = env.ctx.instances.get(name)!.uuid;
  // kumo's domain is renamed away (still kumo's: same UUID) and another takes the name and runs.
  await virsh.run(['domrename', ours, `${env.prefix}-moved`]);
  const theirs = await defineForeign(name);
  await virsh.run(['start', theirs]);
  assert.equal(await stateOf(theirs), 'running');

  assert.equal(await svc.start(name), true);
  assert.equal(await stateOf(ours), 'running', 'kumo started its own domain, found by UUID under any name');
  await svc.destroy(name);
  assert.equal(await stateOf(ours), 'shut off');
  assert.equal(await stateOf(theirs), 'running', 'their domain kept running');
  await svc.delete(name);
  assert.equal(await stateOf(ours), 'missing', 'kumo removed its own domain');
  assert.equal(await stateOf(theirs), 'running', 'and only its own');
});
