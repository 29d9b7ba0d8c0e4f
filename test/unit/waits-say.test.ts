import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { LibvirtConnection } from '../../src/drivers/libvirt/rpc/connection.js';
import { Virsh, type SlowCall } from '../../src/drivers/libvirt/virsh.js';
import { Proc } from '../../src/drivers/libvirt/rpc/protocol.js';
import { waitUntil } from '../../src/exec/process.js';
import { reportWaits, reportingWaitsTo, waiting, type WaitNotice } from '../../src/exec/waits.js';
import { OperationRegistry, type Operation } from '../../src/service/operations.js';
import { Operation as OperationSchema } from '../../src/api/schemas.js';
import { waitReady, type InstanceReader } from '../../src/service/ready.js';
import type { Context } from '../../src/service/context.js';
import type { Instance } from '../../src/model/types.js';
import { KumoError } from '../../src/model/errors.js';
import { fakeLibvirtd, reply } from '../helpers/fake-libvirtd.js';

/**
 * Issue 17: every step that waits over 2 s says what it waits for, wherever it waits (a poll
 * loop, a daemon's readiness, a libvirt call over the protocol), and the face hears it: the CLI
 * through the process-wide listener, an API operation in its `waiting` field and its event.
 * Each wait below is made slow on purpose (about 3 s) and the notice must come before it ends.
 */

/** Collects the notices told to the process-wide listener (the CLI's) while `work` runs. */
async function noticesOf<T>(work: () => Promise<T>): Promise<{ notices: WaitNotice[]; result: T | undefined; error: unknown; endedAt: number; told: number[] }> {
  const notices: WaitNotice[] = [];
  const told: number[] = [];
  reportWaits((n) => { notices.push(n); told.push(Date.now()); });
  try {
    const result = await work();
    return { notices, result, error: undefined, endedAt: Date.now(), told };
  } catch (error) {
    return { notices, result: undefined, error, endedAt: Date.now(), told };
  } finally {
    reportWaits(undefined);
  }
}

test('a quick wait says nothing; a wait over 2 s says what it waits for, then again, and stops when done', async () => {
  const quick = await noticesOf(async () => { const w = waiting('something quick'); await sleep(300); w.done(); });
  assert.deepEqual(quick.notices, []);
  const slow = await noticesOf(async () => { const w = waiting('the slow thing', 'a hint'); await sleep(2_400); w.now('the next thing'); await sleep(2_300); w.done(); await sleep(600); });
  assert.equal(slow.notices.length, 2, JSON.stringify(slow.notices));
  assert.equal(slow.notices[0]!.what, 'the slow thing');
  assert.equal(slow.notices[0]!.hint, 'a hint');
  assert.ok(slow.notices[0]!.elapsedMs >= 2_000);
  assert.equal(slow.notices[1]!.what, 'the next thing', 'a new wait starts its own clock');
});

test('a daemon-style readiness poll (waitUntil) that takes 3 s names what it waits for before it ends; a stuck one still times out naming it', async () => {
  const readyAt = Date.now() + 3_000;
  const r = await noticesOf(() => waitUntil('the NFS server starting', async () => (Date.now() >= readyAt ? true : undefined), 10_000));
  assert.equal(r.result, true);
  assert.ok(r.notices.some((n) => n.what === 'the NFS server starting'), JSON.stringify(r.notices));
  assert.ok(r.told[0]! < r.endedAt, 'said while it waited, not after');
  const stuck = await noticesOf(() => waitUntil('HAProxy answering on its stats socket', async () => undefined, 2_500, 'see its log'));
  assert.ok(stuck.error instanceof KumoError && stuck.error.code === 'TIMEOUT', String(stuck.error));
  assert.match((stuck.error as KumoError).message, /HAProxy answering on its stats socket did not happen within 2500 ms/);
  assert.equal(stuck.notices[0]?.what, 'HAProxy answering on its stats socket');
});

test('instance create --wait: a guest that never gets a lease is said to wait for its DHCP lease, then times out naming it', async () => {
  const guest: Instance = { name: 'w1', state: 'running', nics: [], host: 'local' } as unknown as Instance;
  const instances: InstanceReader = { get: async () => guest, consoleLog: () => '/tmp/w1.log' };
  // No lease ever: the context is never needed (no address to pin, no HTTP to try, no NIC to diagnose).
  const r = await noticesOf(() => waitReady({} as Context, instances, 'w1', { timeoutMs: 3_500, check: { kind: 'http', port: 8080 } }));
  assert.ok(r.error instanceof KumoError && r.error.code === 'TIMEOUT', String(r.error));
  assert.match((r.error as KumoError).message, /instance "w1" did not get a DHCP lease within 4 s/);
  assert.equal(r.notices[0]?.what, 'a DHCP lease for instance "w1"', JSON.stringify(r.notices));
  assert.ok(r.told[0]! < r.endedAt);
});

test('a protocol call libvirtd answers after 3 s is reported while it waits, whatever its procedure, once (not also by virsh\'s watch)', async () => {
  const daemon = await fakeLibvirtd({
    answer: ({ h, socket }) => {
      if (h.proc === Proc.CONNECT_GET_ALL_DOMAIN_STATS) setTimeout(() => socket.write(reply(h, (w) => w.uint(0))), 3_000);
    },
  });
  const slow: { call: string; elapsedMs: number; at: number }[] = [];
  const conn = new LibvirtConnection(daemon.uri, { callTimeoutMs: 10_000, onSlow: (n) => slow.push({ ...n, at: Date.now() }) });
  const virshSaid: SlowCall[] = [];
  const virsh = new Virsh(daemon.uri, undefined, (n) => virshSaid.push(n), undefined, conn);
  try {
    assert.deepEqual(await virsh.listDomains(), []);
    const ended = Date.now();
    assert.equal(slow.length, 1, JSON.stringify(slow));
    assert.equal(slow[0]!.call, 'connect get all domain stats');
    assert.ok(slow[0]!.elapsedMs >= 2_000 && slow[0]!.at < ended);
    assert.deepEqual(virshSaid, [], 'the connection reported it: virsh\'s own watch stays quiet');
  } finally {
    await conn.close();
    await daemon.close();
  }
});

test('an API operation whose step waits over 2 s shows what it waits for in its `waiting` field and its event, gone at the next step', async () => {
  const ops = new OperationRegistry();
  const seen: Operation[] = [];
  const off = ops.subscribe((e) => { if (e.event.type === 'operation') seen.push(e.event.operation); });
  // A process-wide listener (the server's log) must not take the operation's waits.
  const elsewhere: WaitNotice[] = [];
  reportWaits((n) => elsewhere.push(n));
  try {
    const readyAt = Date.now() + 3_000;
    const op = ops.start('share.create', 's1', async (progress) => {
      progress('nfs');
      await waitUntil('the NFS server starting', async () => (Date.now() >= readyAt ? true : undefined), 10_000);
      progress('export');
      return 'ok';
    });
    const done = await ops.wait(op.id);
    assert.equal(done.state, 'succeeded');
    const waitingOne = seen.find((o) => o.state === 'running' && o.waiting);
    assert.ok(waitingOne, 'an event showed the wait while the operation ran');
    assert.equal(waitingOne.waiting!.what, 'the NFS server starting');
    assert.ok(waitingOne.waiting!.seconds >= 2);
    assert.equal(waitingOne.step, 'nfs');
    assert.deepEqual(OperationSchema.parse(waitingOne).waiting, waitingOne.waiting, 'the API\'s answer keeps it (its schema does not strip it)');
    assert.equal(seen.find((o) => o.step === 'export')?.waiting, undefined, 'the next step clears it');
    assert.equal(done.waiting, undefined);
    assert.deepEqual(elsewhere, []);
  } finally {
    off();
    reportWaits(undefined);
  }
});

test('waits in two operations at once each reach their own operation', async () => {
  const told: string[] = [];
  await Promise.all(['a', 'b'].map((name) => reportingWaitsTo((n) => told.push(`${name}:${n.what}`), async () => {
    await sleep(10);
    const w = waiting(`work ${name}`);
    await sleep(2_200);
    w.done();
  })));
  assert.deepEqual(told.sort(), ['a:work a', 'b:work b']);
});

test('two virsh calls whose arguments look alike (one per NIC) say which is which while they wait', async () => {
  const said: SlowCall[] = [];
  // A virsh that answers after 2.3 s: each call is reported once, with what the caller says it is about.
  const slowVirsh = {
    description: 'a slow virsh',
    run: async () => { await sleep(2_300); return { code: 0, stdout: '', stderr: '' }; },
    open: async () => { throw new Error('not used'); },
  };
  const virsh = new Virsh('qemu:///system', slowVirsh, (n) => said.push(n));
  await Promise.all(['52:54:00:00:00:01', '52:54:00:00:00:02'].map((mac) =>
    virsh.runWithXml('<interface/>', (file) => ['update-device', 'dom1', file, '--live'], undefined, `NIC ${mac}`)));
  assert.deepEqual(said.map((n) => n.call).sort(), ['update-device dom1 (NIC 52:54:00:00:00:01)', 'update-device dom1 (NIC 52:54:00:00:00:02)']);
});
