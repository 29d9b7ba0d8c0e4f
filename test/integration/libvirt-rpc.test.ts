import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import { removeHypervisor } from '../helpers/lab.js';
import { needsKvmMask } from '../../src/drivers/host/accel-probe.js';
import { Virsh } from '../../src/drivers/libvirt/virsh.js';
import { daemonPids, restartLibvirtd, startLibvirtd, type NamespacedLibvirtd } from '../../src/drivers/daemons/libvirtd/namespace.js';
import { LibvirtConnection, type LifecycleSubscriber } from '../../src/drivers/libvirt/rpc/connection.js';
import { defineDomain, domainState, domainXml, listAll, listAllWithState, lookupByName, undefineDomain } from '../../src/drivers/libvirt/rpc/domains.js';
import { LibvirtRefusal } from '../../src/drivers/libvirt/rpc/errors.js';
import { LIFECYCLE_EVENT_NAMES, Proc, VIR_ERR_NO_DOMAIN, type LifecycleEvent } from '../../src/drivers/libvirt/rpc/protocol.js';
import { KumoError } from '../../src/model/errors.js';

/**
 * kumo's libvirt protocol driver (src/drivers/libvirt/rpc/, docs/decisions.md "How kumo talks to
 * libvirt") against a real libvirtd of the test's own, never the machine's: the procedure
 * numbers and layouts are the daemon's, answers agree with virsh, events carry the domain's
 * UUID; a SIGKILLed daemon fails calls at once and, once restarted, is reconnected to by itself
 * with the events registered again and a resync signal; a SIGSTOPped one fails calls within the
 * bounded time (keepalive, call timeout) instead of hanging.
 */
let env: TestEnv;
let stateDir: string;
let lab: NamespacedLibvirtd | undefined;
let conn: LibvirtConnection | undefined;
const seen: LifecycleEvent[] = [];
const signals: string[] = [];

const CALL_TIMEOUT_MS = 4_000;
const KEEPALIVE = { keepaliveIntervalMs: 500, keepaliveCount: 3 };

const idleXml = (name: string) => `<domain type='qemu'><name>${name}</name><memory unit='MiB'>16</memory>` +
  `<os><type arch='x86_64'>hvm</type></os><features><acpi/></features><devices><disk type='file' device='disk'>` +
  `<source file='/nonexistent/${name}.qcow2'/><target dev='vda' bus='virtio'/></disk></devices></domain>`;
/** No disk: QEMU starts and sits in its firmware, a real running guest for start/destroy. */
const runnerXml = (name: string) => `<domain type='qemu'><name>${name}</name><memory unit='MiB'>32</memory>` +
  `<os><type arch='x86_64'>hvm</type></os><features><acpi/></features><devices></devices></domain>`;

const subscriber: LifecycleSubscriber = {
  event: (e) => seen.push(e),
  resync: () => signals.push('resync'),
  lost: (e) => signals.push(`lost: ${e.message}`),
};
const expectEvent = (name: string, event: string) => waitFor(`${event} event for ${name}`,
  async () => seen.find((e) => e.dom.name === name && LIFECYCLE_EVENT_NAMES[e.event] === event), 30_000);

before(async () => {
  env = await makeTestEnv('rpc');
  stateDir = await mkdtemp(`/tmp/kumo-lab-${env.prefix}-`);
  lab = await startLibvirtd({ name: `${env.prefix}-lv`, stateDir, maskKvm: needsKvmMask(await env.ctx.accel()) });
  conn = new LibvirtConnection(lab.uri, { callTimeoutMs: CALL_TIMEOUT_MS, backoffMs: [200, 1_000], ...KEEPALIVE });
  await conn.subscribeLifecycle(subscriber);
});

after(async () => {
  const pid = lab ? (await daemonPids(stateDir).catch(() => ({ libvirtd: undefined }))).libvirtd : undefined;
  if (pid !== undefined) try { process.kill(pid, 'SIGCONT'); } catch { /* gone already */ }
  await conn?.close();
  await removeHypervisor(lab, stateDir);
  await env?.cleanup();
});

test('protocol driver: define, list with states, one state, XML and undefine agree with virsh; a missing domain is libvirt\'s error number', async () => {
  const names = [1, 2, 3].map((i) => `${env.prefix}-d${i}`);
  const defined = [];
  for (const n of names) defined.push(await defineDomain(conn!, idleXml(n)));
  const listed = await listAllWithState(conn!);
  assert.deepEqual(listed.map((d) => [d.dom.name, d.dom.uuid, d.state]).sort(), defined.map((d) => [d.name, d.uuid, 'shut off']).sort());
  assert.deepEqual((await listAll(conn!)).map((d) => d.uuid).sort(), defined.map((d) => d.uuid).sort());
  const viaVirsh = await new Virsh(lab!.uri).listDomains();
  assert.deepEqual(viaVirsh.map((d) => [d.name, d.uuid, d.state]).sort(), listed.map((d) => [d.dom.name, d.dom.uuid, d.state]).sort(),
    'the protocol and virsh see the same domains, UUIDs and states');
  const first = defined[0]!;
  assert.equal(await domainState(conn!, first), 'shut off');
  assert.match(await domainXml(conn!, first), new RegExp(`<uuid>${first.uuid}</uuid>`));
  assert.deepEqual(await lookupByName(conn!, first.name), first);
  for (const d of defined) await undefineDomain(conn!, d);
  const missing = await domainState(conn!, first).then(() => undefined, (e: unknown) => e);
  assert.ok(missing instanceof LibvirtRefusal && missing.remote.code === VIR_ERR_NO_DOMAIN, String(missing));
  assert.deepEqual(await listAll(conn!), []);
  // The event procedures' numbers are the daemon's: a registration is removed once, then refused.
  // (A second connection: libvirt takes one lifecycle registration per connection.)
  const second = new LibvirtConnection(lab!.uri, { callTimeoutMs: CALL_TIMEOUT_MS });
  try {
    const id = (await second.call(Proc.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY, (w) => w.int(0).uint(0))).int();
    await second.call(Proc.CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY, (w) => w.int(id));
    await assert.rejects(second.call(Proc.CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY, (w) => w.int(id)), LibvirtRefusal);
  } finally {
    await second.close();
  }
});

test('protocol driver: lifecycle events from another client arrive with the domain\'s UUID (define, start, destroy, undefine)', async () => {
  const other = new Virsh(lab!.uri); // another client, as an operator's virsh would be
  const name = `${env.prefix}-run`;
  await other.defineDomain(runnerXml(name));
  const defined = await expectEvent(name, 'Defined');
  assert.equal((await other.listDomains()).find((d) => d.name === name)?.uuid, defined.dom.uuid);
  await other.start(name);
  await expectEvent(name, 'Started');
  await other.destroy(name);
  assert.equal((await expectEvent(name, 'Stopped')).detail, 1, 'Stopped, detail Destroyed (VIR_DOMAIN_EVENT_STOPPED_DESTROYED)');
  await other.removeDomain(name);
  assert.equal((await expectEvent(name, 'Undefined')).dom.uuid, defined.dom.uuid);
});

test('protocol driver: SIGKILL of libvirtd fails calls at once with the URI and the fix; after a restart calls work again and events resume after a resync', async () => {
  await defineDomain(conn!, idleXml(`${env.prefix}-keep`));
  process.kill((await daemonPids(stateDir)).libvirtd!, 'SIGKILL');
  const started = Date.now();
  const down = await listAll(conn!).then(() => undefined, (e: unknown) => e);
  assert.ok(down instanceof KumoError && down.code === 'LIBVIRT_ERROR', String(down));
  assert.match(down.message, new RegExp(`^libvirt at ${lab!.uri.replace(/[?+]/g, '\\$&')} does not answer \\(.*libvirtd (not running|stopped or restarted)\\?\\)$`));
  assert.match(down.fix ?? '', /libvirtd -d/);
  await assert.rejects(listAll(conn!), /does not answer/);
  assert.ok(Date.now() - started < 2_000, 'the calls failed at once instead of waiting for their timeout');
  await waitFor('the lost signal', async () => signals.find((s) => s.startsWith('lost:')), 5_000);

  await restartLibvirtd(stateDir);
  await waitFor('the resync signal', async () => (signals.includes('resync') ? true : undefined), 15_000);
  assert.deepEqual((await listAllWithState(conn!)).map((d) => [d.dom.name, d.state]), [[`${env.prefix}-keep`, 'shut off']],
    'the next call works without the caller doing anything');
  const name = `${env.prefix}-after`;
  await new Virsh(lab!.uri).defineDomain(idleXml(name));
  await expectEvent(name, 'Defined'); // the events were registered again on the new connection
});

test('protocol driver: a SIGSTOPped libvirtd fails calls with a clear error within the bounded time, and works again after SIGCONT', async () => {
  const pid = (await daemonPids(stateDir)).libvirtd!;
  assert.ok(await listAll(conn!));
  process.kill(pid, 'SIGSTOP');
  try {
    const bound = KEEPALIVE.keepaliveIntervalMs * (KEEPALIVE.keepaliveCount + 1) + CALL_TIMEOUT_MS;
    for (const attempt of ['in flight', 'next']) {
      const started = Date.now();
      const e = await listAll(conn!).then(() => undefined, (x: unknown) => x);
      assert.ok(e instanceof KumoError && ['LIBVIRT_ERROR', 'TIMEOUT'].includes(e.code), `${attempt}: ${String(e)}`);
      assert.match(e.message, /^libvirt at .* (does not answer \(.*(keepalive|no connection).*\)|did not answer [A-Z_]+ within [\d.]+ s)$/, attempt);
      assert.ok(Date.now() - started <= bound + 1_000, `${attempt}: failed within ${bound} ms, took ${Date.now() - started}`);
    }
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  await waitFor('a call after SIGCONT', async () => (await listAll(conn!).catch(() => undefined)) ? true : undefined, 30_000);
});
