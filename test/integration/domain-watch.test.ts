import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { API, closeApiWorld, openApiWorld, type ApiWorld } from '../helpers/api.js';
import { waitFor } from '../helpers/env.js';
import { removeHypervisor } from '../helpers/lab.js';
import { needsKvmMask } from '../../src/drivers/host/accel-probe.js';
import { Virsh } from '../../src/drivers/libvirt/virsh.js';
import { daemonPids, restartLibvirtd, startLibvirtd, type NamespacedLibvirtd } from '../../src/drivers/daemons/libvirtd/namespace.js';

/**
 * The API server's observed state (service/domain-watch.ts) against a real libvirtd of the
 * test's own (namespaced, never the machine's): a `virsh destroy` behind kumo's back shows in
 * the API's list as "shut off" from the lifecycle event (stateSource "events"), and is published
 * on /events for the dashboard; SIGKILL of that libvirtd makes the host's instances unknown
 * (asked, and "does not answer"), and after its restart the host resynchronises to the real
 * state, including a guest started behind kumo's back around the restart.
 */
let w: ApiWorld | undefined;
let stateDir: string | undefined;
let lab: NamespacedLibvirtd | undefined;
let name = '';
let uuid = '';
let host = '';

/** No disk: QEMU starts and sits in its firmware, a real running guest at the least cost. */
const runnerXml = (n: string) => `<domain type='qemu'><name>${n}</name><memory unit='MiB'>32</memory>` +
  `<os><type arch='x86_64'>hvm</type></os><features><acpi/></features><devices></devices></domain>`;

interface Listed { name: string; state: string; stateSource: string; observedAt: string; drift: string[] }
const mine = async (): Promise<Listed> => {
  const a = await w!.client.call('GET', `${API}/instances`);
  assert.equal(a.status, 200);
  const i = (a.body as Listed[]).find((x) => x.name === name);
  assert.ok(i, 'the instance is listed');
  return i;
};
const until = (what: string, ok: (i: Listed) => boolean, ms = 60_000) => waitFor(what, async () => {
  const i = await mine();
  return ok(i) ? i : undefined;
}, ms);

before(async () => {
  w = await openApiWorld('watch');
  const { env } = w;
  stateDir = await mkdtemp(`/tmp/kumo-lab-${env.prefix}-`);
  lab = await startLibvirtd({ name: `${env.prefix}-lv`, stateDir, maskKvm: needsKvmMask(await env.ctx.accel()) });
  host = `${env.prefix}-kvm`;
  env.ctx.hosts.insert({ name: host, uri: lab.uri, roles: ['hypervisor'], shell: { kind: 'local' }, createdAt: new Date().toISOString() });
  // A guest made behind kumo's back, then recorded as an instance: what the list reports is libvirt's.
  name = `${env.prefix}-g1`;
  const theirs = new Virsh(lab.uri);
  await theirs.defineDomain(runnerXml(name));
  uuid = (await theirs.listDomains()).find((d) => d.name === name)!.uuid;
  await theirs.start(uuid);
  env.ctx.images.upsert({ name: `${env.prefix}-img`, os: 'stand-in', disk: join(env.home, 'img.qcow2'), format: 'qcow2', virtualSizeBytes: 1 << 30, source: 'test', createdAt: new Date().toISOString() });
  env.ctx.instances.insert({ name, uuid, host, image: `${env.prefix}-img`, vcpus: 1, ramMiB: 32, diskGiB: 1, networks: [], nics: [], dataDisks: [], sshKeys: [], createdAt: new Date().toISOString(), project: 'default' });
});

after(async () => {
  if (w) w.env.ctx.instances.delete(name);
  const pid = stateDir ? (await daemonPids(stateDir).catch(() => ({ libvirtd: undefined }))).libvirtd : undefined;
  if (pid === undefined && stateDir) await restartLibvirtd(stateDir).catch(() => undefined); // to remove its guests
  await closeApiWorld(w ?? {}, async () => removeHypervisor(lab, stateDir));
});

test('events: a virsh destroy behind kumo\'s back shows as shut off from the event, not from asking libvirt, and reaches /events', async () => {
  // The first read asks and starts following the host; then its listing makes it fresh.
  await until('the host followed', (i) => i.state === 'running' && i.stateSource !== 'asked');
  const events = await w!.client.openEvents();
  const before = Date.now();
  await new Virsh(lab!.uri).destroy(uuid);
  const shown = await until('shut off in the list', (i) => i.state === 'shut off');
  assert.equal(shown.stateSource, 'events', 'the state came from the lifecycle event');
  assert.ok(Date.parse(shown.observedAt) >= before - 1_000, 'observedAt is the event\'s time');
  await events.until('the dashboard\'s resource event', (e) => e.event === 'resource' && e.data.resource === 'instance' && e.data.name === name && e.data.action === 'state', 10_000);
  const one = await w!.client.call('GET', `${API}/instances/${name}`);
  assert.deepEqual([one.body.state, one.body.stateSource], ['shut off', 'events'], 'show answers from the same');
});

test('events: a killed libvirtd makes its instances unknown; after its restart the host resynchronises, a guest started meanwhile shows running', async () => {
  process.kill((await daemonPids(stateDir!)).libvirtd!, 'SIGKILL');
  const lost = await until('unknown while libvirtd is dead', (i) => i.state === 'unknown');
  assert.equal(lost.stateSource, 'asked', 'no stale answer from memory');
  assert.match(lost.drift[0] ?? '', /does not answer/);
  await restartLibvirtd(stateDir!);
  // Behind kumo's back, right after the restart: before or after kumo's reconnect, the answer must end up right.
  await new Virsh(lab!.uri).start(uuid);
  const back = await until('running after the resync', (i) => i.state === 'running' && i.stateSource !== 'asked');
  assert.ok(['listing', 'events'].includes(back.stateSource));
  await new Virsh(lab!.uri).destroy(uuid);
  const after = await until('events flow again after the reconnect', (i) => i.state === 'shut off');
  assert.equal(after.stateSource, 'events');
});
