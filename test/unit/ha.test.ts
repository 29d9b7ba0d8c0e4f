import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openContext, type Context } from '../../src/service/context.js';
import type { Executor } from '../../src/exec/exec.js';
import { HaWatcher, type HaDeps } from '../../src/service/ha/watcher.js';
import { placeElsewhere } from '../../src/service/ha/restart.js';
import { hostHaView, setFence } from '../../src/service/ha/hosts.js';
import { fenceKind } from '../../src/service/ha/fence.js';
import { runFenceCommand } from '../../src/drivers/host/fence-command.js';
import { parseWatchOptions } from '../../src/model/ha.js';
import { AuditService } from '../../src/service/audit.js';
import type { HostView } from '../../src/service/host.js';
import type { InstanceRecord } from '../../src/store/instances.js';

/**
 * The HA watcher's state machine on a real store with stand-ins for everything it asks and does:
 * a clock, each host's libvirt and shell, the fence, the start elsewhere and the undefine.
 */

const nowhere: Executor = {
  description: 'nowhere',
  run: async (c) => { throw new Error(`${c}: not in a unit test`); },
  open: async () => { throw new Error('not in a unit test'); },
};

async function withStore(fn: (ctx: Context, home: string) => Promise<void>): Promise<void> {
  const home = await mkdtemp(join(tmpdir(), 'kumo-ha-unit-'));
  const ctx = openContext({ home, exec: nowhere, libvirtProtocol: false });
  try {
    ctx.hosts.delete('local'); // the lab's hypervisors stand in for this machine's libvirt, as `kumo lab up` does
    for (const name of ['kvm1', 'kvm2']) {
      ctx.hosts.insert({ name, uri: `qemu+unix:///system?socket=/nowhere/${name}`, roles: ['hypervisor'], shell: { kind: 'netns', netns: `lab-${name}` }, createdAt: new Date().toISOString() });
    }
    ctx.images.upsert({ name: 'tiny', os: 'stand-in', disk: join(home, 'tiny.qcow2'), format: 'qcow2', virtualSizeBytes: 1 << 30, source: 'test', createdAt: new Date().toISOString() });
    ctx.instances.insert(instance('web1', 'kvm1', true));
    ctx.instances.insert(instance('db1', 'kvm1', false));
    await fn(ctx, home);
  } finally {
    ctx.close();
    await rm(home, { recursive: true, force: true });
  }
}

const instance = (name: string, host: string, ha: boolean): InstanceRecord => ({
  name, uuid: `aaaaaaaa-0000-4000-8000-${name.padStart(12, '0')}`, host, image: 'tiny', vcpus: 1, ramMiB: 256, diskGiB: 1,
  networks: ['backend'], nics: [{ mac: '52:54:00:00:00:01', network: 'backend' }], dataDisks: [], sshKeys: [],
  createdAt: new Date().toISOString(), project: 'default', ha,
});

/** Stand-ins: `dead` hosts miss their beats; what was fenced, started and undefined is written down. */
function standIns(ctx: Context, over: Partial<HaDeps> = {}) {
  const seen = { fenced: [] as string[], started: [] as string[], undefined: [] as string[], events: [] as string[] };
  const dead = new Set<string>();
  let clock = Date.parse('2026-12-07T05:00:00Z');
  const deps: HaDeps = {
    now: () => clock,
    libvirtAnswers: async (h) => !dead.has(h),
    shellAnswers: async () => true,
    fence: async (h) => { seen.fenced.push(h); return { ok: true }; },
    place: (r, exclude) => placeElsewhere(ctx, r, exclude, async (h) => view(h)),
    start: async (r, to) => { await new Promise((res) => setImmediate(res)); seen.started.push(`${r.name}@${to}`); },
    undefine: async (h, r) => { seen.undefined.push(`${r.name}@${h}`); return 'undefined'; },
    keepCopy: async () => undefined,
    event: (resource, name, action) => seen.events.push(`${resource} ${name} ${action}`),
    ...over,
  };
  return { deps, seen, dead, tick: (ms: number) => { clock += ms; } };
}

const view = (name: string, freeMiB = 4096): HostView => ({
  name, roles: ['hypervisor'], shell: { kind: 'local' }, createdAt: '', up: true, cpus: 4, memoryMiB: freeMiB,
  allocatedVcpus: 0, allocatedMiB: 0, instances: 0,
});

const actions = (ctx: Context) => new AuditService(ctx).recent(100).filter((e) => e.actor === 'ha-watcher').map((e) => `${e.action} ${e.target} ${e.result}`).reverse();

test('misses: a host is DOWN only after N missed beats, then fenced, then its HA instances start elsewhere (not the others)', async () => {
  await withStore(async (ctx) => {
    const s = standIns(ctx);
    const w = new HaWatcher(ctx, s.deps, { intervalMs: 1000, misses: 3 });
    await w.beat();
    s.dead.add('kvm1');
    await w.beat();
    await w.beat();
    assert.equal(hostHaView(ctx, 'kvm1').ha.state, 'up', 'two misses are not enough');
    assert.deepEqual(s.seen.fenced, []);
    await w.beat();
    const story = hostHaView(ctx, 'kvm1').ha;
    assert.equal(story.state, 'fenced');
    assert.ok(story.downAt && story.fencedAt);
    assert.deepEqual(s.seen.fenced, ['kvm1']);
    assert.deepEqual(s.seen.started, ['web1@kvm2']);
    assert.deepEqual(story.moved.map((m) => `${m.instance}->${m.to}`), ['web1->kvm2']);
    assert.equal(ctx.instances.get('web1')?.host, 'kvm2');
    assert.equal(ctx.instances.get('db1')?.host, 'kvm1', 'a non-HA instance stays recorded on its dead host');
    assert.deepEqual(actions(ctx), ['ha.down kvm1 ok', 'ha.fence kvm1 ok', 'ha.restart web1 ok']);
    assert.deepEqual(s.seen.events, ['host kvm1 down', 'host kvm1 fenced', 'instance web1 moved']);
    // More missed beats change nothing: nothing is started twice.
    await w.beat();
    assert.deepEqual(s.seen.started, ['web1@kvm2']);
  });
});

test('placement: the restart goes to the hypervisor with room, never the dead host nor one HA holds down', async () => {
  await withStore(async (ctx) => {
    ctx.hosts.insert({ name: 'kvm3', uri: 'qemu+unix:///system?socket=/nowhere/kvm3', roles: ['hypervisor'], shell: { kind: 'local' }, createdAt: new Date().toISOString() });
    const r = ctx.instances.get('web1')!;
    const views: Record<string, HostView> = { kvm1: view('kvm1', 65536), kvm2: view('kvm2', 128), kvm3: view('kvm3', 2048) };
    assert.equal(await placeElsewhere(ctx, r, ['kvm1'], async (h) => views[h]!), 'kvm3', 'kvm2 has no room for 256 MiB');
    ctx.hostHa.set('kvm3', { state: 'unfenced', moved: [] });
    await assert.rejects(placeElsewhere(ctx, r, ['kvm1'], async (h) => views[h]!), /no hypervisor has room/);
  });
});

test('a fence that fails (or none): DOWN, NOT FENCED, nothing started elsewhere, and host show says what to do', async () => {
  await withStore(async (ctx) => {
    const s = standIns(ctx, { fence: async (h) => { s.seen.fenced.push(h); return { ok: false, error: 'the fence command exited 1: no route to BMC' }; } });
    const w = new HaWatcher(ctx, s.deps, { intervalMs: 1000, misses: 1 });
    s.dead.add('kvm1');
    await w.beat();
    await w.beat();
    const v = hostHaView(ctx, 'kvm1');
    assert.equal(v.ha.state, 'unfenced');
    assert.match(v.ha.fenceError ?? '', /no route to BMC/);
    assert.match(v.ha.fix ?? '', /kumo host set kvm1 --fence/);
    assert.deepEqual(s.seen.started, []);
    assert.equal(ctx.instances.get('web1')?.host, 'kvm1');
    assert.deepEqual(actions(ctx), ['ha.down kvm1 ok', 'ha.fence-failed kvm1 FENCE_FAILED']);
    assert.equal(fenceKind(ctx, 'kvm1'), 'none', 'a host outside a lab with no command has no fence');
  });
});

test('compare-and-set: two watchers on one store start a dead host\'s HA instance once', async () => {
  await withStore(async (ctx, home) => {
    const other = openContext({ home, exec: nowhere, libvirtProtocol: false }); // a second process on the same store
    try {
      ctx.hostHa.set('kvm1', { state: 'fenced', downAt: new Date().toISOString(), fencedAt: new Date().toISOString(), moved: [] });
      const a = standIns(ctx);
      const b = standIns(other);
      for (const s of [a, b]) s.dead.add('kvm1');
      await Promise.all([new HaWatcher(ctx, a.deps).beat(), new HaWatcher(other, b.deps).beat()]);
      assert.deepEqual([...a.seen.started, ...b.seen.started], ['web1@kvm2']);
      assert.equal(ctx.hostHa.get('kvm1')?.moved.length, 1);
      assert.equal(ctx.instances.moveIfOn('web1', 'kvm1', 'kvm2'), false, 'the record no longer names the dead host');
    } finally {
      other.close();
    }
  });
});

test('a start that fails gives the claim back: the record names the dead host again, and a later try starts it', async () => {
  await withStore(async (ctx) => {
    let fail = true;
    const s = standIns(ctx, { start: async (r, to) => { if (fail) throw new Error('no room for the disk lock'); s.seen.started.push(`${r.name}@${to}`); } });
    const w = new HaWatcher(ctx, s.deps, { intervalMs: 1000, misses: 1 });
    s.dead.add('kvm1');
    await w.beat();
    assert.equal(ctx.instances.get('web1')?.host, 'kvm1');
    fail = false;
    await w.beat();
    assert.deepEqual(s.seen.started, [], 'not at every beat');
    s.tick(31_000);
    await w.beat();
    assert.deepEqual(s.seen.started, ['web1@kvm2']);
    assert.ok(actions(ctx).includes('ha.restart web1 RESTART_FAILED'));
  });
});

test('rejoin: a host that answers again has the domains of what moved undefined (never started), is up, and keeps its story', async () => {
  await withStore(async (ctx) => {
    const s = standIns(ctx);
    const w = new HaWatcher(ctx, s.deps, { intervalMs: 1000, misses: 1 });
    s.dead.add('kvm1');
    await w.beat();
    s.dead.delete('kvm1');
    await w.beat();
    const story = hostHaView(ctx, 'kvm1').ha;
    assert.equal(story.state, 'up');
    assert.ok(story.rejoinedAt && story.downAt && story.fencedAt);
    assert.deepEqual(story.moved.map((m) => m.instance), ['web1']);
    assert.deepEqual(s.seen.undefined, ['web1@kvm1']);
    assert.deepEqual(s.seen.started, ['web1@kvm2']);
    assert.equal(actions(ctx).at(-1), 'ha.rejoin kvm1 ok');
    assert.equal(s.seen.events.at(-1), 'host kvm1 rejoined');
  });
});

test('hosts with nothing highly available are not watched: no fence ever destroys them', async () => {
  await withStore(async (ctx) => {
    ctx.instances.setHa('web1', false);
    const s = standIns(ctx);
    const w = new HaWatcher(ctx, s.deps, { intervalMs: 1000, misses: 1 });
    s.dead.add('kvm1');
    await w.beat();
    await w.beat();
    assert.deepEqual(s.seen.fenced, []);
    assert.equal(hostHaView(ctx, 'kvm1').ha.state, 'up');
  });
});

test('fence settings: a lab hypervisor is fenced by the lab unless set; a command is kept but never shown; bad input is refused', async () => {
  await withStore(async (ctx) => {
    ctx.settings.set('lab', JSON.stringify({ spec: { name: 'lab', nodes: { kvm1: { roles: ['hypervisor'], links: {} } }, segments: {} }, removedLocal: false }));
    assert.equal(fenceKind(ctx, 'kvm1'), 'lab');
    assert.equal(fenceKind(ctx, 'kvm2'), 'none');
    assert.equal(setFence(ctx, 'kvm1', 'none'), 'none');
    assert.equal(setFence(ctx, 'kvm2', 'ipmitool -P SECRET chassis power off'), 'command');
    assert.doesNotMatch(JSON.stringify(hostHaView(ctx, 'kvm2')), /SECRET/);
    assert.throws(() => setFence(ctx, 'kvm9', 'true'), (e: Error & { code?: string }) => e.code === 'NOT_FOUND' && /kvm9.*not registered/.test(e.message));
    assert.throws(() => setFence(ctx, 'kvm1', '   '), /--fence is empty/);
    assert.equal(ctx.instances.get('web1')?.ha, true, 'ha is kept in the store');
    assert.equal(ctx.instances.get('db1')?.ha, false);
  });
});

test('watch options: --interval 0, negative or text, and --misses 0 are refused with the fix', () => {
  assert.deepEqual(parseWatchOptions({}), { intervalMs: 1000, misses: 3 });
  assert.deepEqual(parseWatchOptions({ interval: '0.5', misses: '5' }), { intervalMs: 500, misses: 5 });
  for (const interval of ['0', '-1', 'soon', '99999']) assert.throws(() => parseWatchOptions({ interval }), /--interval must be seconds from 0.1 to 3600/);
  for (const misses of ['0', '1.5', 'x']) assert.throws(() => parseWatchOptions({ misses }), /--misses must be a whole number/);
});

test('fence command: exit 0 is off; a failure or a timeout is not, with the reason and never the command text', async () => {
  assert.deepEqual(await runFenceCommand('test "$KUMO_FENCE_HOST" = kvm1', 'kvm1'), { ok: true });
  const failed = await runFenceCommand('echo "BMC said no" >&2; exit 3 # PASSWORD=hunter2', 'kvm1');
  assert.equal(failed.ok, false);
  assert.match(failed.ok ? '' : failed.error, /exited 3: BMC said no/);
  assert.doesNotMatch(failed.ok ? '' : failed.error, /hunter2/);
  const slow = await runFenceCommand('sleep 5', 'kvm1', 200);
  assert.match(slow.ok ? '' : slow.error, /did not finish within 0 s|did not finish/);
});

test('run: beats every interval until stopped, without piling up abort listeners', async () => {
  await withStore(async (ctx) => {
    const s = standIns(ctx, { now: () => Date.now() });
    let beats = 0;
    const probe = s.deps.libvirtAnswers;
    s.deps.libvirtAnswers = async (h) => { beats++; return probe(h); };
    const stop = new AbortController();
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const running = new HaWatcher(ctx, s.deps, { intervalMs: 5, misses: 3 }).run(stop.signal);
      await new Promise((res) => setTimeout(res, 150));
      stop.abort();
      await running;
    } finally {
      process.off('warning', onWarning);
    }
    assert.ok(beats >= 10, `${beats} beats of kvm1`);
    assert.deepEqual(warnings.filter((w) => w === 'MaxListenersExceededWarning'), []);
  });
});
