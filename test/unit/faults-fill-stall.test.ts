import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KumoError } from '../../src/model/errors.js';
import { isDiskFull, noSpaceError } from '../../src/service/disk-full.js';
import { removeWhenItAppears } from '../../src/service/domain-define.js';
import { Virsh } from '../../src/drivers/libvirt/virsh.js';
import { HTTP_STATUS } from '../../src/api/server.js';
import { openContext } from '../../src/service/context.js';
import { withUndo } from '../../src/service/undo.js';

/** Issue 21, fill and stall: what needs no daemon (the integration file has the real ones). */

test('a full filesystem is recognised however each tool says it, and nothing else is', () => {
  const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  const sqlite = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
  const qemuImg = new KumoError('COMMAND_FAILED', 'qemu-img create -q -f qcow2 /h/i/x/data1.qcow2 1073741824 failed (exit 1): qemu-img: Could not write qcow2 header: No space left on device');
  for (const e of [enospc, sqlite, qemuImg, new KumoError('LIBVIRT_ERROR', 'libvirt refused', undefined, { cause: enospc })]) assert.ok(isDiskFull(e), String(e));
  for (const e of [new Error('ENOENT'), new KumoError('TIMEOUT', 'slow'), undefined, 'No space']) assert.ok(!isDiskFull(e), String(e));
});

test('NO_SPACE names the filesystem under KUMO_HOME and the fix; 507 over HTTP', () => {
  const home = '/var/lib/kumo-elsewhere';
  const e = noSpaceError(new KumoError('COMMAND_FAILED', `qemu-img: ${home}/instances/a/root.qcow2: No space left on device`), home, 'instance "a"', true);
  assert.equal(e?.code, 'NO_SPACE');
  assert.match(e!.message, /^the filesystem under KUMO_HOME \(\/var\/lib\/kumo-elsewhere\) is full: instance "a" could not be written.*; nothing of it was left behind$/);
  assert.match(e!.fix ?? '', /free space there .*or grow that filesystem, then run the command again/);
  assert.equal(noSpaceError(new KumoError('TIMEOUT', 'slow'), home, 'x'), undefined, 'other errors pass through');
  assert.equal(HTTP_STATUS.NO_SPACE, 507);
});

test('an operation whose store write finds no room says NO_SPACE; a step it could not undo stays journaled', async () => {
  const home = await mkdtemp(join(tmpdir(), 'kumo-unit-full-'));
  const ctx = openContext({ home });
  try {
    const full = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    await assert.rejects(withUndo(ctx, 'create thing t1', async (undo) => {
      undo({ kind: 'service', handler: 'unit-fill-undo', args: {} });
      throw full;
    }), (e: KumoError) => e.code === 'NO_SPACE' && e.cause === full && /is retried by the next kumo command/.test(e.message));
    // The handler is unknown here, so its undo failed: it stays journaled for the next start.
    assert.equal(ctx.journal.pending().length, 1);
  } finally {
    ctx.close();
    await rm(home, { recursive: true, force: true });
  }
});

test('a stalled libvirt: the watch for a late define does not count "no answer" as "no domain"', async () => {
  // Every look times out, as against a SIGSTOPped libvirtd: the caller must not close the undo.
  const stalled = new Virsh('qemu+unix:///system?socket=/nonexistent');
  stalled.domainState = async () => {
    throw new KumoError('TIMEOUT', 'libvirt at … did not finish "domstate" within 3 s');
  };
  await assert.rejects(removeWhenItAppears(stalled, '2b1f1e0c-5d0e-4c44-9a57-3f2c3a7f0a11', Date.now() + 300), (e: KumoError) => e.code === 'TIMEOUT');
  // One that answers "none" is believed.
  const answering = new Virsh('qemu+unix:///system?socket=/nonexistent');
  answering.domainState = async () => 'missing';
  assert.equal(await removeWhenItAppears(answering, '2b1f1e0c-5d0e-4c44-9a57-3f2c3a7f0a11', Date.now() + 300), false);
});

test('a libvirt timeout names the host and its libvirtd', async () => {
  const v = new Virsh('qemu+unix:///system?socket=/nonexistent', {
    description: 'fake', run: async () => {
      throw new KumoError('TIMEOUT', 'virsh did not finish within 3000 ms');
    }, open: async () => {
      throw new Error('not used');
    },
  }, undefined, () => 'kvm9');
  await assert.rejects(v.run(['list', '--all'], 3000), (e: KumoError) => e.code === 'TIMEOUT'
    && e.message === 'libvirtd of host "kvm9" (qemu+unix:///system?socket=/nonexistent) did not finish "list" within 3 s'
    && /libvirtd there is stalled or overloaded/.test(e.fix ?? ''));
});
