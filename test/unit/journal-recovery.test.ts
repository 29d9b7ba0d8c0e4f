import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openContext, LOCAL_HOST, type Context } from '../../src/service/context.js';
import { onRecover, withUndo } from '../../src/service/undo.js';
import { recoverInterrupted } from '../../src/service/recovery.js';
import { DoctorService } from '../../src/service/doctor.js';

/**
 * The journal's promises without libvirt: an undo that fails stays journaled and is retried by
 * the next start; a finishing step runs only after a crash; two starting kumos never run one
 * entry twice.
 */
const homes: string[] = [];
const contexts: Context[] = [];
after(() => {
  for (const c of contexts) c.close();
  for (const h of homes) rmSync(h, { recursive: true, force: true });
});

function world(): Context {
  const home = mkdtempSync(join(tmpdir(), 'kumo-journal-'));
  homes.push(home);
  const ctx = openContext({ home });
  contexts.push(ctx);
  ctx.hosts.delete(LOCAL_HOST); // doctor then looks at no hypervisor: the journal alone
  return ctx;
}

/** A dead process's pid: an entry carrying it was interrupted. */
const DEAD_PID = 2 ** 22 + 1;

test('an undo step that fails stays journaled, doctor names it, and the next start retries it', async () => {
  const ctx = world();
  const calls: string[] = [];
  let daemonUp = false;
  onRecover('test-flaky', async (_ctx, args) => {
    calls.push(args.what!);
    if (!daemonUp) throw new Error('the daemon is down');
  });
  await assert.rejects(withUndo(ctx, 'create thing t1', async (undo) => {
    undo({ kind: 'service', handler: 'test-flaky', args: { what: 't1' } });
    throw new Error('step 2 failed');
  }), /step 2 failed/);
  assert.deepEqual(calls, ['t1'], 'the undo ran once, in the process');
  const [entry] = ctx.journal.pending();
  assert.equal(entry?.pid, 0, 'given up by its process: any start may retry it');
  const report = await new DoctorService(ctx).check();
  assert.deepEqual(report.unfinished.map((u) => [u.operation, u.steps]), [['create thing t1', 1]]);

  const still = await recoverInterrupted(ctx);
  assert.match(still[0]!, /retried the undo of "create thing t1".*1 step\(s\) failed.*the daemon is down/);
  assert.equal(ctx.journal.pending().length, 1);
  daemonUp = true;
  assert.match((await recoverInterrupted(ctx))[0]!, /retried the undo of "create thing t1"/);
  assert.deepEqual(ctx.journal.pending(), []);
  assert.deepEqual(calls, ['t1', 't1', 't1']);
});

test('a finishing step runs after a crash only; undo steps run last first', async () => {
  const ctx = world();
  const calls: string[] = [];
  onRecover('test-record', async (_ctx, args) => { calls.push(args.what!); });
  await assert.rejects(withUndo(ctx, 'delete thing t2', async (undo) => {
    undo({ kind: 'service', handler: 'test-record', args: { what: 'finish' }, when: 'after-crash' });
    undo({ kind: 'service', handler: 'test-record', args: { what: 'undo' } });
    throw new Error('failed in the process');
  }));
  assert.deepEqual(calls, ['undo'], 'the caller hears of an in-process failure: nothing is finished for it');
  assert.deepEqual(ctx.journal.pending(), []);

  calls.length = 0;
  const id = ctx.journal.open('delete thing t3');
  ctx.journal.setUndo(id, [
    { kind: 'service', handler: 'test-record', args: { what: 'finish' }, when: 'after-crash' },
    { kind: 'service', handler: 'test-record', args: { what: 'undo' } },
  ]);
  ctx.db.prepare('UPDATE journal SET pid = ? WHERE id = ?').run(DEAD_PID, id);
  assert.match((await recoverInterrupted(ctx))[0]!, /undid interrupted "delete thing t3"/);
  assert.deepEqual(calls, ['undo', 'finish']);
});

test('an interrupted entry is claimed by one kumo only', async () => {
  const ctx = world();
  let runs = 0;
  onRecover('test-count', async () => { runs += 1; });
  const id = ctx.journal.open('create thing t4');
  ctx.journal.setUndo(id, [{ kind: 'service', handler: 'test-count', args: {} }]);
  ctx.db.prepare('UPDATE journal SET pid = ? WHERE id = ?').run(DEAD_PID, id);
  assert.equal(ctx.journal.claim(id, DEAD_PID), true);
  assert.equal(ctx.journal.claim(id, DEAD_PID), false, 'the second claimer saw the dead pid too, and loses');
  // Claimed by this (live) process: a start now leaves it alone.
  assert.deepEqual(await recoverInterrupted(ctx), []);
  assert.equal(runs, 0);
});

test('a handler nobody registered keeps its step journaled with a reason', async () => {
  const ctx = world();
  const id = ctx.journal.open('create thing t5');
  ctx.journal.setUndo(id, [{ kind: 'service', handler: 'no-such-handler', args: {} }]);
  ctx.db.prepare('UPDATE journal SET pid = ? WHERE id = ?').run(DEAD_PID, id);
  assert.match((await recoverInterrupted(ctx))[0]!, /no handler "no-such-handler" is loaded/);
  assert.equal(ctx.journal.pending()[0]?.pid, 0);
});
