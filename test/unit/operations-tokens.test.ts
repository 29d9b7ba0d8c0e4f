import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { OperationRegistry, type SequencedEvent } from '../../src/service/operations.js';
import { TokenService } from '../../src/service/tokens.js';
import { openContext, type Context } from '../../src/service/context.js';
import { KumoError } from '../../src/model/errors.js';

let home: string;
let ctx: Context;

before(async () => {
  home = await mkdtemp('/tmp/kumo-unit-tokens-');
  ctx = openContext({ home });
});
after(async () => {
  ctx?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

test('an operation answers at once, reports its steps, and ends succeeded with its result', async () => {
  const ops = new OperationRegistry();
  const seen: SequencedEvent[] = [];
  ops.subscribe((e) => seen.push(e));
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const op = ops.start('thing.make', 'x', async (progress) => {
    progress('one');
    await gate;
    progress('two');
    return { made: 'x' };
  });
  assert.equal(op.state, 'running');
  assert.deepEqual(op.steps, [], 'no work ran before the caller had the operation');
  const done = ops.wait(op.id);
  release();
  const end = await done;
  assert.equal(end.state, 'succeeded');
  assert.deepEqual(end.steps, ['one', 'two']);
  assert.deepEqual(end.result, { made: 'x' });
  assert.ok(end.finishedAt);
  assert.deepEqual(seen.map((e) => e.event.type === 'operation' ? [e.event.operation.state, e.event.operation.step ?? '-'] : []),
    [['running', '-'], ['running', 'one'], ['running', 'two'], ['succeeded', 'two']]);
  assert.deepEqual(seen.map((e) => e.seq), [1, 2, 3, 4]);
  // Handed-out copies do not change under their reader.
  assert.deepEqual(op.steps, []);
});

test('a failed operation keeps the KumoError code, message and fix; other errors are INTERNAL', async () => {
  const ops = new OperationRegistry();
  const a = ops.start('a', 'x', async () => { throw new KumoError('IN_USE', 'busy', 'wait'); });
  const b = ops.start('b', 'y', async () => { throw new Error('boom'); });
  assert.deepEqual((await ops.wait(a.id)).error, { code: 'IN_USE', message: 'busy', fix: 'wait' });
  assert.deepEqual((await ops.wait(b.id)).error, { code: 'INTERNAL', message: 'boom' });
  assert.deepEqual(ops.list().map((o) => o.kind), ['b', 'a'], 'newest first');
  assert.throws(() => ops.get('nope'), (e: KumoError) => e.code === 'NOT_FOUND');
});

test('a subscriber catches up on the events after the last one it saw, and a broken one harms nothing', async () => {
  const ops = new OperationRegistry();
  ops.subscribe(() => { throw new Error('a client went away mid-write'); });
  ops.resourceChanged('flavor', 'f1', 'created');
  ops.resourceChanged('flavor', 'f2', 'created');
  ops.resourceChanged('flavor', 'f3', 'created');
  const replayed: SequencedEvent[] = [];
  const off = ops.subscribe((e) => replayed.push(e), 1);
  ops.resourceChanged('flavor', 'f4', 'created');
  off();
  ops.resourceChanged('flavor', 'f5', 'created');
  assert.deepEqual(replayed.map((e) => e.event.type === 'resource' && e.event.name), ['f2', 'f3', 'f4']);
  assert.equal(ops.lastSeq(), 5);
});

test('tokens: 256 random bits with a kumo_ prefix, stored only as their sha256; verify, revoke, unique names', () => {
  const svc = new TokenService(ctx);
  const t = svc.create('ci');
  assert.match(t.token, /^kumo_[A-Za-z0-9_-]{43}$/);
  assert.equal(Buffer.from(t.token.slice(5), 'base64url').length, 32);
  const rows = ctx.db.prepare('SELECT * FROM api_tokens').all() as { hash: string }[];
  assert.deepEqual(rows.map((r) => r.hash), [createHash('sha256').update(t.token).digest('hex')]);
  assert.ok(!JSON.stringify(rows).includes(t.token.slice(5)));
  assert.equal(svc.verify(t.token)?.name, 'ci');
  assert.ok(svc.list()[0]!.lastUsedAt, 'use is recorded');
  assert.equal(svc.verify(`${t.token.slice(0, -1)}${t.token.endsWith('A') ? 'B' : 'A'}`), undefined, 'one character off');
  assert.equal(svc.verify('kumo_short'), undefined);
  assert.throws(() => svc.create('ci'), (e: KumoError) => e.code === 'ALREADY_EXISTS');
  assert.throws(() => svc.create('bad name'), (e: KumoError) => e.code === 'INVALID_INPUT');
  assert.equal(svc.revoke(t.id).name, 'ci');
  assert.equal(svc.verify(t.token), undefined);
  assert.throws(() => svc.revoke('ci'), (e: KumoError) => e.code === 'NOT_FOUND');
});

test('the admin token is made once per home, and never again once tokens were all revoked', () => {
  const svc = new TokenService(ctx);
  for (const t of svc.list()) svc.revoke(t.id);
  const admin = svc.ensureAdmin();
  assert.equal(admin?.name, 'admin');
  assert.equal(svc.verify(admin!.token)?.name, 'admin');
  assert.equal(svc.ensureAdmin(), undefined);
  svc.revoke('admin');
  assert.equal(svc.ensureAdmin(), undefined);
});
