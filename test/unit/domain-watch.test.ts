import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LifecycleSubscriber } from '../../src/drivers/libvirt/rpc/connection.js';
import type { DomainListing } from '../../src/drivers/libvirt/virsh.js';
import { KumoError } from '../../src/model/errors.js';
import { machineActor } from '../../src/model/actor.js';
import type { RuntimeState } from '../../src/model/types.js';
import { openContext } from '../../src/service/context.js';
import { DomainWatch, stateAfter, type WatchedHost } from '../../src/service/domain-watch.js';
import { InstanceService } from '../../src/service/instances.js';
import { encodeDomain, Proc } from '../../src/drivers/libvirt/rpc/protocol.js';
import { fakeLibvirtd, reply } from '../helpers/fake-libvirtd.js';

/**
 * The observed-state cache (service/domain-watch.ts) against a scripted host: one listing, then
 * lifecycle events keep states fresh by UUID; a lost connection makes the host's states unknown
 * until the resync's listing; and InstanceService answers from it without asking libvirt.
 */

const A = 'aaaaaaaa-0000-4000-8000-000000000001';
const B = 'bbbbbbbb-0000-4000-8000-000000000002';
const C = 'cccccccc-0000-4000-8000-000000000003';
const EVENT = { Defined: 0, Undefined: 1, Started: 2, Suspended: 3, Resumed: 4, Stopped: 5, Shutdown: 6, Crashed: 8 };
const tick = () => new Promise((r) => setImmediate(r));

/** A host whose listing and events the test scripts; counts the listings it was asked for. */
interface ScriptedHost {
  domains: DomainListing[]; lists: number; subscriber: LifecycleSubscriber | undefined; refuse: boolean;
  hold: boolean; held: (() => void)[]; source: WatchedHost; event(uuid: string, name: string, event: number): void;
}

function scriptedHost(domains: DomainListing[]): ScriptedHost {
  const h: ScriptedHost = {
    domains, lists: 0, subscriber: undefined, refuse: false,
    /** Held listings: the test answers them (to put an event in the middle of one). */
    hold: false, held: [],
    source: {
      subscribe: async (s: LifecycleSubscriber) => {
        if (h.refuse) throw new KumoError('LIBVIRT_ERROR', 'libvirt at x does not answer (not running)');
        h.subscriber = s;
        return async () => { h.subscriber = undefined; };
      },
      list: async () => {
        h.lists++;
        const snapshot = h.domains.map((d) => ({ ...d }));
        if (h.hold) await new Promise<void>((resolve) => h.held.push(resolve));
        return snapshot;
      },
    },
    event(uuid: string, name: string, event: number) {
      h.subscriber!.event({ callbackID: 1, dom: { name, uuid, id: 1 }, event, detail: 0 });
    },
  };
  return h;
}

async function fresh(w: DomainWatch, host: string) {
  for (let i = 0; i < 100 && !w.of(host); i++) await tick();
  const of = w.of(host);
  assert.ok(of, 'the host became fresh');
  return of;
}

test('lifecycle events: each says what state it leaves, or nothing (a Shutdown waits for its Stopped; a redefinition keeps the state)', () => {
  const cases: [number, RuntimeState | undefined, RuntimeState | 'gone' | undefined][] = [
    [EVENT.Started, 'shut off', 'running'], [EVENT.Stopped, 'running', 'shut off'], [EVENT.Crashed, 'running', 'crashed'],
    [EVENT.Suspended, 'running', 'paused'], [EVENT.Resumed, 'paused', 'running'], [EVENT.Undefined, 'shut off', 'gone'],
    [EVENT.Defined, undefined, 'shut off'], [EVENT.Defined, 'running', undefined], [EVENT.Shutdown, 'running', undefined],
  ];
  for (const [event, known, after] of cases) assert.equal(stateAfter(event, known), after, `event ${event} from ${known}`);
});

test('domain watch: one listing, then events keep states fresh by UUID without asking again; an event during the listing wins', async () => {
  const h = scriptedHost([{ name: 'a', uuid: A, state: 'running' }, { name: 'b', uuid: B, state: 'shut off' }]);
  const changes: string[] = [];
  const w = new DomainWatch({ hostSource: (host) => (host === 'kvm1' ? h.source : undefined), onChange: (host, uuid) => changes.push(`${host} ${uuid}`) });
  try {
    assert.equal(w.of('kvm1'), undefined, 'not fresh before its first listing: readers ask libvirt');
    assert.equal(w.of('elsewhere'), undefined, 'a host that cannot be followed is never fresh');
    let of = await fresh(w, 'kvm1');
    assert.deepEqual([of(A).state, of(A).source, of(B).state, of(C).state], ['running', 'listing', 'shut off', 'missing']);
    h.event(A, 'a', EVENT.Stopped);
    h.event(C, 'c', EVENT.Defined);
    h.event(C, 'c', EVENT.Started);
    h.event(B, 'b', EVENT.Undefined);
    of = w.of('kvm1')!;
    assert.deepEqual([of(A).state, of(A).source, of(C).state, of(B).state, of(B).source], ['shut off', 'events', 'running', 'missing', 'events']);
    assert.ok(Date.parse(of(A).observedAt) > 0);
    assert.equal(h.lists, 1, 'the events were enough: libvirt was listed once');
    assert.ok(changes.includes(`kvm1 ${A}`) && changes.includes(`kvm1 ${C}`) && changes.includes(`kvm1 ${B}`), 'each change was told');

    // A listing that began before an event does not undo it.
    h.hold = true;
    h.domains = [{ name: 'a', uuid: A, state: 'shut off' }, { name: 'c', uuid: C, state: 'running' }];
    h.subscriber!.lost?.(new KumoError('LIBVIRT_ERROR', 'gone'));
    h.subscriber!.resync();
    await tick();
    h.event(A, 'a', EVENT.Started); // after the listing's snapshot was taken
    h.held.shift()!();
    of = await fresh(w, 'kvm1');
    assert.equal(of(A).state, 'running', 'the later event wins over the older listing');
    assert.equal(of(A).source, 'events');
    assert.equal(of(C).source, 'listing');
  } finally {
    await w.stop();
  }
  assert.equal(h.subscriber, undefined, 'stop() unsubscribes');
});

test('domain watch: a lost connection makes the host unknown; the resync lists again and finds what changed meanwhile', async () => {
  const h = scriptedHost([{ name: 'a', uuid: A, state: 'shut off' }, { name: 'b', uuid: B, state: 'running' }]);
  const changes: string[] = [];
  const w = new DomainWatch({ hostSource: () => h.source, onChange: (_host, uuid) => changes.push(uuid) });
  try {
    await fresh(w, 'kvm1');
    changes.length = 0;
    h.subscriber!.lost?.(new KumoError('LIBVIRT_ERROR', 'libvirt at x does not answer (it closed the connection)'));
    assert.equal(w.of('kvm1'), undefined, 'lost: no stale answer, readers ask (and are told the host does not answer)');
    assert.deepEqual(changes.sort(), [A, B], 'every domain of the host was told it changed (to unknown)');
    // Behind kumo's back while disconnected: a started, b undefined.
    h.domains = [{ name: 'a', uuid: A, state: 'running' }];
    h.subscriber!.resync();
    const of = await fresh(w, 'kvm1');
    assert.deepEqual([of(A).state, of(A).source, of(B).state], ['running', 'listing', 'missing']);
    assert.equal(h.lists, 2);
  } finally {
    await w.stop();
  }
});

test('domain watch: a host that cannot be reached at first is tried again, and followed once it answers', async () => {
  const h = scriptedHost([{ name: 'a', uuid: A, state: 'running' }]);
  h.refuse = true;
  const w = new DomainWatch({ hostSource: () => h.source, retryMs: [20, 40] });
  try {
    assert.equal(w.of('kvm1'), undefined);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(w.of('kvm1'), undefined, 'still refused');
    h.refuse = false;
    for (let i = 0; i < 50 && !w.of('kvm1'); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(w.of('kvm1')?.(A).state, 'running');
  } finally {
    await w.stop();
  }
});

test('instances: list and show answer states from the followed events without asking libvirt; a lost host is asked, and says so', async () => {
  const home = await mkdtemp(join(tmpdir(), 'kumo-watch-'));
  process.env.KUMO_LIBVIRT_TIMEOUT ??= '10'; // a mistake in the script fails in seconds, not minutes
  const ctx = openContext({ home });
  const h = scriptedHost([{ name: 'w1', uuid: A, state: 'running' }]);
  const w = new DomainWatch({ hostSource: () => h.source });
  // The host's libvirt answers the XML show reads for VNC, and no state question at all.
  let down = false;
  let libvirtSays = 5; // shut off
  const daemon = await fakeLibvirtd({
    answer: ({ h: call, socket }) => {
      if (down) return socket.destroy();
      if (call.proc === Proc.DOMAIN_LOOKUP_BY_UUID) socket.write(reply(call, (x) => encodeDomain(x, { name: 'w1', uuid: A, id: -1 })));
      if (call.proc === Proc.DOMAIN_GET_XML_DESC) socket.write(reply(call, (x) => x.string('<domain><name>w1</name></domain>')));
      if (call.proc === Proc.DOMAIN_GET_STATE) socket.write(reply(call, (x) => x.int(libvirtSays).int(0)));
    },
  });
  try {
    ctx.hosts.insert({ name: 'kvmx', uri: daemon.uri, roles: ['hypervisor'], shell: { kind: 'local' }, createdAt: new Date().toISOString() });
    ctx.images.upsert({ name: 'tiny', os: 'stand-in', disk: join(home, 'tiny.qcow2'), format: 'qcow2', virtualSizeBytes: 1 << 30, source: 'test', createdAt: new Date().toISOString() });
    ctx.instances.insert({ name: 'w1', uuid: A, host: 'kvmx', image: 'tiny', vcpus: 1, ramMiB: 64, diskGiB: 1, networks: [], nics: [], dataDisks: [], sshKeys: [], createdAt: new Date().toISOString(), project: 'default' });
    ctx.observed = w;
    const svc = new InstanceService(ctx, machineActor('default'));
    w.of('kvmx');
    await fresh(w, 'kvmx');
    h.event(A, 'w1', EVENT.Stopped);
    const [listed] = await svc.list();
    assert.deepEqual([listed!.state, listed!.stateSource, listed!.drift], ['shut off', 'events', []]);
    const shown = await svc.get('w1');
    assert.deepEqual([shown.state, shown.stateSource], ['shut off', 'events']);
    assert.deepEqual([...daemon.seen(Proc.DOMAIN_GET_STATE), ...daemon.seen(Proc.CONNECT_GET_ALL_DOMAIN_STATS)], [], 'no state was asked of libvirt');
    // Right after kumo's own change, its event may not be here yet: that show asks.
    libvirtSays = 1;
    const afterChange = await svc.get('w1', { ask: true });
    assert.deepEqual([afterChange.state, afterChange.stateSource], ['running', 'asked']);
    libvirtSays = 5;
    down = true; // the host's libvirtd goes away
    h.subscriber!.lost?.(new KumoError('LIBVIRT_ERROR', 'gone'));
    const [lost] = await svc.list();
    assert.deepEqual([lost!.state, lost!.stateSource], ['unknown', 'asked']);
    assert.match(lost!.drift[0] ?? '', /host kvmx does not answer: its state is unknown, not gone/);
    down = false;
    delete ctx.observed;
    const asked = await svc.get('w1');
    assert.deepEqual([asked.state, asked.stateSource], ['shut off', 'asked'], 'without a watch (the CLI) every read asks libvirt');
  } finally {
    await w.stop();
    ctx.close();
    await daemon.close();
    await rm(home, { recursive: true, force: true });
  }
});
