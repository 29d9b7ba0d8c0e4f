import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import { removeHypervisor } from '../helpers/lab.js';
import { needsKvmMask } from '../../src/drivers/host/accel-probe.js';
import { Virsh } from '../../src/drivers/libvirt/virsh.js';
import { daemonPids, restartLibvirtd, startLibvirtd, type NamespacedLibvirtd } from '../../src/drivers/daemons/libvirtd/namespace.js';
import { LibvirtRpc } from '../../bench/libvirt-rpc/client.js';
import { LIFECYCLE_EVENT_NAMES, type LifecycleEvent } from '../../bench/libvirt-rpc/protocol.js';

/**
 * The remote-protocol prototype (bench/libvirt-rpc/, docs/decisions.md "How kumo talks to
 * libvirt") against a real libvirtd of the test's own: the procedure numbers and layouts it
 * uses are the daemon's, its answers agree with virsh's, events carry the domain's UUID, and a
 * daemon that dies fails calls instead of leaving them hanging. Never the machine's own libvirtd.
 */
let env: TestEnv;
let stateDir: string;
let lab: NamespacedLibvirtd | undefined;
let rpc: LibvirtRpc | undefined;

const idleXml = (name: string) => `<domain type='qemu'><name>${name}</name><memory unit='MiB'>16</memory>` +
  `<os><type arch='x86_64'>hvm</type></os><features><acpi/></features><devices><disk type='file' device='disk'>` +
  `<source file='/nonexistent/${name}.qcow2'/><target dev='vda' bus='virtio'/></disk></devices></domain>`;
/** No disk: QEMU starts and sits in its firmware, a real running guest for start/destroy. */
const runnerXml = (name: string) => `<domain type='qemu'><name>${name}</name><memory unit='MiB'>32</memory>` +
  `<os><type arch='x86_64'>hvm</type></os><features><acpi/></features><devices></devices></domain>`;

before(async () => {
  env = await makeTestEnv('rpc');
  stateDir = await mkdtemp(`/tmp/kumo-lab-${env.prefix}-`);
  lab = await startLibvirtd({ name: `${env.prefix}-lv`, stateDir, maskKvm: needsKvmMask(await env.ctx.accel()) });
  rpc = await LibvirtRpc.open(lab.socket, 'qemu:///system');
});

after(async () => {
  await rpc?.close();
  await removeHypervisor(lab, stateDir);
  await env?.cleanup();
});

test('remote protocol: define, list with states, one state, XML and undefine agree with virsh; a missing domain is libvirt\'s error', async () => {
  const names = [1, 2, 3].map((i) => `${env.prefix}-d${i}`);
  const defined = [];
  for (const n of names) defined.push(await rpc!.define(idleXml(n)));
  const listed = await rpc!.listAllWithState();
  assert.deepEqual(listed.map((d) => [d.dom.name, d.dom.uuid, d.state]).sort(),
    defined.map((d) => [d.name, d.uuid, 'shut off']).sort());
  assert.deepEqual((await rpc!.listAll()).map((d) => d.uuid).sort(), defined.map((d) => d.uuid).sort());
  const viaVirsh = await new Virsh(lab!.uri).listDomains();
  assert.deepEqual(viaVirsh.map((d) => [d.name, d.uuid, d.state]).sort(), listed.map((d) => [d.dom.name, d.dom.uuid, d.state]).sort(),
    'the protocol and virsh see the same domains, UUIDs and states');
  const first = defined[0]!;
  assert.equal(await rpc!.state(first), 'shut off');
  assert.match(await rpc!.xml(first), new RegExp(`<uuid>${first.uuid}</uuid>`));
  assert.deepEqual(await rpc!.lookupByName(first.name), first);
  for (const d of defined) await rpc!.undefine(d);
  await assert.rejects(rpc!.state(first), /libvirt: Domain not found/);
  assert.deepEqual(await rpc!.listAll(), []);
});

test('remote protocol: lifecycle events from another client arrive with the domain\'s UUID (define, start, destroy, undefine)', async () => {
  const seen: LifecycleEvent[] = [];
  await rpc!.onLifecycle((e) => seen.push(e));
  const other = new Virsh(lab!.uri); // another client, as an operator's virsh would be
  const name = `${env.prefix}-run`;
  const expect = (event: string) => waitFor(`${event} event for ${name}`,
    async () => seen.find((e) => e.dom.name === name && LIFECYCLE_EVENT_NAMES[e.event] === event), 30_000);
  await other.defineDomain(runnerXml(name));
  const defined = await expect('Defined');
  assert.equal((await other.listDomains()).find((d) => d.name === name)?.uuid, defined.dom.uuid);
  await other.start(name);
  await expect('Started');
  await other.destroy(name);
  const stopped = await expect('Stopped');
  assert.equal(stopped.detail, 1, 'Stopped, detail Destroyed (VIR_DOMAIN_EVENT_STOPPED_DESTROYED)');
  await other.removeDomain(name);
  assert.equal((await expect('Undefined')).dom.uuid, defined.dom.uuid);
});

test('remote protocol: a libvirtd that dies fails the calls on its connection at once; a new connection after its restart reads again', async () => {
  await rpc!.define(idleXml(`${env.prefix}-keep`));
  const pids = await daemonPids(stateDir);
  process.kill(pids.libvirtd!, 'SIGKILL');
  const started = Date.now();
  await assert.rejects(rpc!.listAll(), /lost the connection to libvirtd/);
  await assert.rejects(rpc!.listAll(), /lost the connection to libvirtd/);
  assert.ok(Date.now() - started < 10_000, 'the calls failed instead of waiting for their timeout');
  await restartLibvirtd(stateDir);
  await rpc!.close();
  rpc = await LibvirtRpc.open(lab!.socket, 'qemu:///system');
  assert.deepEqual((await rpc.listAllWithState()).map((d) => [d.dom.name, d.state]), [[`${env.prefix}-keep`, 'shut off']]);
});
