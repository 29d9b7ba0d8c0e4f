import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { waitFor, type TestEnv } from '../helpers/env.js';
import { removeHypervisor, startSecondHypervisor } from '../helpers/lab.js';
import { API, ApiClient, closeApiWorld, deleteMadeResources, openApiWorld, refused, type TestApi } from '../helpers/api.js';
import { HostService } from '../../src/service/host.js';
import { Virsh } from '../../src/drivers/libvirt/virsh.js';
import type { NamespacedLibvirtd } from '../../src/drivers/daemons/libvirtd/namespace.js';
import { local } from '../../src/exec/exec.js';

/**
 * The REST API with a real instance, in-process on 127.0.0.1:0 over a test's own KUMO_HOME: the
 * tiny image built as an operation, an instance created (202, Server-Sent Events until it runs),
 * acted on, given a volume, snapshots and a larger disk, served by a storage and an lb node,
 * live-migrated to a second libvirtd and deleted. The tests run in order: each one takes the
 * instance as the one before left it.
 */

let env: TestEnv;
let api: TestApi | undefined;
let client: ApiClient;
let base: string;
let token: string;
let stateDir: string | undefined;
let lab: NamespacedLibvirtd | undefined;

const inst = () => `${env.prefix}-a`;
const kvm2 = () => `${env.prefix}-kvm2`;
/** Network namespaces this run made for its storage and lb hosts (their daemons run inside). */
const namespaces: string[] = [];

before(async () => {
  ({ env, api, base, token, client } = await openApiWorld('api'));
});

// Pass or fail: streams, server, the instance wherever it is, the second daemon, the test's world.
after(() => closeApiWorld({ env, api, client }, async () => {
  await deleteMadeResources(env.ctx);
  // Anything still running in this run's namespaces was started by this run: end it, or the namespace outlives `ip netns del`.
  for (const n of namespaces) {
    const pids = (await local.run('ip', ['netns', 'pids', n], { allowFailure: true })).stdout.split('\n').map(Number).filter((p) => p > 1);
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone already */ } }
  }
  await removeHypervisor(lab, stateDir);
}));

const call = (...a: Parameters<ApiClient['call']>) => client.call(...a);
const finished = (...a: Parameters<ApiClient['finished']>) => client.finished(...a);
const openEvents = (...a: Parameters<ApiClient['openEvents']>) => client.openEvents(...a);

/** A network namespace of this run, with its loopback up: a storage or lb node on this machine. */
async function node(label: string): Promise<string> {
  const ns = `${env.prefix}-${label}`;
  await local.run('ip', ['netns', 'add', ns]);
  namespaces.push(ns);
  await local.run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  return ns;
}

test('images: build tiny as an operation, list, show; 400 naming the field, 404', async () => {
  refused(await call('POST', `${API}/images/build`, { recipe: 'centos' }), 400, 'INVALID_INPUT', ['body.recipe']);
  const started = await call('POST', `${API}/images/build`, { recipe: 'tiny' });
  assert.equal(started.status, 202);
  assert.equal(started.headers.get('location'), `${API}/operations/${started.body.operation.id}`);
  const op = await finished(started.body.operation.id, 900_000);
  assert.equal(op.state, 'succeeded', JSON.stringify(op.error));
  assert.equal(op.kind, 'image.build');
  assert.equal(op.result.image.name, 'tiny');
  const list = await call('GET', `${API}/images`);
  assert.deepEqual(list.body.map((i: { name: string }) => i.name), ['tiny']);
  const tiny = await call('GET', `${API}/images/tiny`);
  assert.equal(tiny.status, 200);
  assert.equal(tiny.body.format, 'qcow2');
  assert.ok(tiny.body.kernel);
  refused(await call('GET', `${API}/images/nope`), 404, 'NOT_FOUND');
  refused(await call('DELETE', `${API}/images/nope`), 404, 'NOT_FOUND');
});

test('instance create: bad input is refused at once (400 naming the field, 404, 409), with no operation started', async () => {
  const ok = { name: inst(), image: 'tiny', flavor: 'small', password: 'pw', networks: [env.network] };
  const before = (await call('GET', `${API}/operations`)).body.length;
  refused(await call('POST', `${API}/instances`, { ...ok, image: undefined }), 400, 'INVALID_INPUT', ['body.image']);
  refused(await call('POST', `${API}/instances`, { ...ok, vcpus: 'x' }), 400, 'INVALID_INPUT', ['body.vcpus']);
  refused(await call('POST', `${API}/instances`, { ...ok, dataDisks: [5, 0] }), 400, 'INVALID_INPUT', ['body.dataDisks.1']);
  refused(await call('POST', `${API}/instances`, { ...ok, ram: 512 }), 400, 'INVALID_INPUT', ['body.ram']);
  refused(await call('POST', `${API}/instances`, { ...ok, networks: 'default' }), 400, 'INVALID_INPUT', ['body.networks']);
  refused(await call('POST', `${API}/instances`, { ...ok, name: 'no_underscores' }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/instances`, { ...ok, password: undefined }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/instances`, { ...ok, sshKeys: ['not a key'] }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/instances`, { ...ok, image: 'nope' }), 404, 'NOT_FOUND');
  refused(await call('POST', `${API}/instances`, { ...ok, flavor: 'nope' }), 404, 'NOT_FOUND');
  refused(await call('POST', `${API}/instances`, { ...ok, host: 'nope' }), 404, 'NOT_FOUND');
  assert.equal((await call('GET', `${API}/operations`)).body.length, before);
  assert.deepEqual(env.ctx.instances.list(), []);
});

test('instance create through the API: 202 with an operation, its progress on Server-Sent Events until the guest runs', async () => {
  const events = await openEvents();
  const started = await call('POST', `${API}/instances`, {
    name: inst(), image: 'tiny', flavor: 'small', password: 'pw', networks: [env.network], wait: true,
  });
  assert.equal(started.status, 202, JSON.stringify(started.body));
  const id: string = started.body.operation.id;
  assert.equal(started.body.operation.state, 'running');
  assert.equal(started.body.operation.kind, 'instance.create');
  assert.equal(started.headers.get('location'), `${API}/operations/${id}`);

  const end = await events.until('the create operation to finish',
    (e) => e.event === 'operation' && e.data.operation.id === id && e.data.operation.state !== 'running');
  assert.equal(end.data.operation.state, 'succeeded', JSON.stringify(end.data.operation.error));
  const mine = events.events.filter((e) => e.event === 'operation' && e.data.operation.id === id);
  const steps = mine.map((e) => e.data.operation.step).filter(Boolean);
  for (const s of ['disk', 'seed', 'define', 'start', 'boot']) assert.ok(steps.includes(s), `step ${s} in ${steps.join(', ')}`);
  const seqs: number[] = mine.map((e) => e.data.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'event sequence numbers increase');
  assert.ok(mine.every((e) => e.id === `${mine[0]!.id.split('-')[0]}-${e.data.seq}`), 'ids are "<run>-<seq>"');
  assert.equal(end.data.operation.result.state, 'running');

  // A client that reconnects with Last-Event-ID gets what it missed.
  const again = await openEvents({ 'last-event-id': mine[0]!.id.replace(/-\d+$/, `-${seqs[0]! - 1}`) });
  await again.until('the replayed finish', (e) => e.id === end.id, 30_000);
  again.close();

  const op = await call('GET', `${API}/operations/${id}`);
  assert.equal(op.body.state, 'succeeded');
  assert.deepEqual(op.body.steps, ['disk', 'seed', 'define', 'start', 'boot']);
  const got = await call('GET', `${API}/instances/${inst()}`);
  assert.equal(got.status, 200);
  assert.equal(got.body.state, 'running');
  assert.equal(got.body.image, 'tiny');
  assert.equal(got.body.flavor, 'small');
  assert.equal(got.body.host, 'local');
  assert.equal(got.body.passwordSet, true);
  assert.equal('passwordHash' in got.body, false, 'the password hash is never handed out');
  assert.match(got.body.nics[0].ipv4 ?? '', /^192\.168\./);
  const list = await call('GET', `${API}/instances`);
  assert.deepEqual(list.body.map((i: { name: string; state: string }) => [i.name, i.state]), [[inst(), 'running']]);
  assert.ok((await call('GET', `${API}/operations`)).body.some((o: { id: string }) => o.id === id));
  refused(await call('GET', `${API}/operations/nope`), 404, 'NOT_FOUND');
  // The same name again is refused at once.
  refused(await call('POST', `${API}/instances`, { name: inst(), image: 'tiny', flavor: 'small', password: 'pw', networks: [env.network] }), 409, 'ALREADY_EXISTS');
  refused(await call('GET', `${API}/instances/${env.prefix}-none`), 404, 'NOT_FOUND');
  events.close();
});

test('instance actions: stop, start, reboot, destroy; 400 naming the field, 404', async () => {
  const at = (action: string, name = inst(), body?: unknown) => call('POST', `${API}/instances/${name}/${action}`, body);
  const events = await openEvents();
  refused(await at('stop', inst(), { timeoutSeconds: 'soon' }), 400, 'INVALID_INPUT', ['body.timeoutSeconds']);
  refused(await at('stop', inst(), { grace: 5 }), 400, 'INVALID_INPUT', ['body.grace']);
  // The guest is up (the create waited for it), so it hears the ACPI button.
  const stopped = await at('stop', inst(), { timeoutSeconds: 120 });
  assert.equal(stopped.status, 200, JSON.stringify(stopped.body));
  assert.equal(stopped.body.instance.state, 'shut off');
  refused(await at('reboot'), 400, 'INVALID_INPUT');
  const started = await at('start');
  assert.deepEqual([started.status, started.body.started, started.body.instance.state], [200, true, 'running']);
  assert.equal((await at('start')).body.started, false, 'already running');
  const rebooted = await at('reboot');
  assert.equal(rebooted.status, 200, JSON.stringify(rebooted.body));
  assert.equal(rebooted.body.instance.name, inst());
  const destroyed = await at('destroy');
  assert.deepEqual([destroyed.status, destroyed.body.instance.state], [200, 'shut off']);
  // No body at all, and an empty JSON body, are both fine for an action whose body is optional.
  assert.equal((await at('stop')).status, 200);
  const empty = await fetch(`${base}${API}/instances/${inst()}/stop`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
  assert.equal(empty.status, 200);
  await empty.arrayBuffer();
  for (const action of ['start', 'stop', 'reboot', 'destroy']) refused(await at(action, `${env.prefix}-none`), 404, 'NOT_FOUND');
  // Each change was announced to live views.
  await events.until('the destroy announced', (e) => e.event === 'resource' && e.data.name === inst() && e.data.action === 'destroyed', 30_000);
  events.close();
});

test('volumes: create, list, show, attach, detach, delete; 400 naming the field, 404, 409', async () => {
  const vol = `${env.prefix}-v1`;
  refused(await call('POST', `${API}/volumes`, { name: vol, sizeGiB: 0 }), 400, 'INVALID_INPUT', ['body.sizeGiB']);
  refused(await call('POST', `${API}/volumes`, { name: vol }), 400, 'INVALID_INPUT', ['body.sizeGiB']);
  const made = await call('POST', `${API}/volumes`, { name: vol, sizeGiB: 1 });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  assert.equal(made.body.sizeGiB, 1);
  refused(await call('POST', `${API}/volumes`, { name: vol, sizeGiB: 1 }), 409, 'ALREADY_EXISTS');
  assert.deepEqual((await call('GET', `${API}/volumes`)).body.map((v: { name: string }) => v.name), [vol]);
  assert.equal((await call('GET', `${API}/volumes/${vol}`)).body.file, join(env.home, 'volumes', `${vol}.qcow2`));
  refused(await call('GET', `${API}/volumes/nope`), 404, 'NOT_FOUND');
  refused(await call('POST', `${API}/volumes/${vol}/resize`, { sizeGiB: 'big' }), 400, 'INVALID_INPUT', ['body.sizeGiB']);
  refused(await call('POST', `${API}/volumes/nope/resize`, { sizeGiB: 2 }), 404, 'NOT_FOUND');
  const grown = await call('POST', `${API}/volumes/${vol}/resize`, { sizeGiB: 2 });
  assert.equal(grown.status, 200, JSON.stringify(grown.body));
  assert.deepEqual([grown.body.fromGiB, grown.body.volume.sizeGiB, grown.body.how], [1, 2, 'offline']);
  refused(await call('POST', `${API}/volumes/${vol}/attach`, {}), 400, 'INVALID_INPUT', ['body.instance']);
  refused(await call('POST', `${API}/volumes/${vol}/attach`, { instance: `${env.prefix}-none` }), 404, 'NOT_FOUND');
  refused(await call('POST', `${API}/volumes/nope/attach`, { instance: inst() }), 404, 'NOT_FOUND');
  // The instance is stopped: attached to its definition, seen on its next start.
  const attached = await call('POST', `${API}/volumes/${vol}/attach`, { instance: inst() });
  assert.equal(attached.status, 200, JSON.stringify(attached.body));
  assert.deepEqual([attached.body.live, attached.body.volume.instance, attached.body.volume.device], [false, inst(), 'vdb']);
  refused(await call('POST', `${API}/volumes/${vol}/attach`, { instance: inst() }), 409, 'IN_USE');
  refused(await call('DELETE', `${API}/volumes/${vol}`), 409, 'IN_USE');
  assert.deepEqual((await call('GET', `${API}/instances/${inst()}`)).body.volumes, [{ name: vol, device: '/dev/vdb', sizeGiB: 2 }]);
  refused(await call('POST', `${API}/volumes/${vol}/detach`, { timeoutSeconds: -1 }), 400, 'INVALID_INPUT', ['body.timeoutSeconds']);
  const detached = await call('POST', `${API}/volumes/${vol}/detach`);
  assert.equal(detached.status, 200, JSON.stringify(detached.body));
  assert.equal(detached.body.instance, inst());
  assert.equal(detached.body.volume.instance, undefined);
  refused(await call('POST', `${API}/volumes/${vol}/detach`), 400, 'INVALID_INPUT');
  assert.equal((await call('DELETE', `${API}/volumes/${vol}`)).status, 204);
  refused(await call('DELETE', `${API}/volumes/${vol}`), 404, 'NOT_FOUND');
});

test('snapshots: create (named, and unnamed with no body), list, revert, delete; 400 naming the field, 404, 409', async () => {
  const snaps = `${API}/instances/${inst()}/snapshots`;
  assert.deepEqual((await call('GET', snaps)).body, []);
  const first = await call('POST', snaps, { name: 'first' });
  assert.equal(first.status, 201, JSON.stringify(first.body));
  assert.deepEqual([first.body.name, first.body.instance, first.body.state], ['first', inst(), 'shutoff']);
  refused(await call('POST', snaps, { name: 'first' }), 409, 'ALREADY_EXISTS');
  refused(await call('POST', snaps, { name: 'a b' }), 400, 'INVALID_INPUT');
  refused(await call('POST', snaps, { name: 7 }), 400, 'INVALID_INPUT', ['body.name']);
  const unnamed = await call('POST', snaps);
  assert.equal(unnamed.status, 201, JSON.stringify(unnamed.body));
  assert.match(unnamed.body.name, /^\d+$/);
  assert.deepEqual((await call('GET', snaps)).body.map((s: { name: string }) => s.name).sort(), ['first', unnamed.body.name].sort());
  refused(await call('POST', `${snaps}/first/revert`, { to: 'later' }), 400, 'INVALID_INPUT', ['body.to']);
  const reverted = await call('POST', `${snaps}/first/revert`);
  assert.equal(reverted.status, 200, JSON.stringify(reverted.body));
  assert.deepEqual(reverted.body, { instance: inst(), snapshot: 'first', state: 'shut off' });
  refused(await call('POST', `${snaps}/nope/revert`), 404, 'NOT_FOUND');
  for (const s of ['first', unnamed.body.name]) assert.equal((await call('DELETE', `${snaps}/${s}`)).status, 204);
  refused(await call('DELETE', `${snaps}/first`), 404, 'NOT_FOUND');
  refused(await call('GET', `${API}/instances/${env.prefix}-none/snapshots`), 404, 'NOT_FOUND');
  refused(await call('POST', `${API}/instances/${env.prefix}-none/snapshots`, {}), 404, 'NOT_FOUND');
});

test('instance resize, xml and console log; 400 naming the field, 404, 409', async () => {
  // Stopped, no snapshots left: its root disk may grow.
  refused(await call('POST', `${API}/instances/${inst()}/resize`, { diskGiB: 'x' }), 400, 'INVALID_INPUT', ['body.diskGiB']);
  refused(await call('POST', `${API}/instances/${inst()}/resize`, { diskGiB: 5 }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/instances/${env.prefix}-none/resize`, { diskGiB: 11 }), 404, 'NOT_FOUND');
  const grown = await call('POST', `${API}/instances/${inst()}/resize`, { diskGiB: 11 });
  assert.equal(grown.status, 200, JSON.stringify(grown.body));
  assert.deepEqual(grown.body, { fromGiB: 10, toGiB: 11 });
  assert.equal((await call('GET', `${API}/instances/${inst()}`)).body.diskGiB, 11);
  const xml = await fetch(`${base}${API}/instances/${inst()}/xml`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(xml.status, 200);
  assert.match(xml.headers.get('content-type') ?? '', /^application\/xml/);
  assert.match(await xml.text(), new RegExp(`<domain[^>]*>[\\s\\S]*<name>${inst()}</name>`));
  const log = await fetch(`${base}${API}/instances/${inst()}/console-log`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(log.status, 200);
  assert.match(log.headers.get('content-type') ?? '', /^text\/plain/);
  assert.match(await log.text(), /Linux|login|kumo/i, 'the guest booted on its serial console');
  for (const what of ['xml', 'console-log']) refused(await call('GET', `${API}/instances/${env.prefix}-none/${what}`), 404, 'NOT_FOUND');
  // Running: its root disk cannot grow now.
  assert.equal((await call('POST', `${API}/instances/${inst()}/start`)).status, 200);
  refused(await call('POST', `${API}/instances/${inst()}/resize`, { diskGiB: 12 }), 409, 'IN_USE');
  assert.equal((await call('POST', `${API}/instances/${inst()}/destroy`)).body.instance.state, 'shut off');
});

test('hosts: add a node by its shell (400 naming the field, 409), evacuate as an operation, remove; 404', async () => {
  const ns = await node('stgns');
  const stg = `${env.prefix}-stg`;
  refused(await call('POST', `${API}/hosts`, { name: stg, roles: ['nas'], shell: { kind: 'netns', netns: ns } }), 400, 'INVALID_INPUT', ['body.roles.0']);
  refused(await call('POST', `${API}/hosts`, { name: stg, roles: ['storage'], shell: { kind: 'netns' } }), 400, 'INVALID_INPUT', ['body.shell.netns']);
  refused(await call('POST', `${API}/hosts`, { name: stg, roles: ['storage'] , shell: { kind: 'netns', netns: `${env.prefix}-gone` } }), 502, 'HOST_UNREACHABLE');
  const added = await call('POST', `${API}/hosts`, { name: stg, roles: ['storage'], shell: { kind: 'netns', netns: ns } });
  assert.equal(added.status, 201, JSON.stringify(added.body));
  assert.deepEqual([added.body.name, added.body.roles, added.body.shell], [stg, ['storage'], { kind: 'netns', netns: ns }]);
  refused(await call('POST', `${API}/hosts`, { name: stg, roles: ['storage'], shell: { kind: 'netns', netns: ns } }), 409, 'ALREADY_EXISTS');
  // Nothing on it: the evacuation has nothing to move.
  refused(await call('POST', `${API}/hosts/${stg}/evacuate`, { parallel: 0 }), 400, 'INVALID_INPUT', ['body.parallel']);
  refused(await call('POST', `${API}/hosts/nope/evacuate`), 404, 'NOT_FOUND');
  const evac = await call('POST', `${API}/hosts/${stg}/evacuate`);
  assert.equal(evac.status, 202, JSON.stringify(evac.body));
  const op = await finished(evac.body.operation.id);
  assert.deepEqual([op.state, op.kind, op.result], ['succeeded', 'host.evacuate', { moved: [] }]);
  refused(await call('DELETE', `${API}/hosts/local`), 409, 'IN_USE');
  // Kept for the shares test; removed there.
});

test('shares: create (served by the storage node), list, show, delete; 400 naming the field, 404, 409', async () => {
  const stg = `${env.prefix}-stg`;
  const name = `${env.prefix}-s1`;
  assert.deepEqual((await call('GET', `${API}/shares`)).body, []);
  refused(await call('POST', `${API}/shares`, { name, networks: [] }), 400, 'INVALID_INPUT', ['body.networks']);
  refused(await call('POST', `${API}/shares`, { name }), 400, 'INVALID_INPUT', ['body.networks']);
  refused(await call('POST', `${API}/shares`, { name, networks: [env.network], readonly: true }), 400, 'INVALID_INPUT', ['body.readonly']);
  refused(await call('POST', `${API}/shares`, { name: 'bad name', networks: [env.network] }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/shares`, { name, networks: [env.network], path: 'relative/dir' }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/shares`, { name, networks: [`${env.prefix}-none`] }), 404, 'NOT_FOUND');
  const made = await call('POST', `${API}/shares`, { name, networks: [env.network], readOnly: true });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  assert.deepEqual([made.body.name, made.body.path, made.body.networks, made.body.readOnly, made.body.server],
    [name, join(env.home, 'shares', name), [env.network], true, stg]);
  refused(await call('POST', `${API}/shares`, { name, networks: [env.network] }), 409, 'ALREADY_EXISTS');
  assert.deepEqual((await call('GET', `${API}/shares`)).body.map((s: { name: string }) => s.name), [name]);
  assert.equal((await call('GET', `${API}/shares/${name}`)).body.path, join(env.home, 'shares', name));
  refused(await call('GET', `${API}/shares/nope`), 404, 'NOT_FOUND');
  // The storage node's ganesha serves it, inside its namespace.
  const conf = await readFile(join(env.home, 'nfs', stg, 'ganesha.conf'), 'utf8');
  assert.match(conf, new RegExp(`Pseudo = "?/${name}"?`));
  assert.equal((await call('DELETE', `${API}/shares/${name}`)).status, 204);
  refused(await call('DELETE', `${API}/shares/${name}`), 404, 'NOT_FOUND');
  assert.equal((await call('DELETE', `${API}/hosts/${stg}`)).status, 204);
  refused(await call('DELETE', `${API}/hosts/${stg}`), 404, 'NOT_FOUND');
});

test('load balancers: create with the WAF on an lb node, show, set instances, sync, WAF log, delete; 400 naming the field, 404', async () => {
  const ns = await node('lbns');
  const host = `${env.prefix}-lb`;
  assert.equal((await call('POST', `${API}/hosts`, { name: host, roles: ['lb'], shell: { kind: 'netns', netns: ns } })).status, 201);
  const name = `${env.prefix}-lb1`;
  const ok = { name, host, frontend: '127.0.0.1:8081', network: env.network, instances: [inst()], waf: { enabled: true } };
  assert.deepEqual((await call('GET', `${API}/loadbalancers`)).body, []);
  refused(await call('POST', `${API}/loadbalancers`, { ...ok, instances: [] }), 400, 'INVALID_INPUT', ['body.instances']);
  refused(await call('POST', `${API}/loadbalancers`, { ...ok, backendPort: 0 }), 400, 'INVALID_INPUT', ['body.backendPort']);
  refused(await call('POST', `${API}/loadbalancers`, { ...ok, waf: { enabled: true, paranoia: 5 } }), 400, 'INVALID_INPUT', ['body.waf.paranoia']);
  refused(await call('POST', `${API}/loadbalancers`, { ...ok, frontend: 'nowhere' }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/loadbalancers`, { ...ok, host: 'local' }), 400, 'INVALID_INPUT');
  refused(await call('POST', `${API}/loadbalancers`, { ...ok, host: 'nope' }), 404, 'NOT_FOUND');
  refused(await call('POST', `${API}/loadbalancers`, { ...ok, instances: [`${env.prefix}-none`] }), 404, 'NOT_FOUND');
  const made = await call('POST', `${API}/loadbalancers`, ok);
  assert.equal(made.status, 201, JSON.stringify(made.body));
  assert.deepEqual([made.body.running, made.body.wafRunning, made.body.frontend, made.body.waf],
    [true, true, { address: '127.0.0.1', port: 8081 }, { enabled: true, paranoia: 1 }]);
  assert.deepEqual(made.body.backends.map((b: { instance: string }) => b.instance), [inst()]);
  refused(await call('POST', `${API}/loadbalancers`, ok), 409, 'ALREADY_EXISTS');
  assert.deepEqual((await call('GET', `${API}/loadbalancers`)).body.map((l: { name: string }) => l.name), [name]);
  assert.equal((await call('GET', `${API}/loadbalancers/${name}`)).body.host, host);
  refused(await call('GET', `${API}/loadbalancers/nope`), 404, 'NOT_FOUND');
  refused(await call('PUT', `${API}/loadbalancers/${name}/instances`, { instances: inst() }), 400, 'INVALID_INPUT', ['body.instances']);
  refused(await call('PUT', `${API}/loadbalancers/${name}/instances`, { instances: [`${env.prefix}-none`] }), 404, 'NOT_FOUND');
  refused(await call('PUT', `${API}/loadbalancers/nope/instances`, { instances: [inst()] }), 404, 'NOT_FOUND');
  assert.equal((await call('PUT', `${API}/loadbalancers/${name}/instances`, { instances: [inst()] })).status, 200);
  const synced = await call('POST', `${API}/loadbalancers/${name}/sync`);
  assert.equal(synced.status, 200, JSON.stringify(synced.body));
  assert.equal(synced.body.running, true);
  refused(await call('POST', `${API}/loadbalancers/nope/sync`), 404, 'NOT_FOUND');
  // An attack from inside the lb node: the WAF answers 403 and logs it with its rules.
  const attack = await local.run('ip', ['netns', 'exec', ns, 'curl', '-s', '-g', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5',
    "http://127.0.0.1:8081/?id=1'%20OR%20'1'='1"], { allowFailure: true });
  assert.equal(attack.stdout, '403');
  const events = await waitFor('the attack in the WAF log', async () => {
    const a = await call('GET', `${API}/loadbalancers/${name}/waf-log?limit=5`);
    assert.equal(a.status, 200, JSON.stringify(a.body));
    return a.body.length ? a.body : undefined;
  }, 15_000);
  assert.equal(events[0].blocked, true);
  assert.ok(events[0].ruleIds.includes('942100'), events[0].ruleIds.join(','));
  refused(await call('GET', `${API}/loadbalancers/${name}/waf-log?limit=0`), 400, 'INVALID_INPUT', ['querystring.limit']);
  refused(await call('GET', `${API}/loadbalancers/nope/waf-log`), 404, 'NOT_FOUND');
  assert.equal((await call('DELETE', `${API}/loadbalancers/${name}`)).status, 204);
  refused(await call('DELETE', `${API}/loadbalancers/${name}`), 404, 'NOT_FOUND');
  assert.equal((await call('DELETE', `${API}/hosts/${host}`)).status, 204);
});

test('migrate: 202 with an operation that live-migrates to a second libvirtd; 400 naming the field, 404', async () => {
  refused(await call('POST', `${API}/instances/${inst()}/migrate`, {}), 400, 'INVALID_INPUT', ['body.to']);
  refused(await call('POST', `${API}/instances/${env.prefix}-none/migrate`, { to: 'local' }), 404, 'NOT_FOUND');
  refused(await call('POST', `${API}/instances/${inst()}/migrate`, { to: 'nope' }), 404, 'NOT_FOUND');
  // What only libvirt or the service can decide shows in the operation, with its code.
  const same = await call('POST', `${API}/instances/${inst()}/migrate`, { to: 'local' });
  assert.equal(same.status, 202);
  const failed = await finished(same.body.operation.id);
  assert.deepEqual([failed.state, failed.error.code], ['failed', 'INVALID_INPUT']);
  assert.match(failed.error.message, /already runs on local/);

  // A second hypervisor (HOST-NOTES: a libvirtd in its own mount+UTS namespace) on the same bridge.
  ({ lab, stateDir } = await startSecondHypervisor(env, kvm2()));
  await new HostService(env.ctx).add({ name: kvm2(), uri: lab.uri, migrationAddress: '127.0.0.1' }, 'machine'); // its socket is under /tmp
  assert.deepEqual((await call('GET', `${API}/hosts`)).body.map((h: { name: string }) => h.name), ['local', kvm2()]);

  assert.equal((await call('POST', `${API}/instances/${inst()}/start`)).body.instance.state, 'running');
  const events = await openEvents();
  const started = await call('POST', `${API}/instances/${inst()}/migrate`, { to: kvm2(), unsafe: true });
  assert.equal(started.status, 202, JSON.stringify(started.body));
  const id: string = started.body.operation.id;
  const end = await events.until('the migration to finish',
    (e) => e.event === 'operation' && e.data.operation.id === id && e.data.operation.state !== 'running');
  assert.equal(end.data.operation.state, 'succeeded', JSON.stringify(end.data.operation.error));
  assert.deepEqual([end.data.operation.result.from, end.data.operation.result.to], ['local', kvm2()]);
  const moved = await call('GET', `${API}/instances/${inst()}`);
  assert.deepEqual([moved.body.host, moved.body.state], [kvm2(), 'running']);
  assert.equal(await new Virsh(lab!.uri).domainState(inst()), 'running');
  assert.equal((await call('GET', `${API}/hosts/${kvm2()}`)).body.instances, 1);
  events.close();
});

test('delete: an image in use is refused (409); the instance goes, then the image; 404 afterwards', async () => {
  refused(await call('DELETE', `${API}/images/tiny`), 409, 'IN_USE');
  const deleted = await call('DELETE', `${API}/instances/${inst()}`);
  assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
  assert.deepEqual(deleted.body, { detachedVolumes: [] });
  refused(await call('GET', `${API}/instances/${inst()}`), 404, 'NOT_FOUND');
  refused(await call('DELETE', `${API}/instances/${inst()}`), 404, 'NOT_FOUND');
  assert.deepEqual((await call('GET', `${API}/instances`)).body, []);
  const everywhere = [
    ...(await local.run('virsh', ['-c', 'qemu:///system', 'list', '--all', '--name'])).stdout.split('\n'),
    ...(lab ? (await local.run('virsh', ['-c', lab.uri, 'list', '--all', '--name'])).stdout.split('\n') : []),
  ];
  assert.ok(!everywhere.includes(inst()), 'the domain is gone from every host');
  assert.equal((await call('DELETE', `${API}/images/tiny`)).status, 204);
  refused(await call('GET', `${API}/images/tiny`), 404, 'NOT_FOUND');
});
